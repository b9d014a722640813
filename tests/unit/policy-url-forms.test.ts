/**
 * Artifactory's real URL forms (DESIGN section 4): the UI download API is the artifact
 * `/artifactory/<repoKey>/<path>`, every decision is made on that canonical path, the request goes
 * upstream in the form given (or the download-API form, or on the public mirror), and refused URLs
 * never reach the upstream.
 */
import { describe, expect, it } from 'vitest';
import { createTokenPolicy } from '../../src/broker/policy.js';
import { UpstreamExchange } from '../../src/broker/upstream-exchange.js';
import type { ServerConfig } from '../../src/protocol/config-schema.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { TestTokenAccess } from '../helpers/test-token-access.js';
import { useFakeArtifactory } from '../helpers/fake-upstream.js';

const { af, upstream } = await useFakeArtifactory();

const MIRROR_SERVER: ServerConfig = {
  name: 'mirrored',
  origin: 'https://files.example',
  tokenInfoPath: '/access/api/v1/tokens/me',
  pingPath: '/artifactory/api/system/ping',
  authenticatedPrefixes: ['/artifactory/'],
  publicPrefixes: ['/artifactory/swtools/external/'],
  requestForm: 'as-given',
  publicMirrorOrigin: 'https://files.example.cn',
};

function nordicAt(origin: string): ServerConfig {
  return { ...MIRROR_SERVER, name: 'nordic', origin, requestForm: 'download-api', publicMirrorOrigin: null };
}

const LONG = '/ui/api/v1/download?isNativeBrowsing=false';

interface Allowed {
  canonical: string;
  request: string;
  needsToken: boolean;
  fileName?: string;
  server?: string;
  thirdParty?: boolean;
}
/** `O` stands for the download-API server's origin (the fake's). */
type Case = [label: string, url: string, expected: Allowed | RegExp];

/** What the third-party hook vouches for (the source registry answers it from its indexes). */
const LISTED_THIRD_PARTY = new Set(['https://apps.example.org/ncd/source.json', 'http://apps.example.org/ncd/source.json']);

