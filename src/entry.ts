/**
 * Process entry of the `tokenbroker` binary: the CLI, with the daemon runner plugged in. It lives
 * above both layers so the CLI imports nothing from src/daemon (tests/architecture.test.ts); the
 * daemon is loaded on demand, so other commands do not pay for fastify's start-up.
 */
import { main } from './cli/main.js';

const code = await main(process.argv.slice(2), {
  runDaemon: async (options) => {
    // Same node flags however node was started: re-executes (once) when they are missing.
    await (await import('./node/daemon-reexec.js')).reexecDaemonWithFlags();
    return (await import('./daemon/main.js')).runDaemon(options);
  },
});
// Let stdout drain before exiting (a pipe can be slower than us).
process.exitCode = code;
if (process.stdout.writableNeedDrain) process.stdout.once('drain', () => process.exit(code));
else process.exit(code);
