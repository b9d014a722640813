import { createHash } from 'node:crypto';
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { startForwardProxy } from '../fixtures/forward-proxy.js';
import { makeTempHome, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { makeTestCerts, startHttpsFileServer } from '../helpers/tls-certs.js';

const MiB = 1024 * 1024;
const BIG = '/artifactory/swtools/external/big/firmware-64m.bin';
/** Far beyond every buffer on the way (socket, stream high-water marks, cache writes): streaming, not buffering, is what lets it through; the size of a real firmware bundle adds only time. */
const BIG_SIZE = 64 * MiB;
const FILE = '/artifactory/swtools/external/apps/app-8m.tgz';

function daemonConfig(af: FakeArtifactory): Record<string, unknown> {
  return {
    allowInsecureLoopback: true,
    servers: [{ name: 'nordic', origin: af.origin }],
    officialSource: af.url('/artifactory/swtools/external/ncd/apps/official/source.json'),
    logLevel: 'warn',
  };
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

describe('fetch through the real daemon', () => {
  let af: FakeArtifactory;
  let daemon: TestDaemon;
  let work: string;
  beforeAll(async () => {
    af = await startFakeArtifactory();
    daemon = await startTestDaemon({ config: daemonConfig(af) });
    work = await makeTempHome('tbw-');
  });
  afterAll(async () => {
    await daemon.cleanup();
    await af.close();
    await rm(work, { recursive: true, force: true });
  });
  beforeEach(() => {
    af.clearFaults();
    af.clearRequests();
  });

  it('streams a 64 MiB file byte-identical with its sha256 (hashed by the client while streaming)', async () => {
    af.setFile(BIG, { size: BIG_SIZE, seed: 42 });
    const { sha256 } = await af.digestOf(BIG);
    const result = await daemon.client.fetch(af.url(BIG), { sha256 });
    expect(result.status).toBe(200);
    expect(result.headers['content-length']).toBe(String(BIG_SIZE));
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of result.body) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    expect(size).toBe(BIG_SIZE);
    expect(hash.digest('hex')).toBe(sha256);
    expect(await daemon.client.fetchOutcome(result.requestId)).toMatchObject({ outcome: 'ok', bytes: BIG_SIZE, cache: 'miss' });
    // Verified, so it went into the cache (status shows it).
    expect((await daemon.client.status()).cache).toMatchObject({ entries: 1, bytes: BIG_SIZE });
  });

  it('fetch -o with a corrupted body leaves no file, no part file, and exits 6', async () => {
    af.setFile(FILE, { size: 8 * MiB, seed: 5 });
    const { sha256 } = await af.digestOf(FILE);
    af.setFault(FILE, { kind: 'corrupt' }, { times: 1 });
    const out = path.join(work, 'corrupt.tgz');
    const result = await runCli(['fetch', af.url(FILE), '-o', out, '--sha256', sha256], { env: daemon.env });
    expect(result.code).toBe(6);
    expect(result.stderr).toMatch(/checksum|does not match/i);
    expect(result.stderr).toContain('BROKER_CHECKSUM_MISMATCH');
    expect(await readdir(work)).not.toContain('corrupt.tgz');
    expect((await readdir(work)).filter((n) => n.startsWith('corrupt.tgz'))).toEqual([]);
  });

  it('an upstream that drops mid-stream leaves the .part (exit 5); a rerun resumes with Range and completes', async () => {
    af.setFile(FILE, { size: 8 * MiB, seed: 6 });
    const { sha256, sha1 } = await af.digestOf(FILE);
    af.setFault(FILE, { kind: 'drop', afterBytes: 3 * MiB }, { times: 1 });
    const out = path.join(work, 'resumed.tgz');
    const first = await runCli(['fetch', af.url(FILE), '-o', out, '--sha256', sha256], { env: daemon.env });
    expect(first.code).toBe(5);
    expect(first.stderr).toContain('BROKER_UPSTREAM_UNREACHABLE');
    const partSize = (await stat(`${out}.part`)).size;
    expect(partSize).toBeGreaterThan(0);
    expect(partSize).toBeLessThanOrEqual(3 * MiB);
    expect(await exists(out)).toBe(false);

    af.clearRequests();
    const second = await runCli(['fetch', af.url(FILE), '-o', out, '--sha256', sha256], { env: daemon.env });
    expect(second.code).toBe(0);
    const resumed = af.requestsTo(FILE);
    expect(resumed).toHaveLength(1);
    expect(resumed[0]?.headers.range).toBe(`bytes=${partSize}-`);
    expect(resumed[0]?.headers['if-range']).toBe(sha1);
    const body = await readFile(out);
    expect(body.length).toBe(8 * MiB);
    expect(createHash('sha256').update(body).digest('hex')).toBe(sha256);
    expect(await exists(`${out}.part`)).toBe(false);
    expect(await exists(`${out}.part.json`)).toBe(false);
  });

  it('a resumed part file that does not match the digest is deleted (exit 6)', async () => {
    af.setFile(FILE, { size: 2 * MiB, seed: 8 });
    const { sha256, sha1 } = await af.digestOf(FILE);
    const out = path.join(work, 'tampered.tgz');
    await writeFile(`${out}.part`, Buffer.alloc(MiB, 0x55));
    await writeFile(`${out}.part.json`, JSON.stringify({ url: af.url(FILE), etag: sha1 }));
    const result = await runCli(['fetch', af.url(FILE), '-o', out, '--sha256', sha256], { env: daemon.env });
    expect(result.code).toBe(6);
    expect(af.requestsTo(FILE)[0]?.headers.range).toBe(`bytes=${MiB}-`);
    expect((await readdir(work)).filter((n) => n.startsWith('tampered.tgz'))).toEqual([]);
  });

  it('without -o writes the body to stdout when it is not a terminal', async () => {
    af.setFile('/artifactory/swtools/external/hello.txt', 'hello through the broker\n');
    const result = await runCli(['fetch', af.url('/artifactory/swtools/external/hello.txt')], { env: daemon.env });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('hello through the broker\n');
    expect(result.stderr).toBe('');
  });

  it('exit codes: token missing 4, upstream 5, not allowed 1, with no upstream request for refused URLs', async () => {
    af.setFile('/artifactory/swtools/restricted/r.bin', 'r');
    // The placeholder token access has no token: restricted URLs are refused before any request.
    // Three independent commands: side by side.
    const [token, missing, refused] = await Promise.all([
      runCli(['fetch', af.url('/artifactory/swtools/restricted/r.bin'), '-o', path.join(work, 'r.bin')], { env: daemon.env }),
      runCli(['fetch', af.url('/artifactory/swtools/external/nope.bin'), '-o', path.join(work, 'nope.bin')], { env: daemon.env }),
      runCli(['fetch', af.url('/ui/admin'), '-o', path.join(work, 'x')], { env: daemon.env }),
    ]);
    expect(token.code).toBe(4);
    expect(token.stderr).toContain('BROKER_TOKEN_MISSING');
    expect(missing.code).toBe(5);
    expect(missing.stderr).toContain('BROKER_UPSTREAM_NOT_FOUND');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('BROKER_URL_NOT_ALLOWED');
    expect(af.requestsTo('/artifactory/swtools/restricted/')).toHaveLength(0);
    expect(af.requestsTo('/ui/')).toHaveLength(0);
  });
});

describe('fetch with the real token lifecycle', () => {
  it('a set token goes to authenticated prefixes only; an upstream 401 marks it invalid and stops further requests', async () => {
    const af = await startFakeArtifactory();
    const daemon = await startTestDaemon({ config: { ...daemonConfig(af), secretStore: 'memory' } });
    try {
      const TOKEN = 'tok-e2e-7f3a9c';
      af.addToken(TOKEN);
      await daemon.client.setToken(TOKEN);
      af.setFile('/artifactory/swtools/restricted/r.bin', 'restricted');
      af.setFile('/artifactory/swtools/external/p.bin', 'public');
      const read = async (url: string): Promise<string> => {
        let text = '';
        for await (const chunk of (await daemon.client.fetch(url)).body) text += String(chunk);
        return text;
      };
      expect(await read(af.url('/artifactory/swtools/restricted/r.bin'))).toBe('restricted');
      expect(await read(af.url('/artifactory/swtools/external/p.bin'))).toBe('public');
      expect(af.requestsTo('/artifactory/swtools/restricted/r.bin')[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(af.requestsTo('/artifactory/swtools/external/p.bin')[0]?.headers.authorization).toBeUndefined();

      af.revokeToken(TOKEN);
      await expect(daemon.client.fetch(af.url('/artifactory/swtools/restricted/r.bin'))).rejects.toMatchObject({ code: 'BROKER_TOKEN_INVALID' });
      expect((await daemon.client.token()).state).toBe('invalid');
      await expect(daemon.client.fetch(af.url('/artifactory/swtools/restricted/r.bin'))).rejects.toMatchObject({ code: 'BROKER_TOKEN_INVALID' });
      expect(af.requestsTo('/artifactory/swtools/restricted/r.bin')).toHaveLength(2);
      expect(daemon.output()).not.toContain(TOKEN);
    } finally {
      await daemon.cleanup();
      await af.close();
    }
  });
});

describe('the daemon honours the network environment', () => {
  it('HTTP_PROXY: fetches go through the proxy', async () => {
    const af = await startFakeArtifactory();
    const proxy = await startForwardProxy();
    const daemon = await startTestDaemon({ config: daemonConfig(af), env: { HTTP_PROXY: proxy.url } });
    try {
      af.setFile('/artifactory/swtools/external/p.txt', 'proxied');
      const result = await daemon.client.fetch(af.url('/artifactory/swtools/external/p.txt'));
      let text = '';
      for await (const chunk of result.body) text += String(chunk);
      expect(text).toBe('proxied');
      // (The official source's refresh at start goes through the proxy too.)
      expect(proxy.requests.filter((r) => r.url === af.url('/artifactory/swtools/external/p.txt'))).toHaveLength(1);
      expect(af.requestsTo('/artifactory/swtools/external/p.txt')).toHaveLength(1);
    } finally {
      await daemon.cleanup();
      await proxy.close();
      await af.close();
    }
  });

  it('NODE_EXTRA_CA_CERTS: an https server signed by an extra CA is trusted', async () => {
    const home = await makeTempHome('tbca-');
    const certs = await makeTestCerts(home);
    const server = await startHttpsFileServer(certs, 'over tls');
    const config = { servers: [{ name: 'mirror', origin: server.origin }], officialSource: `${server.origin}/artifactory/swtools/external/source.json`, logLevel: 'warn' };
    const url = `${server.origin}/artifactory/swtools/external/t.txt`;
    const trusting = await startTestDaemon({ config, env: { NODE_EXTRA_CA_CERTS: certs.caFile } });
    const plain = await startTestDaemon({ config });
    try {
      const result = await trusting.client.fetch(url);
      let text = '';
      for await (const chunk of result.body) text += String(chunk);
      expect(text).toBe('over tls');
      await expect(plain.client.fetch(url)).rejects.toMatchObject({ code: 'BROKER_UPSTREAM_UNREACHABLE', details: { reason: 'tls' } });
    } finally {
      await trusting.cleanup();
      await plain.cleanup();
      await server.close();
      await rm(home, { recursive: true, force: true });
    }
  });
});
