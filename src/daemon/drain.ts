import { pollUntil } from '../protocol/poll-until.js';
import type { Server } from 'node:http';
import type { DomainLog } from '../broker/ports.js';

export interface InFlight {
  count(): number;
}

export function trackInFlight(server: Server): InFlight {
  let active = 0;
  server.on('request', (_req, res) => {
    active += 1;
    res.once('close', () => {
      active -= 1;
    });
  });
  return { count: () => active };
}

/**
 * Stops accepting, lets in-flight requests finish for at most `graceMs`, then closes whatever is
 * left. Idle keep-alive connections are closed as soon as they go idle.
 */
export async function drainAndClose(options: { server: Server; inFlight: InFlight; graceMs: number; log: DomainLog }): Promise<void> {
  const { server, inFlight, graceMs, log } = options;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  await pollUntil(() => {
    if (inFlight.count() === 0) return true;
    server.closeIdleConnections();
    return undefined;
  }, { timeoutMs: graceMs, intervalMs: 25 });
  if (inFlight.count() > 0) log.warn({ inFlight: inFlight.count() }, 'grace period over; closing remaining connections');
  server.closeAllConnections();
  await closed;
}
