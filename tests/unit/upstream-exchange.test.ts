/**
 * The one upstream exchange: token fetched only when a hop needs it, User-Agent on every hop,
 * 416 to `bytes=0-` retried from the original URL, the one error mapper (401 marks the token that
 * was used, retryAfter in whole seconds, upstream text scrubbed of the token).
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createTokenPolicy } from '../../src/broker/policy.js';
import type { TokenAccess, Upstream, UpstreamRequest } from '../../src/broker/ports.js';
import { scrubSecrets, scrubThenCut } from '../../src/broker/secret-scrubber.js';
import { UpstreamExchange } from '../../src/broker/upstream-exchange.js';
import { ConfigSchema } from '../../src/protocol/config-schema.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { TestTokenAccess } from '../helpers/test-token-access.js';
import { leakedFragments } from '../helpers/token-fragments.js';
import { useFakeArtifactory } from '../helpers/fake-upstream.js';

const TOKEN = 'exchange-test-token-0123456789';
const { af, upstream } = await useFakeArtifactory({ tokens: { [TOKEN]: { token_id: 't' } } });

describe('scrubSecrets', () => {
  it('replaces the secret and its base64 and percent-encoded forms', () => {
    const secret = 'a+b/c=d-secret-value';
    const text = `raw ${secret} b64 ${Buffer.from(secret).toString('base64')} url ${encodeURIComponent(secret)} b64url ${Buffer.from(secret).toString('base64url')}`;
    const scrubbed = scrubSecrets(text, [undefined, secret]);
    expect(scrubbed).toBe('raw [redacted] b64 [redacted] url [redacted] b64url [redacted]');
    expect(scrubSecrets('nothing here', [secret, undefined])).toBe('nothing here');
  });

  it('redacts first, then cuts: wherever the cut falls, no 8-character prefix or suffix of the token is left', () => {
    const token = 'tbk-cut-0123456789abcdefghijklmnopq';
    for (let before = 150; before <= 200; before++) {
      const text = `${'p'.repeat(before)}Bearer ${token} and more`;
      const cut = scrubThenCut(text, [token], 200);
      expect(leakedFragments(cut, token), `token at ${before + 7}`).toEqual([]);
      expect(cut.length).toBeLessThanOrEqual(201);
    }
    // Never half a marker: the cut drops a `[redacted]` it would split.
    expect(scrubThenCut(`${'x'.repeat(195)}${token}`, [token], 200)).toBe(`${'x'.repeat(195)}…`);
  });

  it('a text an upstream already cut keeps no edge fragment of 8+ characters of the token', () => {
    const token = 'tbk-edge-0123456789abcdefghijklmnop';
    expect(scrubSecrets(`said: Bearer ${token.slice(0, 20)}`, [token])).toBe('said: Bearer [redacted]');
    expect(scrubSecrets(`${token.slice(-12)} was the end`, [token])).toBe('[redacted] was the end');
    // Shorter fragments are not the token (and `Bearer tbk-` is not a secret).
    expect(scrubSecrets(`said: ${token.slice(0, 7)}`, [token])).toBe(`said: ${token.slice(0, 7)}`);
  });
});

describe('the one upstream exchange', () => {
  const clock = new FakeClock(Date.now());

  function exchangeWith(tokens: TokenAccess, over: Upstream = upstream): UpstreamExchange {
    const config = ConfigSchema.parse({ allowInsecureLoopback: true, servers: [{ name: 'nordic', origin: af.origin, requestForm: 'download-api' }] });
    const policy = createTokenPolicy(config.servers, { allowInsecureLoopback: true });
    return new UpstreamExchange({ policy: () => policy, upstream: over, tokens, clock, userAgent: 'tokenbroker/test' });
  }

  it('asks for the token only when a hop needs it, and sends User-Agent on every hop of a redirect chain', async () => {
    const tokens = new TestTokenAccess(TOKEN);
    const exchange = exchangeWith(tokens);
    af.setFile('/artifactory/swtools/external/pub.txt', 'public');
    const mark = af.requests.length;
    const pub = await exchange.document({ url: af.url('/artifactory/swtools/external/pub.txt'), maxBytes: 100, accept: 'text/plain' });
    expect(pub).toMatchObject({ status: 'ok', text: 'public' });
    expect(tokens.asked).toBe(0);

    af.setFile('/storage/blob.txt', 'stored', { auth: 'none' });
    af.setRedirect('/artifactory/swtools/internal/r.txt', af.url('/storage/blob.txt'));
    const redirected = await exchange.document({ url: af.url('/artifactory/swtools/internal/r.txt'), maxBytes: 100, accept: 'text/plain' });
    expect(redirected).toMatchObject({ status: 'ok', text: 'stored' });
    expect(tokens.asked).toBe(1);
    const sent = af.requests.slice(mark);
    expect(sent.map((r) => [r.form, r.authorization])).toEqual([
      ['download-api', false],
      ['download-api', true],
      // Same origin, but outside the prefixes: followed, never with the token.
      ['direct', false],
    ]);
    expect(sent.every((r) => r.headers['user-agent'] === 'tokenbroker/test')).toBe(true);
  });

  it('a 416 to bytes=0- (empty file) starts again from the original URL without Range', async () => {
    af.setFile('/artifactory/swtools/external/empty.bin', '');
    const exchange = exchangeWith(new TestTokenAccess(TOKEN));
    const mark = af.requests.length;
    const target = exchange.allowed(af.url('/artifactory/swtools/external/empty.bin'));
    const answered = await exchange.open({ target, wholeBody: true });
    answered.response.body.resume();
    expect(answered.response.status).toBe(200);
    expect(answered.wholeBody).toBe(false);
    expect(af.requests.slice(mark).map((r) => [r.status, r.headers.range])).toEqual([
      [416, 'bytes=0-'],
      [200, undefined],
    ]);
  });

  it('401 with the token: TOKEN_INVALID naming the canonical URL, and the used token is reported rejected', async () => {
    const tokens = new TestTokenAccess(TOKEN);
    const exchange = exchangeWith(tokens);
    af.setFault('/artifactory/swtools/internal/denied.json', { kind: 'status', status: 401, message: 'Bad credentials' }, { times: 1 });
    const failure = exchange.document({ url: af.downloadUrl('/artifactory/swtools/internal/denied.json'), maxBytes: 100 });
    await expect(failure).rejects.toMatchObject({ code: 'BROKER_TOKEN_INVALID', details: { server: 'nordic', url: af.url('/artifactory/swtools/internal/denied.json') } });
    // The fake records a 401 only for the token the request carried (and throws when none is passed).
    expect(tokens.rejections).toEqual([{ server: 'nordic', message: 'Bad credentials' }]);
  });

  it('upstream text that reflects the token is scrubbed; Retry-After becomes whole seconds', async () => {
    const reflecting: Upstream = {
      request: async (request: UpstreamRequest) => ({
        status: 503,
        headers: { 'retry-after': 'Thu, 01 Jan 2099 00:00:00 GMT', 'content-type': 'application/json' },
        body: Readable.from([Buffer.from(JSON.stringify({ errors: [{ message: `proxy says: ${request.headers.authorization ?? ''} / ${Buffer.from(TOKEN).toString('base64')}` }] }))]),
      }),
    };
    const exchange = exchangeWith(new TestTokenAccess(TOKEN), reflecting);
    const error = await exchange.document({ url: af.url('/artifactory/swtools/internal/x.json'), maxBytes: 100 }).then(
      () => undefined,
      (err: unknown) => err as { code: string; message: string; details: { retryAfter?: unknown } },
    );
    expect(error?.code).toBe('BROKER_UPSTREAM_ERROR');
    expect(error?.message).toContain('proxy says: Bearer [redacted] / [redacted]');
    expect(error?.message).not.toContain(TOKEN);
    expect(Number.isInteger(error?.details.retryAfter)).toBe(true);
    expect(error?.details.retryAfter).toBe(Math.ceil((Date.parse('Thu, 01 Jan 2099 00:00:00 GMT') - clock.now()) / 1000));
  });

  /** An upstream that reflects the request: its path and Authorization header in the message. */
  const reflectingPath = (status: number, extra: Record<string, string> = {}): Upstream & { urls: string[] } => {
    const urls: string[] = [];
    return {
      urls,
      request: async (request: UpstreamRequest) => {
        urls.push(request.url);
        return {
          status,
          headers: { 'content-type': 'application/json', ...extra },
          body: Readable.from([Buffer.from(JSON.stringify({ errors: [{ message: `GET ${new URL(request.url).pathname} was denied: ${request.headers.authorization ?? ''}` }] }))]),
        };
      },
    };
  };

  it('redact first, then cut: a reflected token placed at the cut by the path length leaves no 8+ character part (the 142-character path among them)', async () => {
    const token = 'tbk-reflect-0123456789abcdefghijklm';
    expect(token).toHaveLength(35);
    const tokens = new TestTokenAccess(token);
    const exchange = exchangeWith(tokens, reflectingPath(500));
    const lengths = [142, ...Array.from({ length: 90 }, (_, i) => 110 + i)];
    for (const length of lengths) {
      const base = '/artifactory/swtools/internal/';
      const path = `${base}${'a'.repeat(length - base.length)}`;
      expect(path).toHaveLength(length);
      const error = await exchange.document({ url: af.url(path), maxBytes: 100 }).then(
        () => undefined,
        (err: unknown) => err as { code: string; message: string },
      );
      expect(error?.code).toBe('BROKER_UPSTREAM_ERROR');
      expect(leakedFragments(error?.message ?? '', token), `path of ${length} characters`).toEqual([]);
    }
    // A 401 that reflects it: the reason the token is marked invalid with holds none of it either.
    const rejected = exchangeWith(tokens, reflectingPath(401));
    const path = `/artifactory/swtools/internal/${'b'.repeat(142 - 30)}`;
    await rejected.document({ url: af.url(path), maxBytes: 100 }).catch(() => undefined);
    expect(tokens.rejections).toHaveLength(1);
    expect(leakedFragments(tokens.rejections[0]?.message ?? '', token)).toEqual([]);
    expect(tokens.rejections[0]?.message).toContain('[redacted]');
  });

  it('a redirect whose Location carries the token (any form) is refused, not followed', async () => {
    const forms = [TOKEN, encodeURIComponent(TOKEN), Buffer.from(TOKEN).toString('base64'), Buffer.from(TOKEN).toString('base64url')];
    for (const form of forms) {
      const urls: string[] = [];
      const redirecting: Upstream = {
        request: async (request: UpstreamRequest) => {
          urls.push(request.url);
          return { status: 302, headers: { location: `https://collector.example/x?t=${form}`, 'content-length': '0' }, body: Readable.from([]) };
        },
      };
      const exchange = exchangeWith(new TestTokenAccess(TOKEN), redirecting);
      const error = await exchange.document({ url: af.url('/artifactory/swtools/internal/r.json'), maxBytes: 100 }).then(
        () => undefined,
        (err: unknown) => err as { code: string; message: string; details: Record<string, unknown> },
      );
      expect(error, form).toMatchObject({ code: 'BROKER_UPSTREAM_ERROR', details: { reason: 'redirect-refused' } });
      expect(error?.message).not.toContain(form);
      expect(urls, form).toHaveLength(1);
    }
  });

  it('a reflected ETag or Last-Modified never leaves the exchange (it would go into .part.json and the cache index)', async () => {
    const reflecting: Upstream = {
      request: async (request: UpstreamRequest) => {
        const bare = (request.headers.authorization ?? '').replace(/^Bearer /, '');
        return { status: 200, headers: { 'content-type': 'application/json', etag: `"${bare}"`, 'last-modified': `${bare}, 01 Jan 2025`, 'x-kept': 'yes' }, body: Readable.from([Buffer.from('{}')]) };
      },
    };
    const exchange = exchangeWith(new TestTokenAccess(TOKEN), reflecting);
    const target = exchange.allowed(af.url('/artifactory/swtools/internal/e.bin'));
    const opened = await exchange.open({ target });
    opened.response.body.resume();
    expect(opened.response.headers.etag).toBeUndefined();
    expect(opened.response.headers['last-modified']).toBeUndefined();
    expect(opened.response.headers['x-kept']).toBe('yes');
    const doc = await exchange.document({ url: af.url('/artifactory/swtools/internal/e.json'), maxBytes: 100 });
    expect(doc).toMatchObject({ status: 'ok', etag: undefined });
  });
});
