import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUndiciUpstream } from '../../src/node/undici-upstream.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { startForwardProxy, type ForwardProxy } from '../fixtures/forward-proxy.js';
import { makeTempHome } from '../helpers/test-daemon.js';
import { makeTestCerts, startHttpsFileServer, type TestCerts } from '../helpers/tls-certs.js';

const timeouts = { connectMs: 2_000, headersMs: 2_000, bodyIdleMs: 2_000 };
const FILE = '/artifactory/swtools/external/proxied.txt';

async function text(body: NodeJS.ReadableStream): Promise<string> {
  let out = '';
  for await (const chunk of body) out += String(chunk);
  return out;
}

describe('upstream through a forward proxy', () => {
  let af: FakeArtifactory;
  let proxy: ForwardProxy;
  beforeAll(async () => {
    af = await startFakeArtifactory();
    proxy = await startForwardProxy();
    af.setFile(FILE, 'via the proxy');
  });
  afterAll(async () => {
    await proxy.close();
    await af.close();
  });

  it('uses the "proxy" config', async () => {
    const upstream = createUndiciUpstream({ timeouts, proxy: { http: proxy.url }, caFile: null, env: {} });
    try {
      const before = proxy.requests.length;
      const res = await upstream.request({ method: 'GET', url: af.url(FILE), headers: {} });
      expect(res.status).toBe(200);
      expect(await text(res.body)).toBe('via the proxy');
      expect(proxy.requests.slice(before).map((r) => r.url)).toEqual([af.url(FILE)]);
      expect(upstream.proxyDescription).toBe(`http: ${proxy.url}`);
    } finally {
      await upstream.close();
    }
  });

  it('uses HTTP_PROXY from the environment when the config has none, and honours NO_PROXY', async () => {
    const viaEnv = createUndiciUpstream({ timeouts, proxy: null, caFile: null, env: { HTTP_PROXY: proxy.url } });
    const bypass = createUndiciUpstream({ timeouts, proxy: null, caFile: null, env: { HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' } });
    try {
      let before = proxy.requests.length;
      expect(await text((await viaEnv.request({ method: 'GET', url: af.url(FILE), headers: {} })).body)).toBe('via the proxy');
      expect(proxy.requests.length).toBe(before + 1);
      before = proxy.requests.length;
      expect(await text((await bypass.request({ method: 'GET', url: af.url(FILE), headers: {} })).body)).toBe('via the proxy');
      expect(proxy.requests.length).toBe(before);
    } finally {
      await viaEnv.close();
      await bypass.close();
    }
  });
});

describe('upstream TLS trust', () => {
  let home: string;
  let certs: TestCerts;
  let server: { origin: string; close(): Promise<void> };
  beforeAll(async () => {
    home = await makeTempHome('tbtls-');
    certs = await makeTestCerts(home);
    server = await startHttpsFileServer(certs, 'trusted');
  });
  afterAll(async () => {
    await server.close();
    await rm(home, { recursive: true, force: true });
  });

  it('an unknown CA is BROKER_UPSTREAM_UNREACHABLE (reason tls) with a hint naming caFile and NODE_EXTRA_CA_CERTS', async () => {
    const upstream = createUndiciUpstream({ timeouts, proxy: null, caFile: null, env: {} });
    try {
      const error = await upstream.request({ method: 'GET', url: `${server.origin}/x`, headers: {} }).catch((err: unknown) => err);
      expect(error).toMatchObject({ code: 'BROKER_UPSTREAM_UNREACHABLE', details: { reason: 'tls' } });
      expect((error as { hint: string }).hint).toMatch(/caFile/);
      expect((error as { hint: string }).hint).toMatch(/NODE_EXTRA_CA_CERTS/);
    } finally {
      await upstream.close();
    }
  });

  it('"caFile" adds the CA (and keeps the public roots)', async () => {
    const upstream = createUndiciUpstream({ timeouts, proxy: null, caFile: certs.caFile, env: {} });
    try {
      const res = await upstream.request({ method: 'GET', url: `${server.origin}/x`, headers: {} });
      expect(res.status).toBe(200);
      expect(await text(res.body)).toBe('trusted');
    } finally {
      await upstream.close();
    }
  });
});
