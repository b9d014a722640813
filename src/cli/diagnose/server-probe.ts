import type { Clock } from '../../broker/ports.js';
import { createUpstreamExchange } from '../../broker/upstream-exchange.js';
import type { Config, ServerConfig } from '../../protocol/config-schema.js';
import { BrokerError } from '../../protocol/errors.js';
import { VERSION } from '../../protocol/version.js';
import type { ProxyChoice } from '../../node/proxy-resolver.js';
import { createUndiciUpstream } from '../../node/undici-upstream.js';

/**
 * diagnose's server check, through the daemon's own parts: an upstream exchange built by the same
 * factory as the daemon's (createUpstreamExchange) over the undici upstream (same proxy resolver,
 * CA loader, timeout handling and error mapper). This file is the CLI's second composition root,
 * the one named exception to "the CLI imports nothing from src/broker" (tests/architecture.test.ts).
 */

export interface PingAnswer {
  status: number;
  /** The body (at most 64 KiB), trimmed. */
  text: string;
  /** The server's Date header, if any. */
  date: string | undefined;
  /** Date.now() when the request was sent and when the answer arrived. */
  sentAt: number;
  receivedAt: number;
  /** The error envelope the daemon would make of a non-200 answer. */
  error?: BrokerError;
}

export interface ServerProbe {
  /** The proxy a request to `url` goes through, exactly as the daemon decides it. */
  proxyFor(url: string): ProxyChoice | null;
  /** `GET origin+pingPath`; network failures throw BROKER_UPSTREAM_UNREACHABLE (details.reason). */
  ping(server: ServerConfig): Promise<PingAnswer>;
  close(): Promise<void>;
}

const clock: Clock = {
  now: () => Date.now(),
  setTimer: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

/** Throws BROKER_INTERNAL (with a hint) when caFile cannot be read, as the daemon would at start. */
export function createServerProbe(config: Readonly<Config>, env: NodeJS.ProcessEnv, timeouts: Config['timeouts']): ServerProbe {
  const upstream = createUndiciUpstream({ timeouts, proxy: config.proxy, caFile: config.caFile, env });
  const exchange = createUpstreamExchange({
    config: () => config,
    upstream,
    // diagnose never sends the identity token.
    tokens: {
      tokenFor: () => {
        throw new BrokerError('BROKER_TOKEN_MISSING', { message: 'diagnose does not use the identity token.' });
      },
      rejected: () => undefined,
    },
    clock,
    userAgent: `tokenbroker/${VERSION} (diagnose)`,
  });
  return {
    proxyFor: (url) => upstream.proxyFor(url),
    async ping(server) {
      const sentAt = Date.now();
      const answer = await exchange.endpoint({ server, path: server.pingPath, accept: 'text/plain' });
      const receivedAt = Date.now();
      const date = answer.headers.date;
      return {
        status: answer.status,
        text: answer.text.trim(),
        date: Array.isArray(date) ? date[0] : date,
        sentAt,
        receivedAt,
        ...(answer.status === 200 ? {} : { error: exchange.endpointError(answer) }),
      };
    },
    close: () => upstream.close(),
  };
}
