import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, EnvHttpProxyAgent, type Dispatcher } from 'undici';
import type { Upstream, UpstreamRequest, UpstreamResponse } from '../broker/ports.js';
import type { Config } from '../protocol/config-schema.js';
import { BrokerError } from '../protocol/errors.js';

export interface UndiciUpstreamOptions {
  timeouts: Config['timeouts'];
  proxy: Config['proxy'];
  caFile: string | null;
  env?: NodeJS.ProcessEnv;
}

export interface UndiciUpstream extends Upstream {
  /** Which proxy is in effect, for diagnose/status (never with credentials). */
  readonly proxyDescription: string | null;
  close(): Promise<void>;
}

const TLS_ERROR = /^(CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|ERR_TLS_|ERR_SSL_|HOSTNAME_MISMATCH)/;

/**
 * The real upstream: one HTTP exchange per call through undici, never following redirects (the
 * domain does, so the token policy applies at every hop). Connect, response-header and idle-body
 * timeouts come from config. Proxies come from config, else HTTP(S)_PROXY/NO_PROXY.
 */
export function createUndiciUpstream(options: UndiciUpstreamOptions): UndiciUpstream {
  const env = options.env ?? process.env;
  const connect = { timeout: options.timeouts.connectMs, ...(options.caFile === null ? {} : { ca: trustedCas(options.caFile, env) }) };
  const common = { connect, headersTimeout: options.timeouts.headersMs, bodyTimeout: options.timeouts.bodyIdleMs, keepAliveTimeout: 10_000 };
  const proxy = resolveProxy(options.proxy, env);
  const dispatcher: Dispatcher =
    proxy === null
      ? new Agent(common)
      : new EnvHttpProxyAgent({
          ...common,
          // Empty strings, not undefined: undici would otherwise read process.env behind our back
          // (a config proxy replaces the environment's; tests pass their own env).
          httpProxy: proxy.http ?? '',
          httpsProxy: proxy.https ?? '',
          noProxy: proxy.noProxy ?? '',
          // http origins go through the proxy as absolute-form requests, as curl does; https ones
          // are tunnelled with CONNECT.
          proxyTunnel: false,
          ...(options.caFile === null ? {} : { requestTls: { ca: connect.ca } }),
        });

  return {
    proxyDescription: proxy === null ? null : describeProxy(proxy),
    async request(request: UpstreamRequest): Promise<UpstreamResponse> {
      try {
        const response = await dispatcher.request({
          origin: new URL(request.url).origin,
          path: pathAndQuery(request.url),
          method: request.method,
          headers: request.headers,
          signal: request.signal,
        });
        return { status: response.statusCode, headers: response.headers, body: response.body };
      } catch (err) {
        throw toUpstreamError(err, request.url);
      }
    },
    close: () => dispatcher.close(),
  };
}

function pathAndQuery(url: string): string {
  const parsed = new URL(url);
  return `${parsed.pathname}${parsed.search}`;
}

interface ProxySettings {
  http?: string;
  https?: string;
  noProxy?: string;
}

function resolveProxy(configured: Config['proxy'], env: NodeJS.ProcessEnv): ProxySettings | null {
  if (configured !== null) {
    return configured.http === undefined && configured.https === undefined ? null : { ...configured };
  }
  const http = env.http_proxy ?? env.HTTP_PROXY;
  const https = env.https_proxy ?? env.HTTPS_PROXY;
  if (!http && !https) return null;
  return {
    ...(http ? { http } : {}),
    ...(https ? { https } : {}),
    ...((env.no_proxy ?? env.NO_PROXY) ? { noProxy: env.no_proxy ?? env.NO_PROXY } : {}),
  };
}

function describeProxy(proxy: ProxySettings): string {
  const strip = (url: string | undefined): string | undefined => {
    if (url === undefined) return undefined;
    try {
      const parsed = new URL(url);
      return parsed.origin;
    } catch {
      return '(invalid proxy URL)';
    }
  };
  return [proxy.http ? `http: ${strip(proxy.http)}` : '', proxy.https ? `https: ${strip(proxy.https)}` : '', proxy.noProxy ? `no_proxy: ${proxy.noProxy}` : ''].filter(Boolean).join(', ');
}

/**
 * Passing `ca` replaces Node's default trust store, so keep the public roots and the
 * NODE_EXTRA_CA_CERTS file (which Node only adds to its own default) and add `caFile`.
 */
function trustedCas(caFile: string, env: NodeJS.ProcessEnv): string[] {
  const cas = [...rootCertificates];
  const extra = env.NODE_EXTRA_CA_CERTS;
  if (extra) {
    try {
      cas.push(readFileSync(extra, 'utf8'));
    } catch {
      // Node already warned at start-up about an unreadable NODE_EXTRA_CA_CERTS.
    }
  }
  try {
    cas.push(readFileSync(caFile, 'utf8'));
  } catch (err) {
    throw new BrokerError('BROKER_INTERNAL', { message: `Cannot read caFile ${caFile} (${(err as NodeJS.ErrnoException).code ?? 'error'}).`, hint: 'Fix "caFile" in config.json to point to a PEM file.' });
  }
  return cas;
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
