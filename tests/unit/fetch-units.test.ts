import { createHash } from 'node:crypto';
import { readdir, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { BodyRelay } from '../../src/broker/body-relay.js';
import { EventBus } from '../../src/broker/event-bus.js';
import type { ContentCache, Upstream, UpstreamRequest } from '../../src/broker/ports.js';
import { FetchService, type FetchResponse } from '../../src/broker/fetch-service.js';
import { UpstreamExchange } from '../../src/broker/upstream-exchange.js';
import { createTokenPolicy } from '../../src/broker/policy.js';
import { FetchLedger } from '../../src/broker/fetch-ledger.js';
import { createFsContentCache, type FsContentCache } from '../../src/daemon/fs-content-cache.js';
import { createLogger } from '../../src/daemon/logger.js';
import { formatEta, formatProgress, ProgressBar } from '../../src/cli/progress.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { TestTokenAccess } from '../helpers/test-token-access.js';
import { makeTempHome } from '../helpers/test-daemon.js';

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
const sha1 = (data: Buffer | string): string => createHash('sha1').update(data).digest('hex');

describe('BodyRelay', () => {
  it('withholds the last chunk until the digest matched, then releases it', async () => {
    const chunks = [Buffer.from('aaa'), Buffer.from('bbb'), Buffer.from('ccc')];
    const relay = new BodyRelay({ expected: { sha256: sha256('aaabbbccc') } });
    const seen: string[] = [];
    relay.on('data', (c: Buffer) => seen.push(c.toString()));
    relay.write(chunks[0]);
    relay.write(chunks[1]);
    relay.write(chunks[2]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual(['aaa', 'bbb']);
    relay.end();
    await new Promise((resolve) => relay.once('end', resolve));
    expect(seen).toEqual(['aaa', 'bbb', 'ccc']);
    expect(relay.bytesReleased).toBe(9);
  });

  it('on a mismatch reports it first, then errors without releasing the last chunk', async () => {
    const reports: unknown[] = [];
    const relay = new BodyRelay({ expected: { sha1: sha1('right') }, onMismatch: (m) => reports.push(m) });
    const seen: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        seen.push(chunk.toString());
        done();
      },
    });
    const error = await pipeline(Readable.from([Buffer.from('wr'), Buffer.from('ong')]), relay, sink).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'BROKER_CHECKSUM_MISMATCH', details: { algorithm: 'sha1', expected: sha1('right'), actual: sha1('wrong') } });
    expect(reports).toHaveLength(1);
    expect(seen.join('')).toBe('wr');
  });

  it('without a digest passes every chunk straight through', async () => {
    const relay = new BodyRelay({ expected: {} });
    const out = new PassThrough();
    const seen: string[] = [];
    out.on('data', (c: Buffer) => seen.push(c.toString()));
    relay.pipe(out);
    relay.write(Buffer.from('x'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual(['x']);
  });
});

describe('FetchLedger', () => {
  it('keeps the first final outcome and forgets the oldest beyond its capacity', () => {
    const ledger = new FetchLedger(new FakeClock(), 3);
    ledger.start('a', 'https://x/a');
    expect(ledger.finish('a', 'checksum-mismatch')).toBe(true);
    expect(ledger.finish('a', 'client-aborted')).toBe(false);
    expect(ledger.get('a')?.outcome).toBe('checksum-mismatch');
    for (const id of ['b', 'c', 'd']) ledger.start(id, 'https://x');
    expect(ledger.get('a')).toBeUndefined();
    expect(ledger.get('d')?.outcome).toBe('in-progress');
    expect(ledger.size).toBe(3);
  });
});

