/**
 * diagnose and the daemon agree on the proxy: for every case of a config x environment matrix,
 * the daemon's upstream really sends (or does not send) its request through a forward proxy, and
 * diagnose's proxy check says the same. Both call the one resolver (src/node/proxy-resolver.ts);
 * this test checks the two call sites, not the resolver against itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverChecks } from '../../src/cli/diagnose/network-checks.js';
import { proxyFor, proxySettings } from '../../src/node/proxy-resolver.js';
import { createUndiciUpstream } from '../../src/node/undici-upstream.js';
import { ConfigSchema, type Config } from '../../src/protocol/config-schema.js';
import { PING_PATH, startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { startForwardProxy, type ForwardProxy } from '../fixtures/forward-proxy.js';

const timeouts = { connectMs: 2_000, headersMs: 2_000, bodyIdleMs: 2_000 };

describe('one proxy resolver: daemon and diagnose agree', () => {
  let af: FakeArtifactory;
  let proxy: ForwardProxy;
  beforeAll(async () => {
    af = await startFakeArtifactory();
    proxy = await startForwardProxy();
  });
  afterAll(async () => {
    await proxy.close();
    await af.close();
  });

  type ProxyConfig = Config['proxy'];
  const configs = (p: string): [string, ProxyConfig][] => [
    ['no proxy in config', null],
    ['config http proxy', { http: p }],
    ['config http proxy + noProxy naming the host', { http: p, noProxy: '127.0.0.1' }],
    ['config https proxy only (an http origin goes direct)', { https: p }],
    ['config proxy object without proxies', { noProxy: 'example.com' }],
  ];
  const envs = (p: string, port: number): [string, NodeJS.ProcessEnv][] => [
    ['empty environment', {}],
    ['HTTP_PROXY', { HTTP_PROXY: p }],
    ['http_proxy (lower case)', { http_proxy: p }],
    ['HTTP_PROXY + NO_PROXY naming the host', { HTTP_PROXY: p, NO_PROXY: '127.0.0.1' }],
    ['HTTP_PROXY + NO_PROXY host:port matching', { HTTP_PROXY: p, NO_PROXY: `127.0.0.1:${port}` }],
    ['HTTP_PROXY + NO_PROXY host:other port', { HTTP_PROXY: p, NO_PROXY: `127.0.0.1:${port === 1 ? 2 : 1}` }],
    ['HTTP_PROXY + NO_PROXY *', { HTTP_PROXY: p, NO_PROXY: '*' }],
    ['HTTP_PROXY + NO_PROXY a subdomain pattern', { HTTP_PROXY: p, NO_PROXY: '.example.com,localhost' }],
  ];

  it('for every case of the config x environment matrix', async () => {
    const rows: string[] = [];
    let proxiedCases = 0;
    let directCases = 0;
    for (const [configLabel, proxyConfig] of configs(proxy.url)) {
      for (const [envLabel, env] of envs(proxy.url, af.port)) {
        const label = `${configLabel} / ${envLabel}`;
        const config = ConfigSchema.parse({ allowInsecureLoopback: true, servers: [{ name: 'local', origin: af.origin }], proxy: proxyConfig, timeouts });
        const server = config.servers[0];
        if (server === undefined) throw new Error('no server');

        // The daemon's upstream: did the request really go through the proxy?
        const upstream = createUndiciUpstream({ timeouts, proxy: config.proxy, caFile: null, env });
        const before = proxy.requests.length;
        try {
          const response = await upstream.request({ method: 'GET', url: af.url(PING_PATH), headers: {} });
          response.body.resume();
          expect(response.status, label).toBe(200);
        } finally {
          await upstream.close();
        }
        const daemonProxied = proxy.requests.length > before;

        // diagnose's report for the same config and environment.
        const checks = await serverChecks({ server, config, env });
        const proxyCheck = checks.find((c) => c.id === 'proxy');
        const diagnoseProxied = proxyCheck !== undefined && !proxyCheck.message.startsWith('none');
        rows.push(`${label}: daemon ${daemonProxied ? 'proxy' : 'direct'}, diagnose ${diagnoseProxied ? 'proxy' : 'direct'}`);
        expect(diagnoseProxied, `${label}: ${proxyCheck?.message ?? 'no proxy check'}`).toBe(daemonProxied);
        if (daemonProxied) expect(proxyCheck?.message, label).toContain(new URL(proxy.url).origin);
        expect(checks.find((c) => c.id === 'ping')?.status, label).toBe('ok');
        // And both are what the resolver says.
        expect(proxyFor(af.url(PING_PATH), proxySettings(config.proxy, env)) !== null, label).toBe(daemonProxied);
        if (daemonProxied) proxiedCases += 1;
        else directCases += 1;
      }
    }
    // The matrix exercises both outcomes, including the case the old diagnose got wrong.
    expect(proxiedCases).toBeGreaterThan(5);
    expect(directCases).toBeGreaterThan(5);
    expect(rows).toContain('config http proxy / HTTP_PROXY + NO_PROXY naming the host: daemon proxy, diagnose proxy');
  });

  it('https URLs without an https proxy use the http one; a config proxy replaces the environment entirely', () => {
    const env = { HTTPS_PROXY: 'http://user:secret@env-proxy:3128', NO_PROXY: 'files.nordicsemi.com' };
    expect(proxyFor('https://files.nordicsemi.com/x', proxySettings({ http: 'http://cfg:8080' }, env))).toMatchObject({ origin: 'http://cfg:8080', source: 'config' });
    expect(proxyFor('https://files.nordicsemi.com/x', proxySettings(null, env))).toBeNull();
    expect(proxyFor('https://a.files.nordicsemi.com/x', proxySettings(null, env))).toBeNull();
    expect(proxyFor('https://other.example/x', proxySettings(null, env))).toMatchObject({ origin: 'http://env-proxy:3128', source: 'environment' });
    expect(proxyFor('http://other.example/x', proxySettings(null, env))).toBeNull();
  });
});
