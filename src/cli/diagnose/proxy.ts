import type { Config } from '../../protocol/config-schema.js';

export interface ProxyInEffect {
  /** The proxy's origin (credentials never shown). */
  origin: string;
  /** Where the setting came from. */
  source: 'config' | 'environment';
}

/**
 * The proxy the daemon's upstream (undici-upstream.ts: an EnvHttpProxyAgent) uses for `origin`,
 * with the same rules: config `proxy` first (a value it leaves out falls back to the
 * environment, as undici does), else HTTP(S)_PROXY; an https request without an https proxy
 * uses the http one; NO_PROXY entries match the host, its subdomains, and optionally a port.
 * `env` is the CLI's environment, which can differ from a service manager's.
 */
export function proxyFor(origin: string, configured: Config['proxy'], env: NodeJS.ProcessEnv): ProxyInEffect | null {
  if (configured !== null && configured.http === undefined && configured.https === undefined) return null;
  const fromEnv = {
    http: env.http_proxy ?? env.HTTP_PROXY,
    https: env.https_proxy ?? env.HTTPS_PROXY,
    noProxy: env.no_proxy ?? env.NO_PROXY,
  };
  if (configured === null && !fromEnv.http && !fromEnv.https) return null;
  const url = new URL(origin);
  // In undici's order of preference, each with where it came from.
  const candidates: [string | undefined, ProxyInEffect['source']][] =
    url.protocol === 'https:'
      ? [
          [configured?.https, 'config'],
          [fromEnv.https, 'environment'],
          [configured?.http, 'config'],
          [fromEnv.http, 'environment'],
        ]
      : [
          [configured?.http, 'config'],
          [fromEnv.http, 'environment'],
        ];
  const found = candidates.find(([value]) => value !== undefined && value !== '');
  if (found === undefined) return null;
  const [chosen, source] = found as [string, ProxyInEffect['source']];
  const port = Number.parseInt(url.port, 10) || (url.protocol === 'https:' ? 443 : 80);
  if (bypassed(url.hostname.toLowerCase(), port, configured?.noProxy ?? fromEnv.noProxy ?? '')) return null;
  return { origin: safeOrigin(chosen), source };
}

function bypassed(hostname: string, port: number, noProxy: string): boolean {
  if (noProxy === '*') return true;
  for (const entry of noProxy.split(/[,\s]/)) {
    if (entry === '') continue;
    const parsed = /^(.+):(\d+)$/.exec(entry);
    const host = (parsed?.[1] ?? entry).replace(/^\*?\./, '').toLowerCase();
    const entryPort = parsed?.[2] === undefined ? 0 : Number.parseInt(parsed[2], 10);
    if (entryPort !== 0 && entryPort !== port) continue;
    if (hostname === host || hostname.endsWith(`.${host}`)) return true;
  }
  return false;
}

function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid proxy URL)';
  }
}