const CASES: Case[] = [
  // The long form on the server that publishes it.
  ['long, public', `O${LONG}&repoKey=swtools&path=external/ncd/apps/official/pc-nrfconnect-ppk.json`, { canonical: 'O/artifactory/swtools/external/ncd/apps/official/pc-nrfconnect-ppk.json', request: `O${LONG}&repoKey=swtools&path=external/ncd/apps/official/pc-nrfconnect-ppk.json`, needsToken: false, fileName: 'pc-nrfconnect-ppk.json', server: 'nordic' }],
  ['long, restricted', `O${LONG}&repoKey=swtools&path=internal/ncd/a.json`, { canonical: 'O/artifactory/swtools/internal/ncd/a.json', request: `O${LONG}&repoKey=swtools&path=internal/ncd/a.json`, needsToken: true }],
  ['long tarball: file name from the canonical path', `O${LONG}&repoKey=swtools&path=external/ncd/apps/official/pc-nrfconnect-ppk-4.2.1.tgz`, { canonical: 'O/artifactory/swtools/external/ncd/apps/official/pc-nrfconnect-ppk-4.2.1.tgz', request: `O${LONG}&repoKey=swtools&path=external/ncd/apps/official/pc-nrfconnect-ppk-4.2.1.tgz`, needsToken: false, fileName: 'pc-nrfconnect-ppk-4.2.1.tgz' }],
  ['long, percent-encoded path decoded once', `O${LONG}&repoKey=swtools&path=external%2Fncd%2Fa.json`, { canonical: 'O/artifactory/swtools/external/ncd/a.json', request: `O${LONG}&repoKey=swtools&path=external/ncd/a.json`, needsToken: false }],
  ['long, parameters in another order, others ignored', `O/ui/api/v1/download?path=external/a.json&x=1&repoKey=swtools&isNativeBrowsing=true`, { canonical: 'O/artifactory/swtools/external/a.json', request: `O${LONG}&repoKey=swtools&path=external/a.json`, needsToken: false }],
  ['long, a space in the file name', `O${LONG}&repoKey=swtools&path=external/my%20app.json`, { canonical: 'O/artifactory/swtools/external/my%20app.json', request: `O${LONG}&repoKey=swtools&path=external/my%20app.json`, needsToken: false, fileName: 'my app.json' }],
  ['long, "." inside a file name is fine', `O${LONG}&repoKey=swtools&path=external/a..b.json`, { canonical: 'O/artifactory/swtools/external/a..b.json', request: `O${LONG}&repoKey=swtools&path=external/a..b.json`, needsToken: false }],
  // Short URLs on a "download-api" server go upstream in the long form.
  ['short, public, requested in the long form', 'O/artifactory/swtools/external/ncd/x.json', { canonical: 'O/artifactory/swtools/external/ncd/x.json', request: `O${LONG}&repoKey=swtools&path=external/ncd/x.json`, needsToken: false }],
  ['short, restricted, requested in the long form', 'O/artifactory/swtools/internal/x.tgz', { canonical: 'O/artifactory/swtools/internal/x.tgz', request: `O${LONG}&repoKey=swtools&path=internal/x.tgz`, needsToken: true, fileName: 'x.tgz' }],
  ['short, an unreserved escape is canonicalised', 'O/artifactory/swtools/external/a%7Eb.json', { canonical: 'O/artifactory/swtools/external/a~b.json', request: `O${LONG}&repoKey=swtools&path=external/a~b.json`, needsToken: false }],
  ['short, its query stays part of the canonical URL', 'O/artifactory/swtools/external/a.json?v=2', { canonical: 'O/artifactory/swtools/external/a.json?v=2', request: `O${LONG}&repoKey=swtools&path=external/a.json`, needsToken: false }],
  // An "as-given" server with a public mirror.
  ['as-given server, public: fetched from the mirror', 'https://files.example/artifactory/swtools/external/a.json', { canonical: 'https://files.example/artifactory/swtools/external/a.json', request: 'https://files.example.cn/artifactory/swtools/external/a.json', needsToken: false, server: 'mirrored' }],
  ['as-given server, long public form: mirror, same path and query', `https://files.example${LONG}&repoKey=swtools&path=external/a.json`, { canonical: 'https://files.example/artifactory/swtools/external/a.json', request: `https://files.example.cn${LONG}&repoKey=swtools&path=external/a.json`, needsToken: false }],
  ['as-given server, restricted: never the mirror', 'https://files.example/artifactory/secret/a.tgz', { canonical: 'https://files.example/artifactory/secret/a.tgz', request: 'https://files.example/artifactory/secret/a.tgz', needsToken: true }],
  ['a public URL on the mirror itself', 'https://files.example.cn/artifactory/swtools/external/a.json', { canonical: 'https://files.example.cn/artifactory/swtools/external/a.json', request: 'https://files.example.cn/artifactory/swtools/external/a.json', needsToken: false, server: 'mirrored' }],
  ['a third-party URL the hook vouches for: public', 'https://apps.example.org/ncd/source.json', { canonical: 'https://apps.example.org/ncd/source.json', request: 'https://apps.example.org/ncd/source.json', needsToken: false, thirdParty: true }],
  // Refused before anything is sent.
  ['long, ".." inside path=', `O${LONG}&repoKey=swtools&path=external/../internal/a.tgz`, /"\." or "\.\." segment/],
  ['long, "." inside path=', `O${LONG}&repoKey=swtools&path=external/./a.json`, /"\." or "\.\." segment/],
  ['long, encoded ".." inside path=', `O${LONG}&repoKey=swtools&path=external%2F%2E%2E%2Finternal%2Fa.tgz`, /"\." or "\.\." segment/],
  ['long, duplicate path', `O${LONG}&repoKey=swtools&path=external/a.json&path=internal/b.json`, /exactly one repoKey and one path/],
  ['long, duplicate repoKey', `O${LONG}&repoKey=swtools&repoKey=other&path=external/a.json`, /exactly one repoKey and one path/],
  ['long, missing repoKey', `O${LONG}&path=external/a.json`, /exactly one repoKey and one path/],
  ['long, missing path', `O${LONG}&repoKey=swtools`, /exactly one repoKey and one path/],
  ['long, empty path', `O${LONG}&repoKey=swtools&path=`, /empty repoKey or path/],
  ['long, double-encoded slash (%252F)', `O${LONG}&repoKey=swtools&path=external%252F..%252Finternal`, /encoded slash/],
  ['long, backslash in path=', `O${LONG}&repoKey=swtools&path=external%5C..%5Cinternal%5Ca.tgz`, /backslash/],
  ['long, empty segment in path=', `O${LONG}&repoKey=swtools&path=external//a.json`, /empty segment/],
  ['long, leading slash in path= (an empty segment)', `O${LONG}&repoKey=swtools&path=/external/a.json`, /empty segment/],
  ['long, repoKey with a slash', `O${LONG}&repoKey=swtools%2Fexternal&path=a.json`, /repoKey .* contains "\/"/],
  ['long, ".." as repoKey', `O${LONG}&repoKey=..&path=a.json`, /"\." or "\.\." segment/],
  ['short, encoded slash', 'O/artifactory/swtools/external%2F..%2Finternal/a.tgz', /encoded slash/],
  ['short, ".." segment', 'O/artifactory/swtools/external/../internal/a.tgz', /"\." or "\.\." segment/],
  ['another host, long form', `https://evil.example${LONG}&repoKey=swtools&path=external/a.json`, /not a configured server/],
  ['the mirror never serves restricted paths', 'https://files.example.cn/artifactory/secret/a.tgz', /not a configured server/],
  ['a third-party URL the hook does not vouch for', 'https://apps.example.org/other/source.json', /not a configured server/],
  ['a third-party URL over plain http, even if vouched for', 'http://apps.example.org/ncd/source.json', /plain http/],
];

