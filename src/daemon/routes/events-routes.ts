import type { FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { ClientTokenService } from '../../broker/client-tokens.js';
import { clientTokenPrincipal, type DownloadPrincipal } from '../../broker/download-service.js';
import type { BrokerEvent } from '../../protocol/events.js';
import { BrokerError } from '../../protocol/errors.js';
import { clientTokenOf } from '../listener-auth.js';
import type { ServerDeps } from '../server.js';

/**
 * Which events a reader receives. The owner's socket: all. A client token: `download.*` events
 * only for downloads it started itself (DESIGN section 5: a download is visible to the owner and
 * to the token that started it), and the other events only with `status:read` (a `download`-only
 * token may open the stream for its own downloads' progress).
 */
export function eventFilter(raw: IncomingMessage, deps: Pick<ServerDeps, 'downloadService' | 'listenerOf'>): (event: BrokerEvent) => boolean {
  const grant = clientTokenOf(raw);
  if (grant === undefined) {
    // No grant on an extra listener cannot happen (the auth hook refused it); fail closed anyway.
    return deps.listenerOf(raw) === undefined ? () => true : () => false;
  }
  const principal: DownloadPrincipal = clientTokenPrincipal(grant.id);
  const statusReader = ClientTokenService.allows(grant, 'status:read');
  return (event) => {
    if (event.type.startsWith('download.')) return typeof event.id === 'string' && deps.downloadService.visibleTo(event.id, principal);
    return statusReader;
  };
}

/**
 * `GET /v1/events`: a WebSocket that receives every domain event it may see (eventFilter) as one JSON message. Plain HTTP
 * requests get an envelope explaining the upgrade. Clients are closed (1001) on shutdown.
 */
export function registerEventsRoutes(app: FastifyInstance, deps: ServerDeps): void {
  app.route({
    method: 'GET',
    url: '/v1/events',
    handler: async () => {
      throw new BrokerError('BROKER_BAD_REQUEST', {
        message: '/v1/events is a WebSocket endpoint.',
        hint: 'Connect with a WebSocket client (Upgrade: websocket), e.g. `client.events()` from tokenbroker/client.',
      });
    },
    wsHandler: (socket, request) => {
      const visible = eventFilter(request.raw, deps);
      const unsubscribe = deps.events.subscribe((event) => {
        if (!visible(event)) return;
        // A slow reader must not make the daemon buffer without bound: drop it instead.
        if (socket.bufferedAmount > 1024 * 1024) {
          socket.terminate();
          return;
        }
        socket.send(deps.scrubber?.scrub(JSON.stringify(event)) ?? JSON.stringify(event));
      });
      socket.on('close', unsubscribe);
      socket.on('error', unsubscribe);
      // Clients only listen; anything they send is ignored.
      socket.on('message', () => undefined);
    },
  });
}

/** Closes every event stream, e.g. after `daemon.stopping` was sent. */
export function closeEventStreams(app: FastifyInstance): void {
  for (const client of app.websocketServer?.clients ?? []) client.close(1001, 'daemon stopping');
}
