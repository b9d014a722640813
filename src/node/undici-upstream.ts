import { Agent, ProxyAgent, type Dispatcher } from 'undici';
import type { Upstream, UpstreamRequest, UpstreamResponse } from '../broker/ports.js';
import type { Config } from '../protocol/config-schema.js';
import { BrokerError } from '../protocol/errors.js';
import { loadTrustedCas } from './ca-loader.js';
import { installPausedEndGuard } from './undici-paused-end-guard.js';
import { describeProxySettings, proxyFor, proxySettings, type ProxyChoice } from './proxy-resolver.js';

export interface UndiciUpstreamOptions {
  timeouts: Config['timeouts'];
  proxy: Config['proxy'];
  caFile: string | null;
  env?: NodeJS.ProcessEnv;
}

export interface UndiciUpstream extends Upstream {
  /** Which proxy settings are in effect, for diagnose/status (never with credentials). */
  readonly proxyDescription: string | null;
  /** The proxy a request to `url` goes through (null: direct): the one resolver's answer. */
  proxyFor(url: string): ProxyChoice | null;
  close(): Promise<void>;
}

const TLS_ERROR = /^(CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|ERR_TLS_|ERR_SSL_|HOSTNAME_MISMATCH)/;

/**
 * The real upstream: one HTTP exchange per call through undici, never following redirects (the
 * domain does, so the token policy applies at every hop). Connect, response-header and idle-body
 * timeouts come from config. Each request is dispatched directly or through the proxy that the
 * one proxy resolver (proxy-resolver.ts) names for its URL; CAs come from the one CA loader.
 */
export function createUndiciUpstream(options: UndiciUpstreamOptions): UndiciUpstream {
  // undici 7.x: a slow reader and an upstream that closes must not crash the daemon (see there).
  installPausedEndGuard();
  const env = options.env ?? process.env;
  const ca = trustedCas(options.caFile, env);
  const connect = { timeout: options.timeouts.connectMs, ...(ca === undefined ? {} : { ca }) };
  const common = { connect, headersTimeout: options.timeouts.headersMs, bodyTimeout: options.timeouts.bodyIdleMs, keepAliveTimeout: 10_000 };
  const settings = proxySettings(options.proxy, env);
  const direct = new Agent(common);
  const proxied = new Map<string, ProxyAgent>();

  function dispatcherFor(url: URL): Dispatcher {
    const choice = proxyFor(url, settings);
    if (choice === null) return direct;
    let agent = proxied.get(choice.url);
    if (agent === undefined) {
      agent = new ProxyAgent({
        ...common,
        uri: choice.url,
        // http origins go through the proxy as absolute-form requests, as curl does; https ones
        // are tunnelled with CONNECT.
        proxyTunnel: false,
        ...(ca === undefined ? {} : { requestTls: { ca } }),
      });
      proxied.set(choice.url, agent);
    }
    return agent;
  }

  return {
    proxyDescription: settings === null ? null : describeProxySettings(settings),
    proxyFor: (url) => proxyFor(url, settings),
    async request(request: UpstreamRequest): Promise<UpstreamResponse> {
      try {
        const url = new URL(request.url);
        const response = await dispatcherFor(url).request({
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: request.method,
          headers: request.headers,
          signal: request.signal,
        });
        return { status: response.statusCode, headers: response.headers, body: response.body };
      } catch (err) {
        throw toUpstreamError(err, request.url);
      }
    },
    close: async () => {
      await Promise.all([direct.close(), ...[...proxied.values()].map((agent) => agent.close())]);
    },
  };
}

function trustedCas(caFile: string | null, env: NodeJS.ProcessEnv): string[] | undefined {
  try {
    return loadTrustedCas(caFile, env);
  } catch (err) {
    throw new BrokerError('BROKER_INTERNAL', { message: `Cannot read caFile ${caFile ?? ''} (${(err as NodeJS.ErrnoException).code ?? 'error'}).`, hint: 'Fix "caFile" in config.json to point to a PEM file.' });
  }
}

/** Network failures and timeouts as BROKER_UPSTREAM_UNREACHABLE with a reason and a useful hint. */
export function toUpstreamError(err: unknown, url: string): BrokerError {
  if (err instanceof BrokerError) return err;
  const code = (err as { code?: string } | undefined)?.code ?? '';
  const name = (err as { name?: string } | undefined)?.name ?? '';
  const origin = safeOrigin(url);
  if (name === 'AbortError' || code === 'ABORT_ERR' || code === 'UND_ERR_ABORTED') {
    return new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `The request to ${origin} was aborted.`, details: { reason: 'aborted' }, cause: err });
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `Connecting to ${origin} timed out.`, details: { reason: 'connect-timeout' }, cause: err });
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `${origin} did not answer in time.`, details: { reason: 'headers-timeout' }, cause: err });
  }
  if (TLS_ERROR.test(code)) {
    return new BrokerError('BROKER_UPSTREAM_UNREACHABLE', {
      message: `The TLS connection to ${origin} failed (${code}).`,
      hint: 'If a corporate proxy intercepts TLS, set "caFile" in config.json to its CA certificate (a service manager does not pass NODE_EXTRA_CA_CERTS from your shell).',
      details: { reason: 'tls', code },
      cause: err,
    });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `Cannot resolve ${origin} (${code}).`, details: { reason: 'dns', code }, cause: err });
  }
  return new BrokerError('BROKER_UPSTREAM_UNREACHABLE', {
    message: `Cannot reach ${origin}${code ? ` (${code})` : ''}.`,
    details: { reason: 'network', ...(code ? { code } : {}) },
    cause: err,
  });
}

function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'the server';
  }
}