describe('fs content cache', () => {
  const homes: string[] = [];
  afterEach(async () => {
    for (const home of homes.splice(0)) await rm(home, { recursive: true, force: true });
  });

  async function makeCache(maxBytes: number, now = () => Date.now()): Promise<{ cache: FsContentCache; dir: string; home: string }> {
    const home = await makeTempHome('tbc-');
    homes.push(home);
    const logger = createLogger({ level: 'silent' });
    return { cache: createFsContentCache({ cacheDir: home, maxBytes: () => maxBytes, log: logger, now }), dir: path.join(home, 'content'), home };
  }

  async function store(cache: FsContentCache, url: string, body: string): Promise<void> {
    const writer = await cache.begin(body.length);
    if (writer === undefined) throw new Error('no writer');
    await writer.write(Buffer.from(body));
    await writer.commit({ url, sha1: sha1(body), sha256: sha256(body), size: body.length });
  }

  async function read(stream: Readable): Promise<string> {
    let out = '';
    for await (const chunk of stream) out += String(chunk);
    return out;
  }

  it('finds a body by URL and either digest, and only for the URL it came from', async () => {
    const { cache } = await makeCache(1024);
    await store(cache, 'https://s/a', 'alpha');
    const hit = await cache.lookup({ url: 'https://s/a', sha1: sha1('alpha') });
    expect(hit?.size).toBe(5);
    expect(await read(hit!.open())).toBe('alpha');
    expect(await cache.lookup({ url: 'https://s/a', sha256: sha256('alpha') })).toBeDefined();
    expect(await cache.lookup({ url: 'https://s/other', sha256: sha256('alpha') })).toBeUndefined();
    expect(await cache.lookup({ url: 'https://s/a', sha256: sha256('beta') })).toBeUndefined();
  });

  it('nothing is visible before commit, and an aborted write leaves no file', async () => {
    const { cache, dir } = await makeCache(1024);
    const writer = await cache.begin(undefined);
    await writer!.write(Buffer.from('partial'));
    expect(await cache.lookup({ url: 'https://s/p', sha256: sha256('partial') })).toBeUndefined();
    await writer!.abort();
    expect(await readdir(dir)).toEqual([]);
  });

  it('evicts the least recently used bodies beyond the size cap', async () => {
    let t = 1_000_000;
    const { cache } = await makeCache(30, () => t);
    await store(cache, 'https://s/1', 'one-one-one'); // 11 bytes
    t += 1000;
    await store(cache, 'https://s/2', 'two-two-two');
    t += 1000;
    // Using 1 makes 2 the least recently used.
    expect(await cache.lookup({ url: 'https://s/1', sha256: sha256('one-one-one') })).toBeDefined();
    t += 1000;
    await store(cache, 'https://s/3', 'three-three');
    expect(await cache.lookup({ url: 'https://s/2', sha256: sha256('two-two-two') })).toBeUndefined();
    expect(await cache.lookup({ url: 'https://s/1', sha256: sha256('one-one-one') })).toBeDefined();
    expect(await cache.lookup({ url: 'https://s/3', sha256: sha256('three-three') })).toBeDefined();
    expect((await cache.usage()).bytes).toBeLessThanOrEqual(30);
    // A body bigger than the whole cache is not even started.
    expect(await cache.begin(31)).toBeUndefined();
  });

  it('rebuilds its index from disk, dropping temp files and damaged entries', async () => {
    const { cache, dir, home } = await makeCache(1024);
    await store(cache, 'https://s/keep', 'keep me');
    await store(cache, 'https://s/damaged', 'damaged');
    await writeFile(path.join(dir, sha256('damaged')), 'x');
    // A body whose writer died mid-write (a pid that is surely gone): the one sweeper removes it.
    await writeFile(path.join(dir, `.body.${2 ** 22 + 1}.0123456789ab.tmp`), 'leftover');
    const old = new Date(Date.now() - 86_400_000);
    await utimes(path.join(dir, sha256('keep me')), old, old);

    const reopened = createFsContentCache({ cacheDir: home, maxBytes: () => 1024, log: createLogger({ level: 'silent' }) });
    expect(await reopened.lookup({ url: 'https://s/keep', sha256: sha256('keep me') })).toBeDefined();
    expect(await reopened.lookup({ url: 'https://s/damaged', sha256: sha256('damaged') })).toBeUndefined();
    expect((await readdir(dir)).sort()).toEqual([sha256('keep me'), `${sha256('keep me')}.json`].sort());
  });

  it('with a cap of 0 caches nothing', async () => {
    const { cache } = await makeCache(0);
    expect(await cache.begin(1)).toBeUndefined();
  });
});

