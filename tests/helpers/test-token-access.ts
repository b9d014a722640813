import type { TokenAccess } from '../../src/broker/ports.js';
import { BrokerError } from '../../src/protocol/errors.js';

export type TestTokenState = 'valid' | 'invalid' | 'expired';

/**
 * The one TokenAccess fake of the suite, implementing the port fully: it hands out `token` (none
 * until one is given: BROKER_TOKEN_MISSING), refuses an invalid or expired one as the real token
 * lifecycle does, and, as the port promises, ignores a 401 for a token replaced meanwhile and
 * fails a caller that omits the token its refused request carried.
 */
export class TestTokenAccess implements TokenAccess {
  /** The 401s that marked the token invalid, in order. */
  readonly rejections: { server: string; message: string }[] = [];
  /** How often `tokenFor` was called: the exchange asks lazily, only when a hop needs the token. */
  asked = 0;
  state: TestTokenState | 'missing' = 'valid';

  constructor(public token?: string) {}

  tokenFor(server: string): string {
    this.asked += 1;
    if (this.state === 'invalid') throw new BrokerError('BROKER_TOKEN_INVALID', { message: `The server rejected the identity token for "${server}".`, details: { server } });
    if (this.state === 'expired') throw new BrokerError('BROKER_TOKEN_EXPIRED', { message: `The identity token for "${server}" has expired.`, details: { server } });
    if (this.state === 'missing' || this.token === undefined) throw new BrokerError('BROKER_TOKEN_MISSING', { message: `No identity token is set for "${server}".`, details: { server } });
    return this.token;
  }

  rejected(server: string, message: string, usedToken?: string): void {
    if (usedToken === undefined) throw new Error('TokenAccess.rejected() needs the token the refused request carried');
    if (usedToken !== this.token) return;
    this.rejections.push({ server, message });
    this.state = 'invalid';
  }

  /** A new token, valid until an upstream refuses it (as `token set` does). */
  set(token: string): void {
    this.token = token;
    this.state = 'valid';
  }
}
