/**
 * The one upstream exchange: token fetched only when a hop needs it, User-Agent on every hop,
 * 416 to `bytes=0-` retried from the original URL, the one error mapper (401 marks the token that
 * was used, retryAfter in whole seconds, upstream text scrubbed of the token).
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createTokenPolicy } from '../../src/broker/policy.js';
import type { TokenAccess, Upstream, UpstreamRequest } from '../../src/broker/ports.js';
import { scrubSecrets } from '../../src/broker/secret-scrubber.js';
import { UpstreamExchange } from '../../src/broker/upstream-exchange.js';
import { ConfigSchema } from '../../src/protocol/config-schema.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { TestTokenAccess } from '../helpers/test-token-access.js';
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
});