describe('canonical URL forms (table)', () => {

  const policyFor = (origin: string) => createTokenPolicy([nordicAt(origin), MIRROR_SERVER], { allowInsecureLoopback: true, thirdParty: (url) => LISTED_THIRD_PARTY.has(url) });

  it(`has at least 25 cases (${CASES.length})`, () => {
    expect(CASES.length).toBeGreaterThanOrEqual(25);
  });

  it.each(CASES)('%s', (_label, raw, expected) => {
    const origin = af.origin;
    const sub = (value: string): string => (value.startsWith('O') ? origin + value.slice(1) : value);
    const result = policyFor(origin).classify(sub(raw));
    if (expected instanceof RegExp) {
      expect(result.allowed).toBe(false);
      if (!result.allowed) expect(result.reason).toMatch(expected);
      return;
    }
    expect(result).toMatchObject({ allowed: true, canonicalUrl: sub(expected.canonical), requestUrl: sub(expected.request), needsToken: expected.needsToken, thirdParty: expected.thirdParty ?? false });
    if (!result.allowed) return;
    if (expected.fileName !== undefined) expect(result.fileName).toBe(expected.fileName);
    if (expected.server !== undefined) expect(result.server?.name).toBe(expected.server);
    // The normalised given form classifies the same way (it is what sources store).
    expect(policyFor(origin).classify(result.url)).toMatchObject({ canonicalUrl: result.canonicalUrl, requestUrl: result.requestUrl });
  });

  it('refused URLs never reach the upstream, through the one exchange', async () => {
    const policy = policyFor(af.origin);
    const exchange = new UpstreamExchange({ policy: () => policy, upstream, tokens: new TestTokenAccess('tok-never-sent'), clock: new FakeClock(), userAgent: 'test' });
    af.clearRequests();
    const refused = CASES.filter(([, , expected]) => expected instanceof RegExp);
    for (const [label, raw] of refused) {
      const url = raw.startsWith('O') ? af.origin + raw.slice(1) : raw;
      await expect(exchange.document({ url, maxBytes: 1024 }), label).rejects.toMatchObject({ code: 'BROKER_URL_NOT_ALLOWED' });
    }
    expect(af.requests).toEqual([]);
    // The same exchange does reach the fake for an allowed one (the check above can fail).
    af.setJson('/artifactory/swtools/external/ok.json', { ok: true });
    const ok = await exchange.document({ url: af.url('/artifactory/swtools/external/ok.json'), maxBytes: 1024 });
    expect(ok).toMatchObject({ status: 'ok', text: '{"ok":true}' });
    expect(af.requests.map((r) => [r.form, r.artifactPath, r.authorization, r.headers['user-agent']])).toEqual([['download-api', '/artifactory/swtools/external/ok.json', false, 'test']]);
  });
});
