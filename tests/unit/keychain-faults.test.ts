import { describe, expect, it } from 'vitest';
import { EventBus } from '../../src/broker/event-bus.js';
import { silentLog } from '../../src/broker/log.js';
import type { SecretStore, SecretStoreState } from '../../src/broker/ports.js';
import { TokenService } from '../../src/broker/token-service.js';
import { ConfigSchema } from '../../src/protocol/config-schema.js';
import { BrokerError } from '../../src/protocol/errors.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MemoryStateStore } from '../helpers/memory-state-store.js';
import { offlineUpstream, validationOver } from '../helpers/server-deps.js';

/** A keychain that can go away and come back, as a locked or crashed Secret Service does. */
class FlakyKeychain implements SecretStore {
  readonly kind = 'keychain' as const;
  readonly persistent = true;
  readonly plaintextAtRest = false;
  state: SecretStoreState = 'ok';
  lastState: SecretStoreState | null = null;
  readonly secrets = new Map<string, string>();
  calls = 0;
  private check(): void {
    this.calls++;
    this.lastState = this.state;
    if (this.state !== 'ok') throw new BrokerError('BROKER_SECRET_STORE_UNAVAILABLE', { message: `The keychain is ${this.state}.`, details: { state: this.state } });
  }
  async get(account: string) {
    this.check();
    return this.secrets.get(account) ?? null;
  }
  async set(account: string, secret: string) {
    this.check();
    this.secrets.set(account, secret);
  }
  async delete(account: string) {
    this.check();
    return this.secrets.delete(account);
  }
  async probe() {
    this.lastState = this.state;
    return this.state;
  }
}

function service(store: SecretStore, clock: FakeClock, state = new MemoryStateStore()) {
  const config = ConfigSchema.parse({});
  return new TokenService({ servers: () => config.servers, warningDays: () => config.expiryWarningDays, store, state, validate: validationOver(offlineUpstream), clock, events: new EventBus(clock), log: silentLog, random: () => 1 });
}

describe('keychain faults', () => {
  it('unavailable at start: the token is reported missing with the reason, then loaded once the keychain is back', async () => {
    const store = new FlakyKeychain();
    store.secrets.set('nordic', 'stored-token');
    store.state = 'locked';
    const clock = new FakeClock();
    const tokens = service(store, clock);
    await tokens.start();
    expect(tokens.view()).toMatchObject({ state: 'absent', reason: expect.stringContaining('locked') as string });
    expect(() => tokens.tokenFor('nordic')).toThrow(expect.objectContaining({ code: 'BROKER_TOKEN_MISSING', hint: expect.stringMatching(/unlock/i) as string }) as BrokerError);
    const callsWhileLocked = store.calls;
    clock.advance(60_000);
    await tokens.whenIdle();
    expect(store.calls).toBeGreaterThan(callsWhileLocked); // retried with backoff, not given up
    store.state = 'ok';
    clock.advance(10 * 60_000);
    await tokens.whenIdle();
    expect(tokens.view().state).toBe('unverified');
    expect(tokens.tokenFor('nordic')).toBe('stored-token');
    tokens.stop();
  });

  it('unavailable mid-run: set/remove fail with BROKER_SECRET_STORE_UNAVAILABLE, the token in use keeps working', async () => {
    const store = new FlakyKeychain();
    const clock = new FakeClock();
    const tokens = service(store, clock);
    await tokens.start();
    await tokens.set(undefined, 'first-token', { verify: false });
    store.state = 'unavailable';
    await expect(tokens.set(undefined, 'second-token', { verify: false })).rejects.toMatchObject({ code: 'BROKER_SECRET_STORE_UNAVAILABLE' });
    await expect(tokens.remove()).rejects.toMatchObject({ code: 'BROKER_SECRET_STORE_UNAVAILABLE' });
    expect(tokens.tokenFor('nordic')).toBe('first-token');
    store.state = 'ok';
    await tokens.set(undefined, 'second-token', { verify: false });
    expect(tokens.tokenFor('nordic')).toBe('second-token');
    tokens.stop();
  });
});
