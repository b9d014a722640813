import { describe, expect, it } from 'vitest';
import { pollUntil } from '../../src/protocol/poll-until.js';

/** The one polling loop of src (issue 19): drain, waiting for a process to exit, autostart. */
describe('pollUntil', () => {
  it('answers at once when the condition already holds (one check, no wait)', async () => {
    let checks = 0;
    expect(await pollUntil(() => (++checks, 'now'), { timeoutMs: 60_000 })).toBe('now');
    expect(checks).toBe(1);
  });

  it('asks again until the condition holds, with sync and async checks', async () => {
    let checks = 0;
    expect(await pollUntil(() => (++checks >= 3 ? checks : undefined), { timeoutMs: 60_000, intervalMs: 1 })).toBe(3);
    let asyncChecks = 0;
    expect(await pollUntil(async () => (++asyncChecks >= 2 ? 'done' : undefined), { timeoutMs: 60_000, intervalMs: 1 })).toBe('done');
  });

  it('gives up with undefined once the deadline passed, after asking at least once', async () => {
    let checks = 0;
    expect(await pollUntil(() => (++checks, undefined), { deadline: Date.now() - 1 })).toBeUndefined();
    expect(checks).toBe(1);
    // false and 0 are answers, not "not yet".
    expect(await pollUntil(() => false, { timeoutMs: 0 })).toBe(false);
  });
});
