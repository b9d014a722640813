import { lookup } from 'node:dns/promises';
import { connect as netConnect, isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { loadTrustedCas } from '../../node/ca-loader.js';
import type { ProxyChoice } from '../../node/proxy-resolver.js';
import type { ServerProbe } from './server-probe.js';
import type { Config, ServerConfig } from '../../protocol/config-schema.js';
import { BrokerError } from '../../protocol/errors.js';
import { check, forServer, type Check } from './check.js';

type ProxyInEffect = ProxyChoice;

/** Token expiry and `daysLeft` are judged by the local clock; more skew than this is worth a warning. */
export const CLOCK_SKEW_WARN_MS = 5 * 60 * 1000;
/** diagnose should answer quickly even where the config allows long timeouts. */
const MAX_CONNECT_MS = 5_000;
const MAX_HEADERS_MS = 10_000;

/** Error codes of certificate and handshake problems (as opposed to not reaching the server at all). */
const TLS_ERROR = /^(CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|ERR_TLS_|ERR_SSL_|HOSTNAME_MISMATCH|ECONNRESET|EPROTO)/;

export const TLS_HINT =
  'If a corporate proxy or firewall intercepts TLS, put its CA certificate (PEM) in "caFile" in config.json. NODE_EXTRA_CA_CERTS works too, but a service manager does not pass it from your shell.';

export interface ServerCheckOptions {
  server: ServerConfig;
  config: Readonly<Config>;
  /** The CLI's environment (proxy variables, NODE_EXTRA_CA_CERTS). */
  env: NodeJS.ProcessEnv;
}

/**
 * Everything between this machine and one server, each step on its own so the failing one is
 * named: proxy in effect, DNS, TCP, TLS, then `GET pingPath` through the daemon's own upstream
 * adapter (same proxy, CA and timeout handling), and the clock skew from that answer's Date.
 */
export async function serverChecks(options: ServerCheckOptions): Promise<Check[]> {
  const { server, config, env } = options;
  const url = new URL(server.origin);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number.parseInt(url.port, 10) || (url.protocol === 'https:' ? 443 : 80);
  const connectMs = Math.min(config.timeouts.connectMs, MAX_CONNECT_MS);
  let probe: ServerProbe;
  try {
    // The daemon's own upstream (undici), loaded only here: no other command pays for it.
    const { createServerProbe } = await import('./server-probe.js');
    probe = createServerProbe(config, env, { connectMs, headersMs: Math.min(config.timeouts.headersMs, MAX_HEADERS_MS), bodyIdleMs: MAX_HEADERS_MS });
  } catch (err) {
    const error = err instanceof BrokerError ? err : new BrokerError('BROKER_INTERNAL', { message: String(err) });
    return [check('ping', 'fail', error.message, error.hint)].map((c) => forServer(c, server.name));
  }
  // The daemon's own decision (the one proxy resolver), not a second opinion.
  const proxy = probe.proxyFor(`${server.origin}${server.pingPath}`);

  const proxyTarget = proxy === null ? undefined : new URL(proxy.origin);
  const tcpTarget = proxyTarget === undefined ? { host, port } : { host: proxyTarget.hostname.replace(/^\[|\]$/g, ''), port: Number.parseInt(proxyTarget.port, 10) || (proxyTarget.protocol === 'https:' ? 443 : 80) };
  const [dns, tcp, directTls, pinged] = await Promise.all([
    dnsCheck(host, proxy),
    tcpCheck(tcpTarget, proxy === null ? '' : ` (the proxy for ${server.origin})`, connectMs),
    url.protocol === 'https:' && proxy === null ? tlsCheck(host, port, config.caFile, env, connectMs) : Promise.resolve(undefined),
    ping(server, probe).finally(() => probe.close().catch(() => undefined)),
  ]);
  const checks = [proxyCheck(proxy, server.origin), dns, tcp];
  if (directTls !== undefined) checks.push(directTls);
  else if (url.protocol === 'https:') checks.push(tlsThroughProxy(pinged));
  checks.push(pinged.check, clockCheck(pinged));
  return checks.map((c) => forServer(c, server.name));
}

function proxyCheck(proxy: ProxyInEffect | null, origin: string): Check {
  if (proxy === null) return check('proxy', 'ok', `none: ${origin} is reached directly`);
  if (proxy.source === 'config') return check('proxy', 'ok', `${proxy.origin} (from "proxy" in config.json)`);
  return check(
    'proxy',
    'ok',
    `${proxy.origin} (from HTTP(S)_PROXY in this shell)`,
    'A service manager (systemd, launchd) does not pass your shell\'s proxy variables to the daemon: put the proxy in "proxy" in config.json.',
  );
}

async function dnsCheck(host: string, proxy: ProxyInEffect | null): Promise<Check> {
  if (isIP(host) !== 0) return check('dns', 'ok', `${host} is an IP address: no lookup needed`);
  try {
    const addresses = await withTimeout(lookup(host, { all: true }), MAX_CONNECT_MS, 'ETIMEOUT');
    return check('dns', 'ok', `${host} resolves to ${addresses.map((a) => a.address).join(', ')}`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    if (proxy !== null) {
      return check('dns', 'warn', `${host} does not resolve here (${code})`, 'Through a proxy only the proxy needs to resolve it; the ping check tells whether that works.');
    }
    return check('dns', 'fail', `${host} does not resolve (${code})`, 'Check your network connection, DNS settings and VPN, and the server origin in config.json.');
  }
}

async function tcpCheck(target: { host: string; port: number }, via: string, timeoutMs: number): Promise<Check> {
  const where = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}${via}`;
  try {
    await new Promise<void>((resolve, reject) => {
      const socket = netConnect({ host: target.host, port: target.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.destroy();
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    return check('tcp', 'ok', `connected to ${where}`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const hint =
      code === 'ECONNREFUSED'
        ? 'Nothing accepts connections there: check the origin (scheme, host, port) in config.json, and whether the server is up.'
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? 'The name does not resolve: see the dns check.'
          : 'A firewall or VPN may block the connection; behind a corporate proxy, set "proxy" in config.json.';
    return check('tcp', 'fail', `cannot connect to ${where} (${code})`, hint);
  }
}

async function tlsCheck(host: string, port: number, caFile: string | null, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Check> {
  let ca: string[] | undefined;
  try {
    ca = loadTrustedCas(caFile, env);
  } catch (err) {
    return check('tls', 'fail', `caFile ${caFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'Fix "caFile" in config.json to point to a PEM file.');
  }
  try {
    const summary = await new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host, port, ...(isIP(host) === 0 ? { servername: host } : {}), ...(ca === undefined ? {} : { ca }) });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(Object.assign(new Error('TLS handshake timed out'), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        const cert = socket.getPeerCertificate();
        const until = Number.isNaN(Date.parse(cert.valid_to)) ? 'unknown' : new Date(cert.valid_to).toISOString().slice(0, 10);
        resolve(`${socket.getProtocol() ?? 'TLS'}, certificate for ${cert.subject?.CN ?? host} valid until ${until}`);
        socket.destroy();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    return check('tls', 'ok', summary);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    if (!TLS_ERROR.test(code)) return check('tls', 'fail', `no TLS handshake with ${host}:${port}: no connection (${code})`, 'Fix the dns and tcp checks first.');
    return check('tls', 'fail', `TLS handshake with ${host}:${port} failed (${code}: ${(err as Error).message})`, caFile === null ? TLS_HINT : `caFile ${caFile} is in use. ${TLS_HINT}`);
  }
}

