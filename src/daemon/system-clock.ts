import type { Clock } from '../broker/ports.js';

/** The real clock; its timers are unref'd so they never keep the daemon (or a test) alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const timer = setTimeout(fn, Math.max(0, ms));
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};
