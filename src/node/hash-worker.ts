import { Worker } from 'node:worker_threads';
import type { StreamDigests } from './stream-digests.js';

/**
 * sha1 + sha256 of a download off the event loop (hashing is ~40% of the daemon's CPU
 * per GiB; on the loop it runs between the socket reads and the file writes, on a worker thread it
 * overlaps them). The same answer as FileDigests (src/protocol/file-digests.ts), but `digest()` is
 * asynchronous and a writer can wait for the worker to catch up (`backlog` / `caughtUp()`), so
 * the bytes handed over stay bounded.
 *
 * One worker serves every download at once and stops after IDLE_MS without one, so an idle daemon
 * carries no thread (a worker costs a few MB of RSS). Chunks are copied into 1 MiB batches whose
 * memory is transferred, not cloned: one copy per byte and one message per MiB. The chunk itself
 * may still be in a writev, so it is never transferred. Each download's digests are the writer's
 * StreamDigests (src/node/stream-digests.ts).
 */

/** Bytes per message to the worker. */
const BATCH_BYTES = 1024 * 1024;
/** A writer that waits on caughtUp() without a limit keeps at most this much in flight. */
export const DEFAULT_BACKLOG_LIMIT = 8 * 1024 * 1024;
const IDLE_MS = 5_000;

// CommonJS evaluated in the worker (`eval: true`): no file of its own to find next to a bundle.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const jobs = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'data') {
    let job = jobs.get(m.id);
    if (job === undefined) jobs.set(m.id, (job = [createHash('sha1'), createHash('sha256')]));
    const bytes = new Uint8Array(m.buffer);
    job[0].update(bytes);
    job[1].update(bytes);
    parentPort.postMessage({ op: 'hashed', id: m.id, bytes: bytes.byteLength });
  } else if (m.op === 'digest') {
    const job = jobs.get(m.id) ?? [createHash('sha1'), createHash('sha256')];
    jobs.delete(m.id);
    parentPort.postMessage({ op: 'digest', id: m.id, sha1: job[0].digest('hex'), sha256: job[1].digest('hex') });
  } else if (m.op === 'drop') {
    jobs.delete(m.id);
  }
});
`;

type WorkerMessage = { op: 'hashed'; id: number; bytes: number } | { op: 'digest'; id: number; sha1: string; sha256: string };

interface Job {
  hashed(bytes: number): void;
  done(result: { sha1: string; sha256: string }): void;
  failed(err: Error): void;
}

/** The one worker and the downloads using it. */
export class HashWorkerPool {
  private worker: Worker | undefined;
  private readonly jobs = new Map<number, Job>();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly idleMs = IDLE_MS) {}

  /** Digests for one download; the worker starts with the first. */
  digests(): StreamDigests {
    return new PooledDigests(this, this.nextId++);
  }

  /** True while a worker thread exists (tests; the idle daemon has none). */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Stops the worker now (daemon shutdown); digests still pending fail. */
  async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    const worker = this.worker;
    this.worker = undefined;
    this.failAll(new Error('the hash worker was stopped'));
    await worker?.terminate();
  }

  /** @internal */
  join(id: number, job: Job): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.jobs.set(id, job);
  }

  /** @internal */
  leave(id: number): void {
    this.jobs.delete(id);
    if (this.jobs.size > 0 || this.worker === undefined) return;
    this.idleTimer = setTimeout(() => {
      const worker = this.worker;
      this.worker = undefined;
      void worker?.terminate();
    }, this.idleMs);
    this.idleTimer.unref();
  }

  /** @internal */
  post(message: { op: 'data'; id: number; buffer: ArrayBuffer } | { op: 'digest' | 'drop'; id: number }): void {
    const worker = this.started();
    if (message.op === 'data') worker.postMessage(message, [message.buffer]);
    else worker.postMessage(message);
  }

  private started(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.on('message', (message: WorkerMessage) => {
      const job = this.jobs.get(message.id);
      if (job === undefined) return;
      if (message.op === 'hashed') job.hashed(message.bytes);
      else job.done({ sha1: message.sha1, sha256: message.sha256 });
    });
    const lost = (err: Error): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.failAll(err);
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`the hash worker exited with code ${code}`)));
    // Waiting downloads keep the process alive, not the worker itself.
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private failAll(err: Error): void {
    const jobs = [...this.jobs.values()];
    this.jobs.clear();
    for (const job of jobs) job.failed(err);
  }
}

class PooledDigests implements StreamDigests {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private sent = 0;
  private hashedBytes = 0;
  private failure: Error | undefined;
  private waiters: { limit: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  private result: { resolve: (value: { sha1: string; sha256: string }) => void; reject: (err: Error) => void } | undefined;
  private finished = false;

  constructor(
    private readonly pool: HashWorkerPool,
    private readonly id: number,
  ) {
    pool.join(id, {
      hashed: (bytes) => {
        this.hashedBytes += bytes;
        this.wake();
      },
      done: (value) => {
        this.finished = true;
        pool.leave(id);
        this.result?.resolve(value);
      },
      failed: (err) => {
        this.failure = err;
        this.finished = true;
        this.result?.reject(err);
        this.wake();
      },
    });
  }

  get backlog(): number {
    return this.sent + this.pendingBytes - this.hashedBytes;
  }

  update(chunk: Buffer): void {
    if (this.finished) throw new Error('digest() was already called');
    if (chunk.length === 0) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= BATCH_BYTES) this.flush();
  }

  caughtUp(limit = DEFAULT_BACKLOG_LIMIT): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    // Batches still being gathered count too: send them, or the worker could never catch up.
    if (this.backlog > limit && this.pendingBytes > 0) this.flush();
    if (this.backlog <= limit) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ limit, resolve, reject }));
  }

  digest(): Promise<{ sha1: string; sha256: string }> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    this.flush();
    return new Promise((resolve, reject) => {
      this.result = { resolve, reject };
      this.pool.post({ op: 'digest', id: this.id });
    });
  }

  discard(): void {
    if (this.finished) return;
    this.finished = true;
    this.pending = [];
    this.pendingBytes = 0;
    if (this.sent > 0) this.pool.post({ op: 'drop', id: this.id });
    this.pool.leave(this.id);
  }

  private flush(): void {
    if (this.pendingBytes === 0) return;
    // Its own ArrayBuffer (allocUnsafe may hand out a slice of a shared pool), so it can be transferred.
    const batch = Buffer.allocUnsafeSlow(this.pendingBytes);
    let offset = 0;
    for (const chunk of this.pending) offset += chunk.copy(batch, offset);
    this.pending = [];
    this.sent += this.pendingBytes;
    this.pendingBytes = 0;
    this.pool.post({ op: 'data', id: this.id, buffer: batch.buffer as ArrayBuffer });
  }

  private wake(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const waiter of waiting) {
      if (this.failure !== undefined) waiter.reject(this.failure);
      else if (this.backlog <= waiter.limit) waiter.resolve();
      else this.waiters.push(waiter);
    }
  }
}
