import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { HashWorkerPool } from '../../src/node/hash-worker.js';
import { FileDigests } from '../../src/protocol/file-digests.js';
import { waitUntil } from '../helpers/wait-for.js';

function onThread(chunks: readonly Buffer[]): { sha1: string; sha256: string } {
  const digests = new FileDigests();
  for (const chunk of chunks) digests.update(chunk);
  return digests.digest();
}

describe('hash worker', () => {
  const pools: HashWorkerPool[] = [];
  const pool = (idleMs?: number): HashWorkerPool => {
    const created = new HashWorkerPool(idleMs);
    pools.push(created);
    return created;
  };
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close()));
  });

  it('gives the digests FileDigests gives, across batch boundaries and empty chunks', async () => {
    const chunks = [randomBytes(1), Buffer.alloc(0), randomBytes(700_000), randomBytes(65_536), randomBytes(1_500_000), randomBytes(3)];
    const digests = pool().digests();
    for (const chunk of chunks) digests.update(chunk);
    expect(await digests.digest()).toEqual(onThread(chunks));
  });

  it('keeps downloads apart when they interleave on the one worker', async () => {
    const workers = pool();
    const a = [randomBytes(2_000_000), randomBytes(10)];
    const b = [randomBytes(5), randomBytes(1_200_000)];
    const da = workers.digests();
    const db = workers.digests();
    da.update(a[0] as Buffer);
    db.update(b[0] as Buffer);
    db.update(b[1] as Buffer);
    da.update(a[1] as Buffer);
    const [ra, rb] = await Promise.all([da.digest(), db.digest()]);
    expect(ra).toEqual(onThread(a));
    expect(rb).toEqual(onThread(b));
  });

  it('an empty download has the digests of no bytes', async () => {
    expect(await pool().digests().digest()).toEqual(onThread([]));
  });

  it('caughtUp() waits for the backlog to fall to the limit', async () => {
    const digests = pool().digests();
    for (let i = 0; i < 6; i++) digests.update(randomBytes(1024 * 1024));
    expect(digests.backlog).toBe(6 * 1024 * 1024);
    await digests.caughtUp(0);
    expect(digests.backlog).toBe(0);
  });

  it('the worker stops once no download uses it, and starts again for the next', async () => {
    const workers = pool(0);
    const first = workers.digests();
    first.update(randomBytes(10));
    await first.digest();
    expect(workers.running).toBe(true);
    await waitUntil('the idle worker to stop', () => !workers.running);
    const second = workers.digests();
    const chunk = randomBytes(100);
    second.update(chunk);
    expect(await second.digest()).toEqual(onThread([chunk]));
  });

  it('pending digests fail when the worker is stopped', async () => {
    const workers = pool();
    const digests = workers.digests();
    digests.update(randomBytes(3 * 1024 * 1024));
    const refused = expect(digests.digest()).rejects.toThrow(/stopped/);
    await workers.close();
    await refused;
  });
});
