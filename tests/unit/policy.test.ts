import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createTokenPolicy, MAX_REDIRECTS, MAX_URL_LENGTH } from '../../src/broker/policy.js';
import type { AllowedUrl, RequestHop, TokenPolicy } from '../../src/broker/policy.js';
import { DEFAULT_SERVER } from '../../src/protocol/config-schema.js';
import type { ServerConfig } from '../../src/protocol/config-schema.js';

// The request form is covered in policy-url-forms.test.ts; here the form given is the form sent.
const nordic: ServerConfig = {
  ...DEFAULT_SERVER,
  authenticatedPrefixes: [...DEFAULT_SERVER.authenticatedPrefixes],
  publicPrefixes: [...DEFAULT_SERVER.publicPrefixes],
  requestForm: 'as-given',
};
const local: ServerConfig = {
  name: 'local',
  origin: 'http://127.0.0.1:8765',
  tokenInfoPath: '/access/api/v1/tokens/me',
  pingPath: '/artifactory/api/system/ping',
  authenticatedPrefixes: ['/artifactory/'],
  publicPrefixes: ['/artifactory/public/'],
  requestForm: 'as-given',
  publicMirrorOrigin: null,
};
const local6: ServerConfig = { ...local, name: 'local6', origin: 'http://[::1]:8766' };

const servers = [nordic, local, local6];
const policy = createTokenPolicy(servers, { allowInsecureLoopback: true });
const strictPolicy = createTokenPolicy(servers, { allowInsecureLoopback: false });

const N = 'https://files.nordicsemi.com';
const PUB = `${N}/artifactory/swtools/external`;

type Expected =
  | { allowed: true; needsToken: boolean; url: string; server?: string }
  | { allowed: false; reason?: RegExp };

const restricted = (url: string, server = 'nordic'): Expected => ({ allowed: true, needsToken: true, url, server });
const open = (url: string, server = 'nordic'): Expected => ({ allowed: true, needsToken: false, url, server });
const refused = (reason?: RegExp): Expected => (reason ? { allowed: false, reason } : { allowed: false });

interface Row {
  name: string;
  url: string;
  expected: Expected;
  strict?: boolean;
}

