import { Writable } from 'node:stream';
import { createLogger } from '../../src/daemon/logger.js';
import type { ServerDeps } from '../../src/daemon/server.js';
import { ConfigSchema, type ConfigInput } from '../../src/protocol/config-schema.js';
import { FakeClock } from './fake-clock.js';

/** Server deps for inject() tests: in-memory log, fake clock, a temp-looking home. */
export function testServerDeps(overrides: { config?: ConfigInput } & Partial<ServerDeps> = {}): ServerDeps & { logText: () => string; clock: FakeClock } {
  let logText = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      logText += chunk.toString();
      done();
    },
  });
  const config = ConfigSchema.parse(overrides.config ?? {});
  const clock = new FakeClock();
  return {
    logger: createLogger({ level: 'debug', destination }),
    getConfig: () => config,
    paths: {
      configFile: '/tmp/tb-test/config.json',
      stateDir: '/tmp/tb-test/state',
      cacheDir: '/tmp/tb-test/cache',
      socketPath: '/tmp/tb-test/run/broker.sock',
      sources: { socket: 'TOKENBROKER_HOME', config: 'TOKENBROKER_HOME' },
    },
    startedAt: clock.now(),
    socketActivated: false,
    ...overrides,
    clock,
    logText: () => logText,
  };
}
