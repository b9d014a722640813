import type { FastifyInstance } from 'fastify';
import { BrokerError } from '../../protocol/errors.js';
import type { ServerDeps } from '../server.js';

/**
 * `GET /v1/events`: a WebSocket that receives every domain event as one JSON message. Plain HTTP
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
    wsHandler: (socket) => {
      const unsubscribe = deps.events.subscribe((event) => {
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