interface PingOutcome {
  check: Check;
  /** The upstream error, when there was no answer. */
  error?: BrokerError;
  /** Server time minus local time (ms), from the Date header. */
  skewMs?: number;
  answered: boolean;
}

async function ping(server: ServerConfig, probe: ServerProbe): Promise<PingOutcome> {
  const url = `${server.origin}${server.pingPath}`;
  try {
    const answer = await probe.ping(server);
    const date = Date.parse(answer.date ?? '');
    // The server stamped its Date somewhere between sending and receiving: compare with the midpoint.
    const skewMs = Number.isNaN(date) ? undefined : date - (answer.sentAt + answer.receivedAt) / 2;
    const base = { answered: true, ...(skewMs === undefined ? {} : { skewMs }) };
    if (answer.status === 200) return { ...base, check: check('ping', 'ok', `GET ${url}: HTTP 200${answer.text === '' ? '' : ` ${JSON.stringify(answer.text.slice(0, 40))}`}`) };
    return {
      ...base,
      check: check(
        'ping',
        'fail',
        `GET ${url}: HTTP ${answer.status} (${answer.error?.message ?? 'unexpected answer'}), expected 200`,
        answer.status === 404 ? 'Check "pingPath" and the origin in config.json.' : "The server answered but is not healthy, or a proxy answered for it; try again later or ask the server's operators.",
      ),
    };
  } catch (err) {
    const error = err instanceof BrokerError ? err : new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `Cannot reach ${server.origin}.`, details: { reason: 'network' }, cause: err });
    const reason = (error.details as { reason?: string } | undefined)?.reason ?? '';
    const hint =
      reason === 'tls'
        ? TLS_HINT
        : `Nothing answered at ${server.origin}: check the network, VPN and proxy${reason === 'dns' ? ' (the name does not resolve)' : ''}, the "origin" in config.json, and whether the server is up.`;
    return { check: check('ping', 'fail', `GET ${url}: ${error.message}`, hint), error, answered: false };
  }
}

function tlsThroughProxy(pinged: PingOutcome): Check {
  if (pinged.answered) return check('tls', 'ok', 'handshake through the proxy succeeded (see ping)');
  const error = pinged.error;
  if (error !== undefined && (error.details as { reason?: string } | undefined)?.reason === 'tls') return check('tls', 'fail', error.message, TLS_HINT);
  return check('tls', 'warn', 'not checked: the ping through the proxy did not get that far', 'Fix the ping first.');
}

function clockCheck(pinged: PingOutcome): Check {
  if (!pinged.answered) return check('clock', 'warn', 'not measured: the server did not answer', 'Token expiry is judged by this machine\'s clock; check it once the server answers.');
  if (pinged.skewMs === undefined) return check('clock', 'warn', 'not measured: the server sent no Date header', 'Make sure this machine\'s clock is synchronised (e.g. `timedatectl set-ntp true`).');
  const seconds = Math.round(Math.abs(pinged.skewMs) / 1000);
  const direction = pinged.skewMs > 0 ? 'behind' : 'ahead of';
  if (Math.abs(pinged.skewMs) > CLOCK_SKEW_WARN_MS) {
    return check(
      'clock',
      'warn',
      `this machine's clock is ${formatSkew(seconds)} ${direction} the server's`,
      'Token expiry and "days left" are computed with this clock; enable time synchronisation (e.g. `timedatectl set-ntp true`).',
    );
  }
  // The Date header has one-second resolution: anything below that is noise.
  return check('clock', 'ok', seconds <= 1 ? 'in step with the server (within 1 s)' : `${seconds} s ${direction} the server (within 5 min)`);
}

function formatSkew(seconds: number): string {
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}

function withTimeout<T>(promise: Promise<T>, ms: number, code: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(Object.assign(new Error(code), { code })), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
