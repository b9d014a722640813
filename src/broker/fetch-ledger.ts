import type { FetchOutcomeKind, FetchRecord } from '../protocol/fetch.js';
import type { Clock } from './ports.js';

/** How many recent fetches `GET /v1/fetches/:id` can tell about. */
export const LEDGER_CAPACITY = 500;

export type FinalOutcome = Exclude<FetchOutcomeKind, 'in-progress'>;

interface Entry {
  id: string;
  url: string;
  outcome: FetchOutcomeKind;
  startedAt: number;
  endedAt?: number;
  status?: number;
  bytes: number;
  cache?: 'hit' | 'miss' | 'off';
  error?: { code: string; message: string };
}

/**
 * Ring buffer of how recent fetches ended, so a client whose stream broke can ask whether it was
 * a checksum abort (exit 6) or a dropped connection (exit 5). The first final outcome wins: the
 * daemon records why it aborted before the abort reaches the socket, so a later "the client went
 * away" (caused by our own abort) does not overwrite it.
 */
export class FetchLedger {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly clock: Clock,
    private readonly capacity = LEDGER_CAPACITY,
  ) {}

  start(id: string, url: string): void {
    this.entries.set(id, { id, url, outcome: 'in-progress', startedAt: this.clock.now(), bytes: 0 });
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  /** `url`: the canonical URL, once the policy has judged the one the fetch started with. */
  update(id: string, patch: { url?: string; status?: number; cache?: 'hit' | 'miss' | 'off'; bytes?: number }): void {
    const entry = this.entries.get(id);
    if (entry === undefined) return;
    if (patch.url !== undefined) entry.url = patch.url;
    if (patch.status !== undefined) entry.status = patch.status;
    if (patch.cache !== undefined) entry.cache = patch.cache;
    if (patch.bytes !== undefined) entry.bytes = patch.bytes;
  }

  /** Records the final outcome unless one was recorded already; returns true when this one counted. */
  finish(id: string, outcome: FinalOutcome, extra: { bytes?: number; error?: { code: string; message: string } } = {}): boolean {
    const entry = this.entries.get(id);
    if (entry === undefined || entry.outcome !== 'in-progress') return false;
    entry.outcome = outcome;
    entry.endedAt = this.clock.now();
    if (extra.bytes !== undefined) entry.bytes = extra.bytes;
    if (extra.error !== undefined) entry.error = extra.error;
    return true;
  }

  outcomeOf(id: string): FetchOutcomeKind | undefined {
    return this.entries.get(id)?.outcome;
  }

  get(id: string): FetchRecord | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    return {
      id: entry.id,
      url: entry.url,
      outcome: entry.outcome,
      startedAt: new Date(entry.startedAt).toISOString(),
      ...(entry.endedAt === undefined ? {} : { endedAt: new Date(entry.endedAt).toISOString() }),
      ...(entry.status === undefined ? {} : { status: entry.status }),
      bytes: entry.bytes,
      ...(entry.cache === undefined ? {} : { cache: entry.cache }),
      ...(entry.error === undefined ? {} : { error: entry.error }),
    };
  }

  get size(): number {
    return this.entries.size;
  }
}
