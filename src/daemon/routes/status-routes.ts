import type { FastifyInstance } from 'fastify';
import type { Status } from '../../protocol/status.js';
import { VERSION } from '../../protocol/version.js';
import type { ServerDeps } from '../server.js';

export function registerStatusRoutes(app: FastifyInstance, deps: ServerDeps): void {
  app.get('/v1/status', async (): Promise<Status> => {
    const now = deps.clock.now();
    return {
      ...(await deps.statusSections()),
      version: VERSION,
      pid: process.pid,
      uptimeSeconds: Math.max(0, Math.round((now - deps.startedAt) / 1000)),
      startedAt: new Date(deps.startedAt).toISOString(),
      socket: { path: deps.paths.socketPath, activated: deps.socketActivated },
      config: { path: deps.paths.configFile },
      paths: { state: deps.paths.stateDir, cache: deps.paths.cacheDir },
      tokens: deps.tokens.views(),
    };
  });
}
