import type { Clock, TimerHandle } from './ports.js';

/**
 * When each source is refreshed next (DESIGN section 6): every `intervalMinutes` ± `jitterPercent`
 * after a success, exponential backoff with full jitter (1 s .. 5 min) after a failure that may
 * pass soon (timeouts, 429, 5xx), the normal interval after one that will not (a document gone or
 * invalid), never earlier than a server's Retry-After. Pure: time comes from the Clock (whose real timers are
 * unref'd, so a pending refresh never keeps the process alive), randomness is injectable.
 */

export const BACKOFF_MIN_MS = 1_000;
export const BACKOFF_MAX_MS = 5 * 60_000;
/** A Retry-After beyond this is treated as this (a day): a typo upstream must not park us for years. */
export const RETRY_AFTER_MAX_MS = 24 * 60 * 60_000;
/** setTimeout cannot wait longer than ~24.8 days; the interval is at most a week anyway. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface RefreshTiming {
  intervalMinutes: number;
  jitterPercent: number;
}

/**
 * Full jitter: uniformly in [1 s, min(5 min, 1 s * 2^(failures-1))], so many daemons that failed
 * together do not come back together.
 */
export function backoffDelay(failures: number, random: () => number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, Math.min(30, failures - 1)));
  return Math.max(BACKOFF_MIN_MS, Math.round(random() * ceiling));
}

/** The interval, moved by up to ± jitterPercent. */
export function intervalDelay(timing: RefreshTiming, random: () => number): number {
  const base = timing.intervalMinutes * 60_000;
  const spread = (timing.jitterPercent / 100) * base;
  return Math.max(BACKOFF_MIN_MS, Math.round(base + (random() * 2 - 1) * spread));
}

interface Entry {
  timer?: TimerHandle;
  nextAt?: number;
  /** Consecutive failed attempts; 0 after a success. */
  failures: number;
}

export interface RefreshSchedulerOptions {
  clock: Clock;
  random: () => number;
  timing(): RefreshTiming;
  /** Called when a key is due. The owner reports back with succeeded/failed/parked. */
  run(key: string): void;
}

export class RefreshScheduler {
  private readonly entries = new Map<string, Entry>();
  private active = false;

  constructor(private readonly options: RefreshSchedulerOptions) {}

  /** Until started, outcomes are recorded but nothing is scheduled (tests, or a duplicate daemon). */
  start(keys: readonly string[]): void {
    this.active = true;
    for (const key of keys) this.scheduleIn(key, 0);
  }

  /** Cancels every timer; later outcomes schedule nothing. */
  stop(): void {
    this.active = false;
    for (const entry of this.entries.values()) {
      entry.timer?.cancel();
      entry.timer = undefined;
      entry.nextAt = undefined;
    }
  }

  get started(): boolean {
    return this.active;
  }

  /** A refresh succeeded: the next one after the (jittered) interval. */
  succeeded(key: string): void {
    const entry = this.entry(key);
    entry.failures = 0;
    this.scheduleIn(key, intervalDelay(this.options.timing(), this.options.random));
  }

  /** A refresh failed: back off, but never come back before the server's Retry-After. */
  failed(key: string, retryAfterMs?: number): number {
    const entry = this.entry(key);
    entry.failures += 1;
    const delay = Math.max(backoffDelay(entry.failures, this.options.random), retryAfterMs ?? 0);
    this.scheduleIn(key, delay);
    return entry.failures;
  }

  /**
   * A failure that will not fix itself in minutes (a document gone with 404/410, or invalid):
   * tried again after the normal interval, not on the backoff schedule, so a source whose
   * publisher removed it costs one request per interval instead of a dozen.
   */
  failedLasting(key: string, retryAfterMs?: number): number {
    const entry = this.entry(key);
    entry.failures += 1;
    this.scheduleIn(key, Math.max(intervalDelay(this.options.timing(), this.options.random), retryAfterMs ?? 0));
    return entry.failures;
  }

  /**
   * Nothing to do until something else changes (a restricted source without a usable token):
   * look again after the interval, which costs no request while the token is still missing.
   */
  parked(key: string): void {
    const entry = this.entry(key);
    entry.failures = 0;
    this.scheduleIn(key, intervalDelay(this.options.timing(), this.options.random));
  }

  /** Runs a key at once (a manual refresh, a token that became usable). */
  runNow(key: string): void {
    this.scheduleIn(key, 0);
  }

  remove(key: string): void {
    this.entries.get(key)?.timer?.cancel();
    this.entries.delete(key);
  }

  nextAt(key: string): number | undefined {
    return this.entries.get(key)?.nextAt;
  }

  failures(key: string): number {
    return this.entries.get(key)?.failures ?? 0;
  }

  private entry(key: string): Entry {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = { failures: 0 };
      this.entries.set(key, entry);
    }
    return entry;
  }

  private scheduleIn(key: string, ms: number): void {
    const entry = this.entry(key);
    entry.timer?.cancel();
    entry.timer = undefined;
    entry.nextAt = undefined;
    if (!this.active) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, ms));
    entry.nextAt = this.options.clock.now() + delay;
    entry.timer = this.options.clock.setTimer(delay, () => {
      entry.timer = undefined;
      entry.nextAt = undefined;
      if (this.active && this.entries.get(key) === entry) this.options.run(key);
    });
  }
}