const rows: Row[] = [
  // the plain cases
  { name: 'public file', url: `${PUB}/ncd/apps/official/source.json`, expected: open(`${PUB}/ncd/apps/official/source.json`) },
  { name: 'restricted file', url: `${N}/artifactory/swtools/restricted/a.tgz`, expected: restricted(`${N}/artifactory/swtools/restricted/a.tgz`) },
  { name: 'public prefix itself', url: `${PUB}/`, expected: open(`${PUB}/`) },
  { name: 'public prefix without trailing slash is not public', url: PUB, expected: restricted(PUB) },
  { name: 'authenticated prefix itself', url: `${N}/artifactory/`, expected: restricted(`${N}/artifactory/`) },
  { name: 'outside every prefix', url: `${N}/ui/login`, expected: refused(/outside the configured prefixes/) },
  { name: 'root', url: `${N}/`, expected: refused(/outside/) },
  { name: 'origin only', url: N, expected: refused(/outside/) },

  // dot segments, literal or encoded: refused, never resolved into a different decision
  { name: '../.. out of the public prefix', url: `${PUB}/../../secret`, expected: refused(/"\." or "\.\." segment/) },
  { name: '%2e%2e', url: `${PUB}/%2e%2e/restricted/x`, expected: refused(/segment/) },
  { name: '%2E%2E', url: `${PUB}/%2E%2E/restricted/x`, expected: refused(/segment/) },
  { name: '.%2e', url: `${PUB}/.%2e/restricted/x`, expected: refused(/segment/) },
  { name: '%2e.', url: `${PUB}/%2e./restricted/x`, expected: refused(/segment/) },
  { name: 'single %2e', url: `${PUB}/%2e/x`, expected: refused(/segment/) },
  { name: 'single .', url: `${PUB}/./x`, expected: refused(/segment/) },
  { name: 'trailing ..', url: `${N}/artifactory/..`, expected: refused(/segment/) },
  { name: 'trailing %2e%2e', url: `${PUB}/%2e%2e`, expected: refused(/segment/) },
  { name: '.. out of the authenticated prefix', url: `${N}/artifactory/../admin`, expected: refused(/segment/) },
  { name: '..;/ (Tomcat path parameter)', url: `${PUB}/..;/restricted/x`, expected: refused(/";"/) },
  { name: '..%3B', url: `${PUB}/..%3B/restricted/x`, expected: refused(/%3B/) },
  { name: 'path parameter', url: `${PUB}/x;jsessionid=1`, expected: refused(/";"/) },
  { name: 'three dots is a name', url: `${PUB}/.../x`, expected: open(`${PUB}/.../x`) },
  { name: 'dot inside a name', url: `${PUB}/a..b/x.tgz`, expected: open(`${PUB}/a..b/x.tgz`) },
  { name: '%2e inside a name is decoded', url: `${PUB}/a%2eb`, expected: open(`${PUB}/a.b`) },
  { name: 'double-encoded dots', url: `${PUB}/%252e%252e/restricted`, expected: refused(/%25/) },

  // encoded and literal slashes / backslashes
  { name: '%2f', url: `${PUB}/..%2f..%2fsecret`, expected: refused(/encoded slash/) },
  { name: '%2F', url: `${N}/artifactory/swtools%2Fexternal/x`, expected: refused(/encoded slash/) },
  { name: '%5c', url: `${PUB}/%5c..%5csecret`, expected: refused(/encoded slash or backslash/) },
  { name: 'literal backslash', url: `${N}/artifactory\\swtools\\external\\x`, expected: refused(/backslash/) },
  { name: 'backslash before host end', url: `${N}\\@evil.com/artifactory/x`, expected: refused(/backslash/) },
  { name: '%252f', url: `${PUB}/a%252fb`, expected: refused(/%25/) },
  { name: 'encoded NUL', url: `${PUB}/x%00.tgz`, expected: refused(/control character/) },
  { name: 'invalid escape', url: `${PUB}/%zz`, expected: refused(/invalid percent-escape/) },
  { name: 'lone %', url: `${PUB}/100%`, expected: refused(/invalid percent-escape/) },

  // prefix boundaries and case
  { name: 'prefix without slash is not a prefix', url: `${N}/artifactory-evil/x`, expected: refused(/outside/) },
  { name: '/artifactory alone', url: `${N}/artifactory`, expected: refused(/outside/) },
  { name: 'path case matters (outside)', url: `${N}/Artifactory/x`, expected: refused(/outside/) },
  { name: 'path case matters (not public)', url: `${N}/artifactory/SWTOOLS/external/x`, expected: restricted(`${N}/artifactory/SWTOOLS/external/x`) },
  { name: 'public-looking sibling', url: `${N}/artifactory/swtools/external-evil/x`, expected: restricted(`${N}/artifactory/swtools/external-evil/x`) },

  // double slashes
  { name: 'leading //', url: `${N}//artifactory/swtools/external/x`, expected: refused(/empty segment/) },
  { name: 'inner //', url: `${N}/artifactory//swtools/external/x`, expected: refused(/empty segment/) },
  { name: 'trailing // in public', url: `${PUB}//x`, expected: refused(/empty segment/) },
  { name: 'https:/// (no host before path)', url: 'https:///files.nordicsemi.com/artifactory/x', expected: refused(/must be absolute/) },

  // percent-encoded unreserved characters are decoded, other escapes upper-cased
  { name: '%65 -> e puts it under the public prefix', url: `${N}/artifactory/swtools/%65xternal/x`, expected: open(`${PUB}/x`) },
  { name: '%41 in the authenticated prefix', url: `${N}/%61rtifactory/x`, expected: restricted(`${N}/artifactory/x`) },
  { name: '%7e -> ~', url: `${PUB}/%7euser`, expected: open(`${PUB}/~user`) },
  { name: 'lower-case escapes upper-cased', url: `${PUB}/%c3%bc.tgz`, expected: open(`${PUB}/%C3%BC.tgz`) },
  { name: 'non-ASCII path is percent-encoded', url: `${PUB}/ü.tgz`, expected: open(`${PUB}/%C3%BC.tgz`) },
  { name: 'encoded space stays encoded', url: `${PUB}/a%20b`, expected: open(`${PUB}/a%20b`) },
  { name: 'encoded ? in a name', url: `${PUB}/a%3Fb`, expected: open(`${PUB}/a%3Fb`) },

  // userinfo
  { name: 'userinfo makes evil.com the host', url: 'https://files.nordicsemi.com@evil.com/artifactory/x', expected: refused(/user name or password/) },
  { name: 'user:pass', url: `https://user:hunter2@files.nordicsemi.com/artifactory/x`, expected: refused(/user name or password/) },
  { name: 'empty userinfo', url: 'https://@files.nordicsemi.com/artifactory/x', expected: refused(/user name or password/) },
  { name: 'empty user and password', url: 'https://:@files.nordicsemi.com/artifactory/x', expected: refused(/user name or password/) },

  // host, port, scheme
  { name: 'upper-case scheme and host', url: 'HTTPS://FILES.NORDICSEMI.COM/artifactory/x', expected: restricted(`${N}/artifactory/x`) },
  { name: 'explicit default port', url: 'https://files.nordicsemi.com:443/artifactory/x', expected: restricted(`${N}/artifactory/x`) },
  { name: 'explicit default port, leading zero', url: 'https://files.nordicsemi.com:0443/artifactory/x', expected: restricted(`${N}/artifactory/x`) },
  { name: 'other port', url: 'https://files.nordicsemi.com:8443/artifactory/x', expected: refused(/https:\/\/files\.nordicsemi\.com:8443 is not a configured server/) },
  { name: 'http to an https origin', url: 'http://files.nordicsemi.com/artifactory/x', expected: refused(/not a configured server/) },
  { name: 'trailing-dot host', url: 'https://files.nordicsemi.com./artifactory/x', expected: refused(/not a configured server/) },
  { name: 'look-alike host', url: 'https://files.nordicsemi.com.evil.com/artifactory/x', expected: refused(/not a configured server/) },
  { name: 'percent-encoded host', url: 'https://files%2Enordicsemi.com/artifactory/x', expected: refused(/plain ASCII/) },
  { name: 'full-width host (IDNA-mapped)', url: 'https://ｆｉｌｅｓ.nordicsemi.com/artifactory/x', expected: refused(/plain ASCII/) },
  { name: 'soft hyphen in host', url: 'https://fi\u00adles.nordicsemi.com/artifactory/x', expected: refused(/plain ASCII/) },
  { name: 'scheme without slashes', url: 'https:files.nordicsemi.com/artifactory/x', expected: refused(/must be absolute/) },
  { name: 'scheme with one slash', url: 'https:/files.nordicsemi.com/artifactory/x', expected: refused(/must be absolute/) },
  { name: 'scheme-relative', url: '//files.nordicsemi.com/artifactory/x', expected: refused(/must be absolute/) },
  { name: 'relative path', url: '/artifactory/swtools/external/x', expected: refused(/must be absolute/) },
  { name: 'bare word', url: 'artifactory', expected: refused(/must be absolute/) },
  { name: 'file:', url: 'file:///etc/passwd', expected: refused(/not file:/) },
  { name: 'ftp:', url: 'ftp://files.nordicsemi.com/artifactory/x', expected: refused(/not ftp:/) },
  { name: 'data:', url: 'data:text/plain,hi', expected: refused(/not data:/) },
  { name: 'javascript:', url: 'javascript:alert(1)', expected: refused(/not javascript:/) },
  { name: 'ws:', url: 'ws://127.0.0.1:8765/artifactory/x', expected: refused(/not ws:/) },
  { name: 'unparseable host', url: 'https://exa mple/x', expected: refused(/whitespace/) },
  { name: 'bad port', url: 'https://files.nordicsemi.com:99999/artifactory/x', expected: refused(/cannot be parsed/) },

  // query and fragment
  { name: 'query is kept', url: `${N}/artifactory/x?a=1&b=2`, expected: restricted(`${N}/artifactory/x?a=1&b=2`) },
  { name: 'fragment is stripped', url: `${PUB}/x#frag`, expected: open(`${PUB}/x`) },
  { name: 'query kept, fragment stripped', url: `${PUB}/x?y=/a#frag`, expected: open(`${PUB}/x?y=/a`) },
  { name: 'empty query and fragment dropped', url: `${PUB}/x?#`, expected: open(`${PUB}/x`) },
  { name: 'prefix in the query does not help', url: `${N}/secret?x=/artifactory/`, expected: refused(/outside/) },
  { name: 'public prefix in the query does not make it public', url: `${N}/artifactory/r?p=/artifactory/swtools/external/`, expected: restricted(`${N}/artifactory/r?p=/artifactory/swtools/external/`) },
  { name: 'public prefix in the fragment does not help', url: `${N}/x#/artifactory/swtools/external/`, expected: refused(/outside/) },
  { name: 'dot segment after ? is just query', url: `${PUB}/x?a=/../..`, expected: open(`${PUB}/x?a=/../..`) },

  // IPv6 and loopback servers
  { name: 'https [::1] is not configured', url: 'https://[::1]/artifactory/x', expected: refused(/https:\/\/\[::1\] is not a configured server/) },
  { name: 'http [::1] on the configured port', url: 'http://[::1]:8766/artifactory/x', expected: restricted('http://[::1]:8766/artifactory/x', 'local6') },
  { name: 'expanded IPv6 form', url: 'http://[0:0:0:0:0:0:0:1]:8766/artifactory/public/x', expected: open('http://[::1]:8766/artifactory/public/x', 'local6') },
  { name: 'http [::1] on another port', url: 'http://[::1]:8765/artifactory/x', expected: refused(/not a configured server/) },
  { name: 'loopback IPv4 server', url: 'http://127.0.0.1:8765/artifactory/public/x', expected: open('http://127.0.0.1:8765/artifactory/public/x', 'local') },
  { name: 'loopback IPv4 restricted', url: 'http://127.0.0.1:8765/artifactory/r/x', expected: restricted('http://127.0.0.1:8765/artifactory/r/x', 'local') },
  { name: 'localhost is not 127.0.0.1 (origin compare)', url: 'http://localhost:8765/artifactory/x', expected: refused(/not a configured server/) },
  { name: 'loopback https instead of http', url: 'https://127.0.0.1:8765/artifactory/x', expected: refused(/not a configured server/) },
  { name: 'loopback server refused without the flag', url: 'http://127.0.0.1:8765/artifactory/x', strict: true, expected: refused(/allowInsecureLoopback/) },
  { name: 'IPv6 loopback server refused without the flag', url: 'http://[::1]:8766/artifactory/x', strict: true, expected: refused(/allowInsecureLoopback/) },
  { name: 'https server unaffected by the flag', url: `${PUB}/x`, strict: true, expected: open(`${PUB}/x`) },

  // empty, long, whitespace, control characters
  { name: 'empty string', url: '', expected: refused(/empty/) },
  { name: 'overlong', url: `${PUB}/${'a'.repeat(MAX_URL_LENGTH)}`, expected: refused(/longer than 8192/) },
  { name: 'canonical form overlong', url: `${PUB}/${'ü'.repeat(2000)}`, expected: refused(/longer than 8192/) },
  { name: 'at the length limit', url: `${PUB}/${'a'.repeat(MAX_URL_LENGTH - PUB.length - 1)}`, expected: open(`${PUB}/${'a'.repeat(MAX_URL_LENGTH - PUB.length - 1)}`) },
  { name: 'leading space', url: ` ${PUB}/x`, expected: refused(/whitespace/) },
  { name: 'trailing newline', url: `${PUB}/x\n`, expected: refused(/whitespace/) },
  { name: 'tab inside the path', url: `${N}/artifactory/swtools/ext\ternal/x`, expected: refused(/whitespace/) },
  { name: 'newline inside the host', url: 'https://files.nordic\nsemi.com/artifactory/x', expected: refused(/whitespace/) },
  { name: 'NUL', url: `${PUB}/x\u0000`, expected: refused(/control/) },
  { name: 'DEL', url: `${PUB}/x\u007f`, expected: refused(/control/) },
  { name: 'C1 control', url: `${PUB}/x\u0085`, expected: refused(/control/) },
  { name: 'no-break space', url: `${PUB}/x\u00a0y`, expected: refused(/whitespace/) },
  { name: 'line separator', url: `${PUB}/x\u2028`, expected: refused(/whitespace/) },
];

