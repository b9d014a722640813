import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BrokerError } from '../../src/client/index.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { startFetchHarness, type FetchHarness } from '../helpers/fetch-harness.js';

const TOKEN = 'tok-secret-123';
const RESTRICTED = '/artifactory/swtools/restricted/app.tgz';
const PUBLIC = '/artifactory/swtools/external/app.tgz';

function envelope(body: string): { code: string; message: string; hint: string; details?: Record<string, unknown> } {
  return (JSON.parse(body) as { error: { code: string; message: string; hint: string; details?: Record<string, unknown> } }).error;
}

function fetchUrl(url: string, query: Record<string, string> = {}): string {
  return `/v1/fetch?${new URLSearchParams({ url, ...query }).toString()}`;
}

async function drain(body: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('GET /v1/fetch', () => {
  let h: FetchHarness;
  let af: FakeArtifactory;
  beforeAll(async () => {
    h = await startFetchHarness();
    af = h.af;
  });
  afterAll(async () => {
    await h.close();
  });
  beforeEach(async () => {
    af.clearRequests();
    af.clearFaults();
    await h.useToken(TOKEN);
  });

  describe('the token policy', () => {
    it('sends the token for an authenticated prefix and answers 200 with the full length', async () => {
      af.setFile(RESTRICTED, 'restricted bytes');
      const res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(RESTRICTED)) });
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe('restricted bytes');
      expect(res.headers['content-length']).toBe('16');
      const seen = af.requestsTo(RESTRICTED);
      expect(seen).toHaveLength(1);
      expect(seen[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
      // files.nordicsemi.com chunks a 200 without Range; `bytes=0-` makes it state the length.
      expect(seen[0]?.headers.range).toBe('bytes=0-');
    });

    it('does not send the token for a public prefix', async () => {
      af.setFile(PUBLIC, 'public bytes');
      const res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(PUBLIC)) });
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe('public bytes');
      expect(af.requestsTo(PUBLIC)[0]?.headers.authorization).toBeUndefined();
    });

    it('drops the token after a redirect to another origin, and the signed URL works', async () => {
      const storage = await startFakeArtifactory({ protectedPrefixes: [] });
      try {
        storage.setFile('/bucket/app.tgz', 'signed storage bytes', { rejectAuthorizationHeader: true });
        af.setRedirect(RESTRICTED, storage.url('/bucket/app.tgz?X-Amz-Signature=abc'), 302);
        const res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(RESTRICTED)) });
        expect(res.statusCode).toBe(200);
        expect(res.body).toBe('signed storage bytes');
        expect(af.requestsTo(RESTRICTED)[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
        const atStorage = storage.requestsTo('/bucket/app.tgz');
        expect(atStorage).toHaveLength(1);
        expect(atStorage[0]?.headers.authorization).toBeUndefined();
        expect(atStorage[0]?.headers.range).toBe('bytes=0-');
      } finally {
        af.removeRedirect(RESTRICTED);
        await storage.close();
      }
    });

    it('refuses a URL outside the configured prefixes without any upstream request', async () => {
      for (const url of [af.url('/ui/login'), 'https://evil.example/artifactory/x', `http://user@127.0.0.1:${af.port}${PUBLIC}`, af.url('/artifactory/swtools/external/../restricted/app.tgz')]) {
        const res = await h.app.inject({ method: 'GET', url: fetchUrl(url) });
        expect(res.statusCode).toBe(403);
        expect(envelope(res.body).code).toBe('BROKER_URL_NOT_ALLOWED');
        expect(res.headers['x-tokenbroker-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      }
      expect(af.requests).toHaveLength(0);
    });

    it('ignores Authorization and Cookie sent by the local client', async () => {
      af.setFile(PUBLIC, 'public bytes');
      af.setFile(RESTRICTED, 'restricted bytes');
      const headers = { authorization: 'Bearer client-own', cookie: 'session=abc' };
      expect((await h.app.inject({ method: 'GET', url: fetchUrl(af.url(PUBLIC)), headers })).statusCode).toBe(200);
      expect((await h.app.inject({ method: 'GET', url: fetchUrl(af.url(RESTRICTED)), headers })).statusCode).toBe(200);
      const [pub, restricted] = [af.requestsTo(PUBLIC)[0], af.requestsTo(RESTRICTED)[0]];
      expect(pub?.headers.authorization).toBeUndefined();
      expect(pub?.headers.cookie).toBeUndefined();
      expect(restricted?.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(restricted?.headers.cookie).toBeUndefined();
    });

    it('without a usable token refuses restricted URLs with no upstream request, but serves public ones', async () => {
      af.setFile(RESTRICTED, 'r');
      af.setFile(PUBLIC, 'p');
      for (const [state, code] of [['missing', 'BROKER_TOKEN_MISSING'], ['invalid', 'BROKER_TOKEN_INVALID'], ['expired', 'BROKER_TOKEN_EXPIRED']] as const) {
        // The token's real states: removed, refused by the server (401), expired per the server.
        if (state === 'missing') await h.tokens.remove();
        else {
          await h.useToken(TOKEN);
          h.tokens.rejected('nordic', state === 'invalid' ? 'Bad credentials' : 'Token expired', TOKEN);
        }
        const res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(RESTRICTED)) });
        expect(res.statusCode).toBe(409);
        expect(envelope(res.body).code).toBe(code);
      }
      expect(af.requestsTo(RESTRICTED)).toHaveLength(0);
      expect((await h.app.inject({ method: 'GET', url: fetchUrl(af.url(PUBLIC)) })).statusCode).toBe(200);
    });
  });

  describe('upstream answers', () => {
    it('a 401 marks the token invalid (tokens.rejected) and answers BROKER_TOKEN_INVALID', async () => {
      af.setFile(RESTRICTED, 'r');
      await h.useToken('tok-unknown');
      try {
        const res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(RESTRICTED)) });
        expect(res.statusCode).toBe(409);
        expect(envelope(res.body).code).toBe('BROKER_TOKEN_INVALID');
        expect(h.tokens.view()).toMatchObject({ server: 'nordic', state: 'invalid', reason: 'Bad credentials' });
        // Marked invalid: the next request does not hammer the server.
        const again = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(RESTRICTED)) });
        expect(envelope(again.body).code).toBe('BROKER_TOKEN_INVALID');
        expect(af.requestsTo(RESTRICTED)).toHaveLength(1);
      } finally {
        await h.useToken(TOKEN);
      }
    });

    it('a 401 saying "expired" answers BROKER_TOKEN_EXPIRED', async () => {
      af.setFile(RESTRICTED, 'r');
      af.addToken('tok-old');
      af.expireToken('tok-old');
      await h.useToken('tok-old');
      try {
        const res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(RESTRICTED)) });
        expect(envelope(res.body).code).toBe('BROKER_TOKEN_EXPIRED');
        expect(h.tokens.view()).toMatchObject({ state: 'expired', reason: expect.stringMatching(/expired/i) as string });
      } finally {
        await h.useToken(TOKEN);
      }
    });

    it.each([
      [403, 'BROKER_UPSTREAM_FORBIDDEN', 403],
      [404, 'BROKER_UPSTREAM_NOT_FOUND', 404],
      [500, 'BROKER_UPSTREAM_ERROR', 502],
      [503, 'BROKER_UPSTREAM_ERROR', 502],
    ])('upstream %i -> %s', async (status, code, ours) => {
      af.setFile(PUBLIC, 'p');
      af.setFault(PUBLIC, { kind: 'status', status }, { times: 1 });
      const res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(PUBLIC)) });
      expect(res.statusCode).toBe(ours);
      const error = envelope(res.body);
      expect(error.code).toBe(code);
      expect(error.details?.status).toBe(status);
    });

    it('429 with Retry-After carries it in details and in the Retry-After header', async () => {
      af.setFile(PUBLIC, 'p');
      af.setFault(PUBLIC, { kind: 'status', status: 429, retryAfter: 120 }, { times: 1 });
      const res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(PUBLIC)) });
      expect(res.statusCode).toBe(502);
      expect(envelope(res.body)).toMatchObject({ code: 'BROKER_UPSTREAM_ERROR', details: { status: 429, retryAfter: 120 } });
      expect(res.headers['retry-after']).toBe('120');
      expect(res.headers['x-tokenbroker-request-id']).toBeDefined();
    });

    it('passes only the listed response headers (never Set-Cookie)', async () => {
      const noisy = await startFakeArtifactory({ responseHeaders: { 'set-cookie': 'JSESSIONID=abc', 'x-internal': 'secret' } });
      const h2 = await startFetchHarness({ af: noisy });
      try {
        noisy.setFile(PUBLIC, 'p');
        const res = await h2.app.inject({ method: 'GET', url: fetchUrl(noisy.url(PUBLIC)) });
        expect(res.statusCode).toBe(200);
        expect(res.headers['set-cookie']).toBeUndefined();
        expect(res.headers['x-internal']).toBeUndefined();
        expect(res.headers['x-jfrog-version']).toBeUndefined();
        const digest = await noisy.digestOf(PUBLIC);
        expect(res.headers).toMatchObject({ etag: digest.sha1, 'x-checksum-sha256': digest.sha256, 'accept-ranges': 'bytes', 'content-type': 'application/x-gzip' });
        expect(res.headers['last-modified']).toBeDefined();
      } finally {
        await h2.close();
        await noisy.close();
      }
    });

    it('refuses a redirect to plain http on another host, and more than 5 redirects', async () => {
      af.setRedirect(PUBLIC, 'http://downloads.example.com/app.tgz', 302);
      let res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(PUBLIC)) });
      expect(res.statusCode).toBe(502);
      expect(envelope(res.body)).toMatchObject({ code: 'BROKER_UPSTREAM_ERROR', details: { reason: 'redirect-refused' } });
      expect(envelope(res.body).message).toMatch(/plain http/);
      af.removeRedirect(PUBLIC);
      expect(af.requests).toHaveLength(1);
      af.clearRequests();

      const hop = (i: number): string => `/artifactory/swtools/external/hop${i}`;
      for (let i = 0; i < 7; i++) af.setRedirect(hop(i), af.url(hop(i + 1)), 302);
      res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(hop(0))) });
      expect(envelope(res.body).message).toMatch(/too many redirects/);
      expect(af.requests).toHaveLength(6);
    });

    it('passes Range and answers 206; If-None-Match with the bare ETag answers 304', async () => {
      af.setFile(PUBLIC, '0123456789abcdefghij');
      const ranged = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(PUBLIC)), headers: { range: 'bytes=10-14' } });
      expect(ranged.statusCode).toBe(206);
      expect(ranged.body).toBe('abcde');
      expect(ranged.headers['content-range']).toBe('bytes 10-14/20');
      expect(af.requestsTo(PUBLIC)[0]?.headers.range).toBe('bytes=10-14');

      const { sha1 } = await af.digestOf(PUBLIC);
      const cond = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(PUBLIC)), headers: { 'if-none-match': sha1 } });
      expect(cond.statusCode).toBe(304);
      expect(cond.body).toBe('');
      expect(af.requestsTo(PUBLIC)[1]?.headers['if-none-match']).toBe(sha1);
    });

    it('an empty file (416 to bytes=0-) is fetched again from the original URL without Range', async () => {
      af.setFile(PUBLIC, '');
      const res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(PUBLIC)) });
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe('');
      expect(af.requestsTo(PUBLIC).map((r) => r.headers.range)).toEqual(['bytes=0-', undefined]);
    });
  });

  describe('verification', () => {
    it('a digest with Range is a BROKER_BAD_REQUEST; malformed digests too', async () => {
      const sha256 = 'a'.repeat(64);
      let res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(PUBLIC), { sha256 }), headers: { range: 'bytes=0-9' } });
      expect(res.statusCode).toBe(400);
      expect(envelope(res.body).code).toBe('BROKER_BAD_REQUEST');
      res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(PUBLIC), { sha1: 'xyz' }) });
      expect(res.statusCode).toBe(400);
      expect(envelope(res.body).message).toMatch(/sha1/);
      expect(af.requests).toHaveLength(0);
    });

    it("the upstream's own X-Checksum disagreeing with the digest is a mismatch before any byte", async () => {
      af.setFile(PUBLIC, 'some content');
      const wrong = 'b'.repeat(64);
      const res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(PUBLIC), { sha256: wrong }) });
      expect(res.statusCode).toBe(502);
      expect(envelope(res.body).code).toBe('BROKER_CHECKSUM_MISMATCH');
      expect(h.events.at(-1)).toMatchObject({ type: 'fetch.checksum-mismatch', source: 'upstream-header', expected: wrong });
      const id = res.headers['x-tokenbroker-request-id'] as string;
      const record = await h.app.inject({ method: 'GET', url: `/v1/fetches/${id}` });
      expect(record.json()).toMatchObject({ id, outcome: 'checksum-mismatch' });
    });

    it('a corrupted body never reaches the client complete, is reported, and is not cached', async () => {
      const size = 3 * 1024 * 1024;
      af.setFile(PUBLIC, { size, seed: 7 });
      const { sha256 } = await af.digestOf(PUBLIC);
      af.setFault(PUBLIC, { kind: 'corrupt' }, { times: 1 });
      const result = await h.client.fetch(af.url(PUBLIC), { sha256 });
      expect(result.status).toBe(200);
      expect(result.headers['content-length']).toBe(String(size));
      let received = 0;
      const error = await (async () => {
        for await (const chunk of result.body) received += (chunk as Buffer).length;
      })().catch((err: unknown) => err);
      expect(error).toBeInstanceOf(BrokerError);
      expect((error as BrokerError).code).toBe('BROKER_CHECKSUM_MISMATCH');
      expect(received).toBeLessThan(size);
      expect(h.events.at(-1)).toMatchObject({ type: 'fetch.checksum-mismatch', source: 'upstream', expected: sha256, requestId: result.requestId });
      expect(await h.client.fetchOutcome(result.requestId)).toMatchObject({ outcome: 'checksum-mismatch' });

      // Nothing cached: the next (clean) fetch goes upstream, verifies, and is then cached.
      const clean = await h.client.fetch(af.url(PUBLIC), { sha256 });
      const body = await drain(clean.body);
      expect(createHash('sha256').update(body).digest('hex')).toBe(sha256);
      expect(clean.headers['x-tokenbroker-cache']).toBeUndefined();
      expect(af.requestsTo(PUBLIC)).toHaveLength(2);
    });

    it('a verified body is served from the cache for the same URL and digest, after the same token checks', async () => {
      const path = '/artifactory/swtools/restricted/cached.bin';
      af.setFile(path, { size: 200_000, seed: 3 });
      const { sha256, sha1 } = await af.digestOf(path);
      const first = await h.client.fetch(af.url(path), { sha256 });
      await drain(first.body);
      expect(af.requestsTo(path)).toHaveLength(1);

      for (const digest of [{ sha256 }, { sha1 }]) {
        const hit = await h.client.fetch(af.url(path), digest);
        expect(hit.headers['x-tokenbroker-cache']).toBe('hit');
        expect(hit.headers['content-length']).toBe('200000');
        const body = await drain(hit.body);
        expect(createHash('sha256').update(body).digest('hex')).toBe(sha256);
      }
      expect(af.requestsTo(path)).toHaveLength(1);
      expect(await h.client.fetchOutcome(first.requestId)).toMatchObject({ outcome: 'ok', bytes: 200_000, cache: 'miss' });

      // Removing the token also stops restricted content from the cache.
      await h.tokens.remove();
      await expect(h.client.fetch(af.url(path), { sha256 })).rejects.toMatchObject({ code: 'BROKER_TOKEN_MISSING' });
      await h.useToken(TOKEN);

      // Another URL with the same content is not served from this entry.
      const other = '/artifactory/swtools/restricted/copy.bin';
      af.setFile(other, { size: 200_000, seed: 3 });
      const miss = await h.client.fetch(af.url(other), { sha256 });
      await drain(miss.body);
      expect(miss.headers['x-tokenbroker-cache']).toBeUndefined();
      expect(af.requestsTo(other)).toHaveLength(1);
    });

    it('the raw token appears in no response, event or log line', async () => {
      af.setFile(RESTRICTED, 'r');
      const res = await h.app.inject({ method: 'GET', url: fetchUrl(af.url(RESTRICTED)) });
      expect(JSON.stringify(res.headers)).not.toContain(TOKEN);
      expect(JSON.stringify(h.events)).not.toContain(TOKEN);
      expect(h.logText()).not.toContain(TOKEN);
      expect(h.logText()).toContain('fetch ended');
    });
  });

  describe('how a fetch ends', () => {
    it('an upstream that drops mid-stream: the client body errors with BROKER_UPSTREAM_UNREACHABLE', async () => {
      af.setFile(PUBLIC, { size: 2 * 1024 * 1024, seed: 1 });
      af.setFault(PUBLIC, { kind: 'drop', afterBytes: 300_000 }, { times: 1 });
      const result = await h.client.fetch(af.url(PUBLIC));
      const error = await drain(result.body).catch((err: unknown) => err);
      expect(error).toMatchObject({ code: 'BROKER_UPSTREAM_UNREACHABLE', details: { reason: 'upstream-aborted' } });
      expect(await h.client.fetchOutcome(result.requestId)).toMatchObject({ outcome: 'upstream-aborted' });
    });

    it('an upstream that stalls longer than bodyIdleMs ends as a timeout', async () => {
      af.setFile(PUBLIC, { size: 1024 * 1024, seed: 1 });
      af.setFault(PUBLIC, { kind: 'stall', afterBytes: 100_000 }, { times: 1 });
      const result = await h.client.fetch(af.url(PUBLIC));
      const error = await drain(result.body).catch((err: unknown) => err);
      expect(error).toMatchObject({ code: 'BROKER_UPSTREAM_UNREACHABLE', details: { reason: 'timeout' } });
      expect(await h.client.fetchOutcome(result.requestId)).toMatchObject({ outcome: 'timeout' });
    });

    it('a client that goes away aborts the upstream request', async () => {
      const lonely = await startFakeArtifactory();
      const h2 = await startFetchHarness({ af: lonely, config: { timeouts: { connectMs: 2_000, headersMs: 2_000, bodyIdleMs: 60_000 } } });
      try {
        lonely.setFile(PUBLIC, { size: 4 * 1024 * 1024, seed: 2 });
        lonely.setFault(PUBLIC, { kind: 'stall', afterBytes: 200_000 }, { times: 1 });
        const result = await h2.client.fetch(lonely.url(PUBLIC));
        const first = await new Promise<Buffer>((resolve) => result.body.once('data', resolve));
        expect(first.length).toBeGreaterThan(0);
        expect(lonely.openConnections).toBe(1);
        result.body.destroy();
        await expect.poll(() => lonely.openConnections, { timeout: 5_000 }).toBe(0);
        await expect.poll(async () => (await h2.client.fetchOutcome(result.requestId)).outcome).toBe('client-aborted');
      } finally {
        await h2.close();
        await lonely.close();
      }
    });

    it('HEAD /v1/fetch is not a route (it would fetch the whole body upstream for nothing)', async () => {
      af.setFile(PUBLIC, 'p');
      const res = await h.app.inject({ method: 'HEAD', url: fetchUrl(af.url(PUBLIC)) });
      expect(res.statusCode).toBe(404);
      expect(af.requests).toHaveLength(0);
    });

    it('GET /v1/fetches/:id of an unknown id is BROKER_NOT_FOUND', async () => {
      const res = await h.app.inject({ method: 'GET', url: '/v1/fetches/0000-unknown' });
      expect(res.statusCode).toBe(404);
      expect(envelope(res.body).code).toBe('BROKER_NOT_FOUND');
    });
  });
});
