/**
 * Proves the fake Artifactory behaves like files.nordicsemi.com (and misbehaves on demand), so the
 * upstream tests built on it test the daemon, not a fixture that silently does the wrong thing.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { PATTERN_SIZE, generateContent, startFakeArtifactory } from '../fixtures/fake-artifactory.js';
import type { FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { waitUntil } from '../helpers/wait-for.js';

const TOKEN = 'cmVmdGtuOjAxOjE3OTk5OTk5OTk6ZmFrZQ';
const RESTRICTED = '/artifactory/swtools/internal/ncd/apps/app-1.0.0.tgz';
const PUBLIC = '/artifactory/swtools/external/ncd/apps/official/pc-nrfconnect-ble-4.0.4.tgz';
const BIG = '/artifactory/swtools/external/big.bin';
const BODY = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz'.repeat(1000)); // 36000 bytes

const auth = { authorization: `Bearer ${TOKEN}` };

function sha1(b: Buffer | string): string {
  return createHash('sha1').update(b).digest('hex');
}

/** Attaches handlers at once so a rejection that is asserted later is not reported as unhandled. */
function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

async function bytes(res: Awaited<ReturnType<typeof request>>): Promise<Buffer> {
  return Buffer.from(await res.body.arrayBuffer());
}

describe('fake artifactory', () => {
  let af: FakeArtifactory;

  beforeAll(async () => {
    af = await startFakeArtifactory();
    af.addToken(TOKEN, { token_id: 'tid-1', subject: 'jfac@x/users/alice', expiry: 4102444800, description: 'ci' });
    af.setFile(RESTRICTED, BODY);
    af.setFile(PUBLIC, BODY);
  });
  afterAll(async () => {
    await af.close();
  });

  describe('tokens and ping', () => {
    it('answers token info for a known bearer token', async () => {
      const res = await request(af.url('/access/api/v1/tokens/me'), { headers: auth });
      expect(res.statusCode).toBe(200);
      const info = (await res.body.json()) as Record<string, unknown>;
      expect(info).toMatchObject({ token_id: 'tid-1', subject: 'jfac@x/users/alice', expiry: 4102444800, description: 'ci' });
      expect(typeof info.issued_at).toBe('number');
    });

    it('answers 401 with the Artifactory errors envelope for missing, unknown, revoked and expired tokens', async () => {
      const envelope = async (headers: Record<string, string>) => {
        const res = await request(af.url('/access/api/v1/tokens/me'), { headers });
        expect(res.statusCode).toBe(401);
        expect(res.headers['content-type']).toBe('application/json');
        return res.body.json();
      };
      expect(await envelope({})).toEqual({ errors: [{ status: 401, message: 'Bad credentials' }] });
      expect(await envelope({ authorization: 'Bearer nope' })).toEqual({
        errors: [{ status: 401, message: 'Bad credentials' }],
      });

      af.addToken('to-revoke');
      expect((await request(af.url('/access/api/v1/tokens/me'), { headers: { authorization: 'Bearer to-revoke' } })).statusCode).toBe(200);
      af.revokeToken('to-revoke');
      expect(await envelope({ authorization: 'Bearer to-revoke' })).toEqual({
        errors: [{ status: 401, message: 'Bad credentials' }],
      });

      af.addToken('to-expire');
      af.expireToken('to-expire');
      expect(await envelope({ authorization: 'Bearer to-expire' })).toEqual({
        errors: [{ status: 401, message: 'Token expired' }],
      });
      af.addToken('past-expiry', { expiry: Math.floor(Date.now() / 1000) - 10 });
      const past = (await envelope({ authorization: 'Bearer past-expiry' })) as { errors: { message: string }[] };
      expect(past.errors[0]?.message).toMatch(/expired/);
    });

    it('answers ping with OK text/plain', async () => {
      const res = await request(af.url('/artifactory/api/system/ping'));
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/plain');
      expect(await res.body.text()).toBe('OK');
    });

    it('records requests with lower-case headers and the query', async () => {
      af.clearRequests();
      await (await request(af.url('/artifactory/api/system/ping?x=1'), { headers: { 'X-Probe': 'yes' } })).body.text();
      expect(af.requests).toHaveLength(1);
      const r = af.requests[0];
      expect(r).toMatchObject({ method: 'GET', path: '/artifactory/api/system/ping?x=1', status: 200 });
      expect(r?.headers['x-probe']).toBe('yes');
      expect(af.requestsTo('/artifactory/api/')).toHaveLength(1);
      expect(af.requestsTo('/access/')).toHaveLength(0);
    });
  });

  describe('access control', () => {
    it('needs a token under /artifactory/ but not under swtools/external', async () => {
      const anon = await request(af.url(RESTRICTED));
      expect(anon.statusCode).toBe(401);
      expect(anon.headers['www-authenticate']).toContain('Basic');
      expect(await anon.body.json()).toEqual({ errors: [{ status: 401, message: 'Authentication is required' }] });

      const withToken = await request(af.url(RESTRICTED), { headers: auth });
      expect(withToken.statusCode).toBe(200);
      expect((await bytes(withToken)).equals(BODY)).toBe(true);

      const pub = await request(af.url(PUBLIC));
      expect(pub.statusCode).toBe(200);
      expect((await bytes(pub)).equals(BODY)).toBe(true);
    });

    it('answers 403 for forbidden paths and 404 for unknown ones', async () => {
      const path = '/artifactory/swtools/internal/secret.tgz';
      af.setFile(path, 'x');
      af.setForbidden(path);
      const res = await request(af.url(path), { headers: auth });
      expect(res.statusCode).toBe(403);
      const body = (await res.body.json()) as { errors: { status: number; message: string }[] };
      expect(body.errors[0]?.status).toBe(403);

      const missing = await request(af.url('/artifactory/swtools/external/nope.tgz'));
      expect(missing.statusCode).toBe(404);
      expect(await missing.body.json()).toEqual({ errors: [{ status: 404, message: 'File not found.' }] });
    });
  });

  describe('the UI download API form', () => {
    it('answers /ui/api/v1/download?repoKey=R&path=P exactly as /artifactory/R/P (auth, ETag, Range, faults) and logs the form', async () => {
      const long = af.downloadUrl(RESTRICTED);
      expect(long).toBe(
        `${af.origin}/ui/api/v1/download?isNativeBrowsing=false&repoKey=swtools&path=internal/ncd/apps/app-1.0.0.tgz`,
      );
      af.clearRequests();
      const anon = await request(long);
      expect(anon.statusCode).toBe(401);
      await anon.body.text();
      const ranged = await request(long, { headers: { ...auth, range: 'bytes=10-19' } });
      expect(ranged.statusCode).toBe(206);
      expect(ranged.headers.etag).toBe(sha1(BODY));
      expect((await bytes(ranged)).equals(BODY.subarray(10, 20))).toBe(true);
      const pub = await request(af.downloadUrl(PUBLIC));
      expect(pub.statusCode).toBe(200);
      expect((await bytes(pub)).equals(BODY)).toBe(true);

      af.setFault(RESTRICTED, { kind: 'status', status: 429, retryAfter: 7 }, { times: 1 });
      const limited = await request(long, { headers: auth });
      expect(limited.statusCode).toBe(429);
      expect(limited.headers['retry-after']).toBe('7');
      await limited.body.text();

      expect(af.requestsFor(RESTRICTED).map((r) => [r.form, r.authorization, r.status])).toEqual([
        ['download-api', false, 401],
        ['download-api', true, 206],
        ['download-api', true, 429],
      ]);
      expect(af.requests[0]?.path).toBe(long.slice(af.origin.length));
      expect(af.requestsFor(PUBLIC)[0]).toMatchObject({ form: 'download-api', authorization: false, status: 200 });
    });

    it('decodes a percent-encoded path once and ignores other parameters', async () => {
      af.setFile('/artifactory/swtools/external/with space.txt', 'spaced');
      const res = await request(af.url('/ui/api/v1/download?repoKey=swtools&x=1&path=external%2Fwith%20space.txt'));
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('spaced');
    });

    it('answers 400 unless the query names exactly one repoKey and one path', async () => {
      for (const query of ['repoKey=swtools', 'path=external/a', 'repoKey=a&repoKey=b&path=x', 'repoKey=swtools&path=a&path=b']) {
        const res = await request(af.url(`/ui/api/v1/download?${query}`));
        expect(res.statusCode).toBe(400);
        await res.body.text();
      }
    });
  });

  describe('Artifactory file semantics', () => {
    it('sends the bare sha1 as ETag and checksum headers', async () => {
      const res = await request(af.url(PUBLIC), { method: 'HEAD' });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      expect(res.headers.etag).toBe(sha1(BODY));
      expect(res.headers['x-checksum-sha1']).toBe(sha1(BODY));
      expect(res.headers['x-checksum-sha256']).toBe(createHash('sha256').update(BODY).digest('hex'));
      expect(res.headers['accept-ranges']).toBe('bytes');
      expect(Date.parse(String(res.headers['last-modified']))).not.toBeNaN();
      expect(await af.digestOf(PUBLIC)).toEqual({
        sha1: sha1(BODY),
        sha256: createHash('sha256').update(BODY).digest('hex'),
        size: BODY.length,
      });
    });

    it('answers 304 only when If-None-Match echoes the ETag byte for byte', async () => {
      const etag = sha1(BODY);
      const same = await request(af.url(PUBLIC), { headers: { 'if-none-match': etag } });
      expect(same.statusCode).toBe(304);
      expect((await bytes(same)).length).toBe(0);

      const quoted = await request(af.url(PUBLIC), { headers: { 'if-none-match': `"${etag}"` } });
      expect(quoted.statusCode).toBe(200);
      expect((await bytes(quoted)).equals(BODY)).toBe(true);

      const weak = await request(af.url(PUBLIC), { headers: { 'if-none-match': `W/"${etag}"` } });
      expect(weak.statusCode).toBe(200);
      await weak.body.text();
    });

    it('sends a 200 without Range chunked, with no Content-Length', async () => {
      const res = await request(af.url(PUBLIC));
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-length']).toBeUndefined();
      expect(res.headers['transfer-encoding']).toBe('chunked');
      expect((await bytes(res)).equals(BODY)).toBe(true);
    });

    it('answers Range with 206, Content-Range and Content-Length', async () => {
      const mid = await request(af.url(PUBLIC), { headers: { range: 'bytes=10-19' } });
      expect(mid.statusCode).toBe(206);
      expect(mid.headers['content-range']).toBe(`bytes 10-19/${BODY.length}`);
      expect(mid.headers['content-length']).toBe('10');
      expect((await bytes(mid)).equals(BODY.subarray(10, 20))).toBe(true);

      const all = await request(af.url(PUBLIC), { headers: { range: 'bytes=0-' } });
      expect(all.statusCode).toBe(206);
      expect(all.headers['content-length']).toBe(String(BODY.length));
      expect(all.headers['content-range']).toBe(`bytes 0-${BODY.length - 1}/${BODY.length}`);
      expect((await bytes(all)).equals(BODY)).toBe(true);

      const suffix = await request(af.url(PUBLIC), { headers: { range: 'bytes=-5' } });
      expect(suffix.statusCode).toBe(206);
      expect((await bytes(suffix)).equals(BODY.subarray(BODY.length - 5))).toBe(true);
    });

    it('answers an unsatisfiable Range with 416', async () => {
      const res = await request(af.url(PUBLIC), { headers: { range: `bytes=${BODY.length}-` } });
      expect(res.statusCode).toBe(416);
      expect(res.headers['content-range']).toBe(`bytes */${BODY.length}`);
      await res.body.text();
    });

    it('honours If-Range only when it matches the ETag or Last-Modified exactly', async () => {
      const head = await request(af.url(PUBLIC), { method: 'HEAD' });
      await head.body.text();
      const lastModified = String(head.headers['last-modified']);

      const ok = await request(af.url(PUBLIC), { headers: { range: 'bytes=100-', 'if-range': sha1(BODY) } });
      expect(ok.statusCode).toBe(206);
      await ok.body.text();
      const byDate = await request(af.url(PUBLIC), { headers: { range: 'bytes=100-', 'if-range': lastModified } });
      expect(byDate.statusCode).toBe(206);
      await byDate.body.text();

      const changed = await request(af.url(PUBLIC), { headers: { range: 'bytes=100-', 'if-range': sha1('old') } });
      expect(changed.statusCode).toBe(200);
      expect(changed.headers['content-range']).toBeUndefined();
      expect((await bytes(changed)).equals(BODY)).toBe(true);
    });

    it('serves JSON documents with ETag = sha1 of the body and 304 on a match', async () => {
      const doc = { name: 'official', apps: [af.url('/artifactory/swtools/external/ncd/apps/official/ble.json')] };
      af.setJson('/artifactory/swtools/external/ncd/apps/official/source.json', doc);
      const res = await request(af.url('/artifactory/swtools/external/ncd/apps/official/source.json'));
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/json');
      expect(await res.body.json()).toEqual(doc);
      expect(res.headers.etag).toBe(sha1(JSON.stringify(doc)));

      const again = await request(af.url('/artifactory/swtools/external/ncd/apps/official/source.json'), {
        headers: { 'if-none-match': sha1(JSON.stringify(doc)) },
      });
      expect(again.statusCode).toBe(304);
      await again.body.text();
    });
  });

  describe('redirects to signed storage', () => {
    it('redirects to a second instance, which records whether Authorization arrived', async () => {
      const storage = await startFakeArtifactory({ protectedPrefixes: [] });
      try {
        storage.setFile('/bucket/app.tgz', BODY, { rejectAuthorizationHeader: true });
        const signed = storage.url('/bucket/app.tgz?X-Amz-Signature=abc');
        af.setRedirect('/artifactory/swtools/internal/redirected.tgz', signed);

        const anon = await request(af.url('/artifactory/swtools/internal/redirected.tgz'));
        expect(anon.statusCode).toBe(401); // the real server authenticates before redirecting
        await anon.body.text();

        const first = await request(af.url('/artifactory/swtools/internal/redirected.tgz'), { headers: auth });
        expect(first.statusCode).toBe(302);
        expect(first.headers.location).toBe(signed);
        await first.body.text();

        const good = await request(signed);
        expect(good.statusCode).toBe(200);
        expect((await bytes(good)).equals(BODY)).toBe(true);
        const leaked = await request(signed, { headers: auth });
        expect(leaked.statusCode).toBe(400);
        expect(await leaked.body.text()).toContain('Only one auth mechanism allowed');

        const seen = storage.requestsTo('/bucket/app.tgz');
        expect(seen.map((r) => r.headers.authorization)).toEqual([undefined, `Bearer ${TOKEN}`]);
        expect(seen[0]?.path).toBe('/bucket/app.tgz?X-Amz-Signature=abc');
      } finally {
        await storage.close();
      }
    });

    it('expires signed URLs after expireAfter answers', async () => {
      const storage = await startFakeArtifactory({ protectedPrefixes: [] });
      try {
        storage.setFile('/bucket/once.bin', 'abc', { expireAfter: 1 });
        const first = await request(storage.url('/bucket/once.bin'));
        expect(await first.body.text()).toBe('abc');
        const second = await request(storage.url('/bucket/once.bin'));
        expect(second.statusCode).toBe(403);
        expect(await second.body.text()).toContain('Request has expired');
      } finally {
        await storage.close();
      }
    });
  });

  describe('faults', () => {
    it('answers 429 with Retry-After once, then normally', async () => {
      af.setFault(PUBLIC, { kind: 'status', status: 429, retryAfter: 7 }, { times: 1 });
      const limited = await request(af.url(PUBLIC));
      expect(limited.statusCode).toBe(429);
      expect(limited.headers['retry-after']).toBe('7');
      expect(await limited.body.json()).toEqual({ errors: [{ status: 429, message: 'Too Many Requests' }] });
      const next = await request(af.url(PUBLIC));
      expect(next.statusCode).toBe(200);
      await next.body.text();
    });

    it('keeps a persistent fault until clearFaults()', async () => {
      af.setFault(PUBLIC, { kind: 'status', status: 503 });
      for (let i = 0; i < 3; i++) {
        const res = await request(af.url(PUBLIC));
        expect(res.statusCode).toBe(503);
        await res.body.text();
      }
      af.clearFaults(PUBLIC);
      const res = await request(af.url(PUBLIC));
      expect(res.statusCode).toBe(200);
      await res.body.text();
    });

    it('drops the connection mid-body after promising the full Content-Length', async () => {
      af.setFault(PUBLIC, { kind: 'drop', afterBytes: 1000 }, { times: 1 });
      const res = await request(af.url(PUBLIC));
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-length']).toBe(String(BODY.length));
      let received = 0;
      const consume = async () => {
        for await (const chunk of res.body) received += (chunk as Buffer).length;
      };
      await expect(consume()).rejects.toThrow();
      expect(received).toBe(1000);
      // one-shot: the next request gets the whole file
      const again = await request(af.url(PUBLIC));
      expect((await bytes(again)).equals(BODY)).toBe(true);
    });

    it('drops with a reset when asked', async () => {
      af.setFault(PUBLIC, { kind: 'drop', afterBytes: 10, reset: true }, { times: 1 });
      const res = await request(af.url(PUBLIC), { headers: { range: 'bytes=0-' } });
      expect(res.statusCode).toBe(206);
      await expect(res.body.arrayBuffer()).rejects.toThrow();
    });

    it('corrupts one byte but keeps the real checksums', async () => {
      af.setFault(PUBLIC, { kind: 'corrupt', offset: 5 }, { times: 1 });
      const res = await request(af.url(PUBLIC));
      const got = await bytes(res);
      expect(res.headers['x-checksum-sha1']).toBe(sha1(BODY));
      expect(got.length).toBe(BODY.length);
      expect(got.equals(BODY)).toBe(false);
      const diff = [...got].flatMap((b, i) => (b === BODY[i] ? [] : [i]));
      expect(diff).toEqual([5]);
      expect(sha1(got)).not.toBe(res.headers['x-checksum-sha1']);
    });

    it('does not use up a body fault on a 304', async () => {
      af.setFault(PUBLIC, { kind: 'corrupt' }, { times: 1 });
      const cached = await request(af.url(PUBLIC), { headers: { 'if-none-match': sha1(BODY) } });
      expect(cached.statusCode).toBe(304);
      await cached.body.text();
      const res = await request(af.url(PUBLIC));
      expect((await bytes(res)).equals(BODY)).toBe(false);
    });

    it('sends malformed JSON', async () => {
      af.setFault('/artifactory/swtools/external/ncd/apps/official/source.json', { kind: 'malformedJson' }, { times: 1 });
      const res = await request(af.url('/artifactory/swtools/external/ncd/apps/official/source.json'));
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/json');
      const text = await res.body.text();
      expect(() => JSON.parse(text) as unknown).toThrow();
    });

    it('writes garbage instead of HTTP, and can reset at once', async () => {
      af.setFault(/\/garbage$/, { kind: 'garbage' });
      await expect(request(af.url('/x/garbage'))).rejects.toThrow();
      af.setFault('/x/reset', { kind: 'reset' });
      await expect(request(af.url('/x/reset'))).rejects.toThrow();
      af.clearFaults();
    });

    it('delays headers and throttles the body', async () => {
      af.setFault(PUBLIC, { kind: 'delayHeaders', ms: 150 }, { times: 1 });
      let t0 = Date.now();
      const delayed = await request(af.url(PUBLIC));
      expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
      await delayed.body.text();

      af.setFault(PUBLIC, { kind: 'slow', bytesPerSecond: 20_000 }, { times: 1 });
      t0 = Date.now();
      const slow = await request(af.url(PUBLIC), { headers: { range: 'bytes=0-7999' } });
      expect((await bytes(slow)).equals(BODY.subarray(0, 8000))).toBe(true);
      // 8000 bytes at 20 kB/s: about 400 ms
      expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    });

    it('stalls mid-body and hangs before headers until the client gives up', async () => {
      af.setFault(PUBLIC, { kind: 'stall', afterBytes: 100 }, { times: 1 });
      const stalled = await request(af.url(PUBLIC), { signal: AbortSignal.timeout(300) });
      expect(stalled.statusCode).toBe(200);
      let received = 0;
      const consume = async () => {
        for await (const chunk of stalled.body) received += (chunk as Buffer).length;
      };
      await expect(consume()).rejects.toThrow();
      expect(received).toBe(100);

      af.setFault(PUBLIC, { kind: 'hang' }, { times: 1 });
      const t0 = Date.now();
      await expect(request(af.url(PUBLIC), { signal: AbortSignal.timeout(300) })).rejects.toThrow();
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      const last = af.requestsTo(PUBLIC).at(-1);
      expect(last?.status).toBeUndefined(); // never answered
    });
  });

  describe('large generated files and load', () => {
    it('streams a generated 64 MiB file whose sha256 matches digestOf', async () => {
      const size = 64 * 1024 * 1024;
      af.setFile(BIG, { size, seed: 42 });
      const digest = await af.digestOf(BIG);
      expect(digest.size).toBe(size);
      const res = await request(af.url(BIG), { headers: { range: 'bytes=0-' } });
      expect(res.statusCode).toBe(206);
      expect(res.headers['content-length']).toBe(String(size));
      expect(res.headers['x-checksum-sha256']).toBe(digest.sha256);
      const hash = createHash('sha256');
      let n = 0;
      for await (const chunk of res.body) {
        hash.update(chunk as Buffer);
        n += (chunk as Buffer).length;
      }
      expect(n).toBe(size);
      expect(hash.digest('hex')).toBe(digest.sha256);
    });

    it('generates content that differs from block to block and matches contentOf/ranges', async () => {
      expect(generateContent(0, PATTERN_SIZE, 42).equals(generateContent(PATTERN_SIZE, 2 * PATTERN_SIZE, 42))).toBe(false);
      expect(generateContent(0, 16, 1).equals(generateContent(0, 16, 2))).toBe(false);
      const start = PATTERN_SIZE - 3;
      const res = await request(af.url(BIG), { headers: { range: `bytes=${start}-${start + 9}` } });
      expect((await bytes(res)).equals(af.contentOf(BIG, start, start + 10))).toBe(true);
      expect(af.contentOf(BIG, start, start + 10).equals(generateContent(start, start + 10, 42))).toBe(true);
    });

    it('serves many concurrent requests over keep-alive connections', async () => {
      const agent = new Agent({ connections: 8 });
      try {
        const before = af.connectionCount;
        const results = await Promise.all(
          Array.from({ length: 200 }, async (_, i) => {
            const res = await request(af.url(PUBLIC), { dispatcher: agent, headers: { range: `bytes=${i}-${i + 99}` } });
            return { status: res.statusCode, body: await bytes(res), i };
          }),
        );
        for (const r of results) {
          expect(r.status).toBe(206);
          expect(r.body.equals(BODY.subarray(r.i, r.i + 100))).toBe(true);
        }
        expect(af.connectionCount - before).toBeLessThanOrEqual(8);
      } finally {
        await agent.close();
      }
    });

    it('nextRequest resolves on the next matching request', async () => {
      const waiting = af.nextRequest('/artifactory/api/system/ping');
      await (await request(af.url('/artifactory/api/system/ping'))).body.text();
      expect((await waiting).path).toBe('/artifactory/api/system/ping');
    });
  });

  it('close() ends stalled and hanging connections and leaves no timers behind', async () => {
    // A private client without undici's own timers, so the count below only sees the fixture's.
    const client = new Agent({ headersTimeout: 0, bodyTimeout: 0 });
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const other = await startFakeArtifactory();
    other.setFile('/artifactory/swtools/external/s.bin', { size: 4 * 1024 * 1024 });
    other.setFault('/artifactory/swtools/external/s.bin', { kind: 'slow', bytesPerSecond: 1000 });
    other.setFault('/artifactory/swtools/external/h.bin', { kind: 'hang' });
    other.setFault('/artifactory/swtools/external/d.bin', { kind: 'delayHeaders', ms: 60_000 });
    const slow = await request(other.url('/artifactory/swtools/external/s.bin'), { dispatcher: client });
    const slowBody = settle(slow.body.arrayBuffer());
    const hang = settle(request(other.url('/artifactory/swtools/external/h.bin'), { dispatcher: client }));
    const delayed = settle(request(other.url('/artifactory/swtools/external/d.bin'), { dispatcher: client }));
    const waiter = settle(other.nextRequest('/never', 60_000));
    await waitUntil(() => `three open connections (${other.openConnections})`, () => other.openConnections === 3);

    const t0 = Date.now();
    await other.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect((await slowBody).ok).toBe(false);
    expect((await hang).ok).toBe(false);
    expect((await delayed).ok).toBe(false);
    const w = await waiter;
    expect(w.ok).toBe(false);
    expect(w.ok ? undefined : String(w.error)).toMatch(/closed/);
    expect(other.openConnections).toBe(0);
    await client.destroy();
    const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    expect(timersAfter).toBeLessThanOrEqual(timersBefore);
  });
});