function check(result: ReturnType<TokenPolicy['classify']>, expected: Expected): void {
  if (expected.allowed) {
    expect(result).toMatchObject({ allowed: true, needsToken: expected.needsToken, url: expected.url });
    if (result.allowed && expected.server) expect(result.server?.name).toBe(expected.server);
  } else {
    expect(result.allowed).toBe(false);
    if (!result.allowed && expected.reason) expect(result.reason).toMatch(expected.reason);
  }
}

describe('token policy: classify', () => {
  it.each(rows)('$name: $url', ({ url, expected, strict }) => {
    const p = strict ? strictPolicy : policy;
    const result = p.classify(url);
    check(result, expected);
    expect(p.allowed(url)).toBe(expected.allowed);
    expect(p.needsToken(url)).toBe(expected.allowed && expected.needsToken);
    if (!result.allowed) {
      // The sentence is for users: never the password or any userinfo from the URL.
      expect(result.reason).not.toMatch(/hunter2|user:|@evil/);
      expect(result.reason).toMatch(/^\S.*\S$/s);
    }
  });

  it('canonical URLs are fixed points', () => {
    for (const { url, strict } of rows) {
      const p = strict ? strictPolicy : policy;
      const result = p.classify(url);
      if (result.allowed) expect(p.classify(result.url)).toEqual(result);
    }
  });

  it('never echoes a password or a query string in a reason', () => {
    const result = policy.classify('https://admin:s3cr3t@evil.com/x');
    expect(result).toEqual({ allowed: false, reason: expect.not.stringContaining('s3cr3t') });
    const outside = policy.classify(`${N}/secret?X-Amz-Signature=abc123`);
    expect(outside.allowed).toBe(false);
    if (!outside.allowed) expect(outside.reason).not.toContain('abc123');
  });

  it('a server whose public prefix is outside its authenticated prefixes', () => {
    const p = createTokenPolicy([{ ...nordic, publicPrefixes: ['/pub/'] }], { allowInsecureLoopback: false });
    expect(p.classify(`${N}/pub/x`)).toMatchObject({ allowed: true, needsToken: false });
    expect(p.classify(`${N}/artifactory/swtools/external/x`)).toMatchObject({ allowed: true, needsToken: true });
  });

  it('prefixes written with different case-insensitive spellings in config still compare canonically', () => {
    const p = createTokenPolicy([{ ...nordic, origin: 'https://FILES.nordicsemi.com', publicPrefixes: ['/artifactory/swtools/%65xternal/'] }], {
      allowInsecureLoopback: false,
    });
    expect(p.classify(`${PUB}/x`)).toMatchObject({ allowed: true, needsToken: false, url: `${PUB}/x` });
  });

  it('refuses a prefix that cannot be compared safely', () => {
    expect(() => createTokenPolicy([{ ...nordic, publicPrefixes: ['/a%2fb/'] }], { allowInsecureLoopback: false })).toThrow(/prefix/);
    expect(() => createTokenPolicy([{ ...nordic, publicPrefixes: ['no-slash'] }], { allowInsecureLoopback: false })).toThrow(/prefix/);
  });

  it('with no servers nothing is allowed', () => {
    const p = createTokenPolicy([], { allowInsecureLoopback: true });
    expect(p.classify(`${PUB}/x`)).toMatchObject({ allowed: false, reason: expect.stringMatching(/not a configured server/) });
  });

  it('property: whatever segments are thrown at it, a "public" answer means the server sees a public path', () => {
    const segment = fc.oneof(
      fc.constantFrom('..', '.', '%2e%2e', '%2E.', '', 'external', 'swtools', 'artifactory', '..;', '%2f', '%5c', '%25', '%65xternal', 'a', '~', '%7E', 'ü', ';x'),
      fc.string({ maxLength: 6 }),
      fc.stringMatching(/^[a-z.%0-9;~-]{1,6}$/),
    );
    // Start most paths inside the prefixes so the interesting answers (public, restricted) occur.
    const base = fc.constantFrom([], ['artifactory'], ['artifactory', 'swtools'], ['artifactory', 'swtools', 'external'], ['artifactory', 'swtools', '%65xternal']);
    fc.assert(
      fc.property(base, fc.array(segment, { maxLength: 6 }), fc.boolean(), (start, segments, slash) => {
        const raw = `${N}/${[...start, ...segments].join('/')}${slash ? '/' : ''}`;
        const result = policy.classify(raw);
        if (!result.allowed) return;
        const path = new URL(result.url).pathname;
        // What a decoding server would see: no escape hides a separator or a dot segment.
        const decoded = path.replace(/%([0-7][0-9A-F])/gi, (_match, digits: string) => String.fromCharCode(Number.parseInt(digits, 16)));
        expect(decoded.split('/').some((s) => s === '.' || s === '..' || s.includes('\\') || s.includes(';'))).toBe(false);
        expect(decoded).not.toMatch(/\/\/./);
        expect(decoded.startsWith('/artifactory/')).toBe(true);
        if (!result.needsToken) expect(decoded.startsWith('/artifactory/swtools/external/')).toBe(true);
        else expect(decoded.startsWith('/artifactory/swtools/external/')).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });
});

function start(p: TokenPolicy, url: string): RequestHop {
  const result = p.classify(url);
  expect(result.allowed).toBe(true);
  return p.initialHop(result as AllowedUrl);
}

function follow(p: TokenPolicy, from: RequestHop, location: string): RequestHop {
  const decision = p.redirectDecision(from, location);
  if (!decision.allowed) throw new Error(`unexpected refusal: ${decision.reason}`);
  return decision.hop;
}

describe('token policy: redirects', () => {
  const restrictedUrl = `${N}/artifactory/swtools/restricted/app.tgz`;

  it('exports the limit', () => {
    expect(MAX_REDIRECTS).toBe(5);
  });

  it('the first hop carries the token only when the URL needs it', () => {
    expect(start(policy, restrictedUrl)).toEqual({
      url: restrictedUrl,
      originalUrl: restrictedUrl,
      server: nordic,
      sendAuthorization: true,
      redirects: 0,
      leftOrigin: false,
    });
    expect(start(policy, `${PUB}/x`).sendAuthorization).toBe(false);
  });

  it('same-origin redirect to a restricted path keeps auth eligibility', () => {
    const hop = follow(policy, start(policy, restrictedUrl), `${N}/artifactory/other/app.tgz`);
    expect(hop).toMatchObject({ url: `${N}/artifactory/other/app.tgz`, sendAuthorization: true, redirects: 1, leftOrigin: false, originalUrl: restrictedUrl });
  });

  it('relative Location is resolved against the current URL', () => {
    const first = start(policy, restrictedUrl);
    expect(follow(policy, first, 'v2/app.tgz').url).toBe(`${N}/artifactory/swtools/restricted/v2/app.tgz`);
    expect(follow(policy, first, '../other/app.tgz')).toMatchObject({ url: `${N}/artifactory/swtools/other/app.tgz`, sendAuthorization: true });
    expect(follow(policy, first, '/artifactory/x?y=1#frag').url).toBe(`${N}/artifactory/x?y=1`);
    expect(follow(policy, first, '?v=2').url).toBe(`${restrictedUrl}?v=2`);
  });

  it('same-origin redirect to a public path goes without the token', () => {
    expect(follow(policy, start(policy, restrictedUrl), '/artifactory/swtools/external/app.tgz').sendAuthorization).toBe(false);
  });

  it('public request redirected to a restricted path on the same origin may send the token', () => {
    expect(follow(policy, start(policy, `${PUB}/x`), '/artifactory/restricted/x').sendAuthorization).toBe(true);
  });

  it('same-origin redirect outside the prefixes is followed without the token', () => {
    expect(follow(policy, start(policy, restrictedUrl), '/ui/download/x')).toMatchObject({ url: `${N}/ui/download/x`, sendAuthorization: false });
  });

  it('same-origin redirect to a suspicious path is followed without the token', () => {
    expect(follow(policy, start(policy, restrictedUrl), '/artifactory/a%2fb')).toMatchObject({ sendAuthorization: false });
  });

  it('cross-origin https redirect drops auth and keeps the signed URL untouched', () => {
    const signed = 'https://bucket.s3.amazonaws.com/a%7Eb/%2Fkey?X-Amz-Signature=abc&X-Amz-Credential=x%2Fy';
    const hop = follow(policy, start(policy, restrictedUrl), signed);
    expect(hop).toMatchObject({ url: signed, sendAuthorization: false, leftOrigin: true, redirects: 1, originalUrl: restrictedUrl, server: nordic });
  });

  it('coming back to the original origin after leaving it never re-attaches the token', () => {
    const away = follow(policy, start(policy, restrictedUrl), 'https://cdn.example.com/x');
    const back = follow(policy, away, restrictedUrl);
    expect(back).toMatchObject({ url: restrictedUrl, sendAuthorization: false, leftOrigin: true, redirects: 2 });
  });

  it('redirect to another configured server drops auth', () => {
    const hop = follow(policy, start(policy, restrictedUrl), 'http://127.0.0.1:8765/artifactory/r/x');
    expect(hop.sendAuthorization).toBe(false);
  });

  it('explicit default port and upper-case host count as the same origin', () => {
    expect(follow(policy, start(policy, restrictedUrl), 'HTTPS://FILES.NORDICSEMI.COM:443/artifactory/y').sendAuthorization).toBe(true);
    expect(follow(policy, start(policy, restrictedUrl), 'https://files.nordicsemi.com:8443/artifactory/y').sendAuthorization).toBe(false);
  });

  it('https -> http is refused', () => {
    const decision = policy.redirectDecision(start(policy, restrictedUrl), 'http://files.nordicsemi.com/artifactory/x');
    expect(decision).toMatchObject({ allowed: false, reason: expect.stringMatching(/plain http:\/\//) });
    expect(policy.redirectDecision(start(policy, restrictedUrl), 'http://cdn.example.com/x').allowed).toBe(false);
  });

  it('loopback http target is allowed only with the flag', () => {
    expect(policy.redirectDecision(start(policy, restrictedUrl), 'http://127.0.0.1:9000/x')).toMatchObject({
      allowed: true,
      hop: { url: 'http://127.0.0.1:9000/x', sendAuthorization: false },
    });
    expect(policy.redirectDecision(start(policy, restrictedUrl), 'http://[::1]:9000/x').allowed).toBe(true);
    expect(strictPolicy.redirectDecision(start(strictPolicy, restrictedUrl), 'http://127.0.0.1:9000/x')).toMatchObject({
      allowed: false,
      reason: expect.stringMatching(/allowInsecureLoopback/),
    });
  });

  it('loopback server: relative redirect stays on http loopback and keeps auth', () => {
    const hop = follow(policy, start(policy, 'http://127.0.0.1:8765/artifactory/r/x'), '/artifactory/r/y');
    expect(hop).toMatchObject({ url: 'http://127.0.0.1:8765/artifactory/r/y', sendAuthorization: true });
    expect(policy.redirectDecision(hop, 'http://evil.example/x').allowed).toBe(false);
  });

  it('five redirects are followed, the sixth is refused', () => {
    let hop = start(policy, restrictedUrl);
    for (let i = 1; i <= MAX_REDIRECTS; i++) {
      hop = follow(policy, hop, `/artifactory/hop${i}`);
      expect(hop.redirects).toBe(i);
    }
    expect(hop.sendAuthorization).toBe(true);
    expect(policy.redirectDecision(hop, '/artifactory/hop6')).toMatchObject({ allowed: false, reason: expect.stringMatching(/too many redirects/) });
  });

  it.each([
    ['no Location', undefined, /no Location/],
    ['empty Location', '', /empty Location/],
    ['two Location headers', ['https://a.example/', 'https://b.example/'], /more than one Location/],
    ['file:', 'file:///etc/passwd', /not file:/],
    ['javascript:', 'javascript:alert(1)', /not javascript:/],
    ['data:', 'data:text/plain,x', /not data:/],
    ['userinfo', 'https://user:pw@cdn.example.com/x', /user name or password/],
    ['whitespace', 'https://cdn.example.com/x y', /whitespace/],
    ['control character', 'https://cdn.example.com/x\r\nSet-Cookie: a=b', /control/],
    ['backslash', '\\\\evil.com/x', /backslash/],
    ['overlong', `https://cdn.example.com/${'a'.repeat(MAX_URL_LENGTH)}`, /longer than/],
    ['unparseable', 'https://cdn.example.com:99999/x', /cannot be parsed/],
  ] as const)('refuses a redirect with %s', (_name, location, reason) => {
    const decision = policy.redirectDecision(start(policy, restrictedUrl), location);
    expect(decision).toMatchObject({ allowed: false, reason: expect.stringMatching(reason) });
    if (!decision.allowed) expect(decision.reason).not.toContain('pw@');
  });

  it('a single-element Location array is accepted', () => {
    expect(policy.redirectDecision(start(policy, restrictedUrl), ['/artifactory/y'])).toMatchObject({ allowed: true, hop: { sendAuthorization: true } });
  });
});

describe('classification memo', () => {
  it('a third-party answer follows the sources: it is asked again, never kept', () => {
    const listed = new Set<string>();
    const hooked = createTokenPolicy(servers, { allowInsecureLoopback: true, thirdParty: (url) => listed.has(url) });
    const url = 'https://apps.example.org/ncd/source.json';
    expect(hooked.classify(url).allowed).toBe(false);
    listed.add(url);
    expect(hooked.classify(url)).toMatchObject({ allowed: true, thirdParty: true });
    listed.delete(url);
    expect(hooked.classify(url).allowed).toBe(false);
  });

  it('answers a configured URL the same every time, and a kept answer cannot be changed by a caller', () => {
    const restricted = 'https://files.nordicsemi.com/artifactory/swtools/restricted/app.tgz';
    const first = policy.classify(restricted);
    const again = policy.classify(restricted);
    expect(again).toEqual(first);
    expect(again).toMatchObject({ allowed: true, needsToken: true });
    expect(Object.isFrozen(again)).toBe(true);
  });
});
