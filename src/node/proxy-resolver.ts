import type { Config } from '../protocol/config-schema.js';

/**
 * THE proxy resolver: which proxy (if any) an upstream request to a URL goes through. The daemon's
 * undici upstream dispatches by its answer and `diagnose` reports its answer, so the two cannot
 * disagree. Rules (DESIGN section 3): a `proxy` object in config replaces the environment
 * entirely; only when it is null do HTTP(S)_PROXY / NO_PROXY apply. An https URL without an https
 * proxy uses the http one (as undici and curl do). NO_PROXY entries (comma or space separated)
 * match the host and its subdomains, optionally with `:port`; `*` matches everything.
 */

export interface ProxySettings {
  readonly http?: string;
  readonly https?: string;
  readonly noProxy?: string;
  readonly source: 'config' | 'environment';
}

export interface ProxyChoice {
  /** The proxy URL to connect through (may carry credentials: never show it). */
  readonly url: string;
  /** Its origin, safe to show. */
  readonly origin: string;
  readonly source: ProxySettings['source'];
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

/** The settings in effect for this config and environment (`env`: the process's, or a test's). */
export function proxySettings(configured: Config['proxy'], env: NodeJS.ProcessEnv): ProxySettings | null {
  if (configured !== null) {
    if (!configured.http && !configured.https) return null;
    return { ...configured, source: 'config' };
  }
  const http = env.http_proxy ?? env.HTTP_PROXY;
  const https = env.https_proxy ?? env.HTTPS_PROXY;
  if (!http && !https) return null;
  const noProxy = env.no_proxy ?? env.NO_PROXY;
  return { ...(http ? { http } : {}), ...(https ? { https } : {}), ...(noProxy ? { noProxy } : {}), source: 'environment' };
}

/** The proxy for a request to `url`, or null when it goes direct. */
export function proxyFor(url: string | URL, settings: ProxySettings | null): ProxyChoice | null {
  if (settings === null) return null;
  const target = typeof url === 'string' ? new URL(url) : url;
  const chosen = target.protocol === 'https:' ? settings.https || settings.http : settings.http;
  if (!chosen) return null;
  // `host` keeps the brackets of an IPv6 literal, as NO_PROXY entries write it.
  const hostname = target.host.replace(/:\d*$/, '').toLowerCase();
  const port = Number.parseInt(target.port, 10) || DEFAULT_PORTS[target.protocol] || 0;
  if (bypassed(hostname, port, settings.noProxy ?? '')) return null;
  return { url: chosen, origin: safeOrigin(chosen), source: settings.source };
}

/** Proxy settings for messages: origins only, never credentials. */
export function describeProxySettings(settings: ProxySettings): string {
  return [settings.http ? `http: ${safeOrigin(settings.http)}` : '', settings.https ? `https: ${safeOrigin(settings.https)}` : '', settings.noProxy ? `no_proxy: ${settings.noProxy}` : ''].filter(Boolean).join(', ');
}

function bypassed(hostname: string, port: number, noProxy: string): boolean {
  if (noProxy.trim() === '*') return true;
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
