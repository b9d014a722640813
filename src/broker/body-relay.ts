import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { BrokerError } from '../protocol/errors.js';

export interface Digests {
  sha1?: string | undefined;
  sha256?: string | undefined;
}

export interface ComputedDigests {
  sha1: string | undefined;
  sha256: string | undefined;
  size: number;
}

export interface BodyRelayOptions {
  /** Digests the body must have. With none, the relay only counts bytes. */
  expected: Digests;
  /** Also compute these (e.g. sha256 to name a cache entry when only sha1 was asked for). */
  alsoCompute?: readonly ('sha1' | 'sha256')[];
  /** Receives every chunk before it moves on; the stream waits for it (a cache write). */
  tee?: (chunk: Buffer) => Promise<void>;
  /**
   * Runs once the digests matched, before the withheld last chunk is released (commit the cache
   * entry here, so a client that saw the end can already be served from the cache). Errors are
   * the callback's to handle: it must not throw.
   */
  beforeRelease?: (digests: ComputedDigests) => Promise<void>;
  /**
   * Runs synchronously when a digest does not match, before the stream errors (record the outcome
   * and emit the event first, so nothing downstream can report the abort differently).
   */
  onMismatch?: (mismatch: ChecksumMismatch) => void;
}

export interface ChecksumMismatch {
  algorithm: 'sha1' | 'sha256';
  expected: string;
  actual: string;
  size: number;
}

/**
 * The body on its way from upstream (or the cache) to the client. With expected digests it
 * hashes while streaming and withholds the most recent chunk: the last one is released only once
 * every digest matched, so a client never receives a complete body that is wrong. On a mismatch
 * the stream errors with BROKER_CHECKSUM_MISMATCH (the pipeline then aborts the response).
 */
export class BodyRelay extends Transform {
  private readonly hashes: { algorithm: 'sha1' | 'sha256'; hash: Hash }[] = [];
  private readonly expected: Digests;
  private readonly verifying: boolean;
  private withheld: Buffer | undefined;
  private received = 0;
  private released = 0;

  constructor(private readonly options: BodyRelayOptions) {
    super();
    this.expected = options.expected;
    const algorithms = new Set<'sha1' | 'sha256'>(options.alsoCompute ?? []);
    if (options.expected.sha1 !== undefined) algorithms.add('sha1');
    if (options.expected.sha256 !== undefined) algorithms.add('sha256');
    for (const algorithm of algorithms) this.hashes.push({ algorithm, hash: createHash(algorithm) });
    this.verifying = options.expected.sha1 !== undefined || options.expected.sha256 !== undefined;
  }

  /** Body bytes passed on so far (the withheld chunk is not counted until released). */
  get bytesReleased(): number {
    return this.released;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    for (const { hash } of this.hashes) hash.update(chunk);
    const forward = (): void => {
      if (!this.verifying) {
        this.released += chunk.length;
        callback(null, chunk);
        return;
      }
      const previous = this.withheld;
      this.withheld = chunk;
      if (previous !== undefined) {
        this.released += previous.length;
        callback(null, previous);
      } else {
        callback();
      }
    };
    if (this.options.tee === undefined) {
      forward();
      return;
    }
    this.options.tee(chunk).then(forward, (err: unknown) => callback(err as Error));
  }

  override _flush(callback: TransformCallback): void {
    const computed: ComputedDigests = { sha1: undefined, sha256: undefined, size: this.received };
    for (const { algorithm, hash } of this.hashes) computed[algorithm] = hash.digest('hex');
    for (const algorithm of ['sha256', 'sha1'] as const) {
      const expected = this.expected[algorithm];
      const actual = computed[algorithm];
      if (expected === undefined || actual === undefined || expected.toLowerCase() === actual) continue;
      const mismatch: ChecksumMismatch = { algorithm, expected: expected.toLowerCase(), actual, size: this.received };
      this.withheld = undefined;
      this.options.onMismatch?.(mismatch);
      callback(checksumMismatchError(mismatch));
      return;
    }
    const release = (): void => {
      const last = this.withheld;
      this.withheld = undefined;
      if (last !== undefined) this.released += last.length;
      callback(null, last);
    };
    if (this.options.beforeRelease === undefined) {
      release();
      return;
    }
    this.options.beforeRelease(computed).then(release, release);
  }
}

export function checksumMismatchError(mismatch: ChecksumMismatch, message?: string): BrokerError {
  return new BrokerError('BROKER_CHECKSUM_MISMATCH', {
    message: message ?? `The ${mismatch.algorithm} of the downloaded content (${mismatch.actual}) does not match the expected ${mismatch.expected}; the download was aborted.`,
    details: { algorithm: mismatch.algorithm, expected: mismatch.expected, actual: mismatch.actual },
  });
}