describe('progress bar', () => {
  it('shows bytes, percentage, rate and ETA', () => {
    const line = formatProgress({ received: 50 * 1024 * 1024, total: 100 * 1024 * 1024, resumedFrom: 0, elapsedMs: 5000, width: 10 });
    expect(line).toBe('[#####-----]  50%  50.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 0:05');
    expect(formatProgress({ received: 2048, total: undefined, resumedFrom: 0, elapsedMs: 1000, width: 10 })).toBe('2.0 KiB  2.0 KiB/s');
    expect(formatEta(3725)).toBe('1:02:05');
  });

  it('fits the terminal: drops the bar, then ETA, rate and total, never wraps', () => {
    const p = { received: 50 * 1024 * 1024, total: 100 * 1024 * 1024, resumedFrom: 0, elapsedMs: 5000, width: 24 };
    expect(formatProgress({ ...p, columns: 60 })).toBe(' 50%  50.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 0:05');
    expect(formatProgress({ ...p, columns: 40 })).toBe(' 50%  50.0 MiB / 100.0 MiB  10.0 MiB/s');
    expect(formatProgress({ ...p, columns: 20 })).toBe(' 50%  50.0 MiB');
    for (const columns of [5, 12, 30, 45, 80, 200]) expect(formatProgress({ ...p, columns }).length).toBeLessThan(columns);
  });

  it('counts only this run for the rate of a resumed download, and redraws in place', () => {
    let t = 0;
    let out = '';
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        out += chunk.toString();
        done();
      },
    });
    const bar = new ProgressBar(stream, () => t, 4);
    t = 1000;
    bar.update(600, 1000, 500);
    bar.done(1000, 1000, 500);
    expect(out.startsWith('\r[##--]  60%  600 B / 1000 B  100 B/s  ETA 0:04')).toBe(true);
    expect(out.endsWith('\n')).toBe(true);
  });
});

describe('FetchService with in-memory ports', () => {
  const url = 'https://files.example/artifactory/swtools/external/a.bin';
  const body = Buffer.from('in-memory upstream body');

  function makeService(cache: ContentCache, requests: UpstreamRequest[]): FetchService {
    const clock = new FakeClock();
    const upstream: Upstream = {
      request: async (request) => {
        requests.push(request);
        return { status: 206, headers: { 'content-range': `bytes 0-${body.length - 1}/${body.length}`, 'content-length': String(body.length), 'set-cookie': 'x=y' }, body: Readable.from([body]) };
      },
    };
    const server = { name: 'files', origin: 'https://files.example', tokenInfoPath: '/t', pingPath: '/p', authenticatedPrefixes: ['/artifactory/'], publicPrefixes: ['/artifactory/swtools/external/'], requestForm: 'as-given' as const, publicMirrorOrigin: null };
    const policy = createTokenPolicy([server], { allowInsecureLoopback: false });
    const tokens = new TestTokenAccess('tok');
    const exchange = new UpstreamExchange({ policy: () => policy, upstream, tokens, clock, userAgent: 'test' });
    return new FetchService({ exchange, cache, events: new EventBus(clock), clock, log: createLogger({ level: 'silent' }) });
  }

  async function collect(response: FetchResponse): Promise<Buffer> {
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise((resolve) => sink.once('end', resolve));
    response.send(sink);
    await ended;
    return Buffer.concat(chunks);
  }

  it('a cache that fails is bypassed: the body comes from upstream', async () => {
    const broken: ContentCache = {
      lookup: async () => {
        throw new Error('EIO: cache disk gone');
      },
      begin: async () => {
        throw new Error('ENOSPC');
      },
      remove: async () => undefined,
    };
    const requests: UpstreamRequest[] = [];
    const service = makeService(broken, requests);
    const response = await service.fetch({ requestId: 'r1', url, sha256: sha256(body), headers: {}, signal: new AbortController().signal });
    expect(response.status).toBe(200);
    expect(response.headers).toEqual({ 'content-length': String(body.length) });
    expect(await collect(response)).toEqual(body);
    expect(requests[0]).toMatchObject({ method: 'GET', url, headers: { range: 'bytes=0-', 'accept-encoding': 'identity' } });
    expect(requests[0]?.headers.authorization).toBeUndefined();
    await expect.poll(() => service.ledger.get('r1')).toMatchObject({ outcome: 'ok', bytes: body.length, cache: 'miss' });
  });
});
