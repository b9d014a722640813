/**
 * `npm run sandbox`: try tokenbroker without Nordic's server or your own keychain.
 *
 * Starts a local Artifactory-like server (the one the tests use) with a public and a restricted
 * app source and a known test token, and a daemon on a temporary home pointed at it: its own
 * socket, `secretStore: "memory"`, nothing of yours touched. Prints the environment lines that
 * point a second terminal's `tokenbroker` at it. Ctrl-C stops both and removes the home.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TokenBrokerClient } from '../src/client/client.js';
import { DAEMON_NODE_FLAGS } from '../src/protocol/daemon-flags.js';
import { startFakeArtifactory } from '../tests/fixtures/fake-artifactory.js';
import { OFFICIAL_BASE, publishSource, RESTRICTED_BASE } from '../tests/helpers/app-sources.js';

/** The token the sandbox server accepts (it is not a secret: it works nowhere else). */
export const SANDBOX_TOKEN = 'sandbox-identity-token-0123456789';

const root = fileURLToPath(new URL('..', import.meta.url));
const entry = path.join(root, 'bin', 'tokenbroker.js');

async function main(): Promise<void> {
  const server = await startFakeArtifactory({
    tokens: { [SANDBOX_TOKEN]: { token_id: 'sandbox-token', subject: 'sandbox-user', description: 'tokenbroker sandbox', expiry: Math.floor(Date.now() / 1000) + 365 * 86_400 } },
  });
  const official = publishSource(server, OFFICIAL_BASE, { name: 'Sandbox official', apps: ['pc-nrfconnect-ble', 'pc-nrfconnect-ppk'], form: 'download-api' });
  const restricted = publishSource(server, RESTRICTED_BASE, { name: 'Sandbox restricted', apps: ['pc-nrfconnect-secret'], form: 'download-api' });

  // A short path: the socket lives under it and Unix socket paths stay under ~104 bytes.
  const home = await mkdtemp(path.join(os.tmpdir(), 'tb-sandbox-'));
  const config = {
    servers: [{ name: 'nordic', origin: server.origin }],
    officialSource: official.sourceUrl,
    // The sandbox server speaks plain HTTP on 127.0.0.1; a real server is always HTTPS.
    allowInsecureLoopback: true,
    secretStore: 'memory',
    logLevel: 'info',
  };
  await writeFile(path.join(home, 'config.json'), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });

  const env: NodeJS.ProcessEnv = { ...process.env, TOKENBROKER_HOME: home, TOKENBROKER_NO_AUTOSTART: '1' };
  for (const key of ['TOKENBROKER_SOCKET', 'TOKENBROKER_CONFIG', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']) delete env[key];
  const logFile = path.join(home, 'daemon.log');
  const log = openSync(logFile, 'a', 0o600);
  // Same process group: Ctrl-C on the terminal reaches the daemon too, and it drains and exits.
  const daemon = spawn(process.execPath, [...DAEMON_NODE_FLAGS, entry, 'daemon'], { env, stdio: ['ignore', log, log] });
  closeSync(log);
  const daemonExit = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));

  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('\nsandbox: stopping the daemon and the server, removing the home...\n');
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGTERM');
    await daemonExit;
    await server.close();
    await rm(home, { recursive: true, force: true });
    process.stderr.write('sandbox: done.\n');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  void daemonExit.then((code) => {
    if (!stopping) {
      process.stderr.write(`sandbox: the daemon exited (code ${code ?? 'unknown'}); its log was ${logFile}\n`);
      void stop(1);
    }
  });

  const client = new TokenBrokerClient({ socketPath: path.join(home, 'run', 'broker.sock'), onVersionMismatch: () => undefined });
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await client.status();
      break;
    } catch (err) {
      if (Date.now() > deadline || stopping) {
        process.stderr.write(`sandbox: the daemon did not answer: ${(err as Error).message}\nIts log: ${logFile}\n`);
        await stop(1);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  await client.close();

  const cli = 'tokenbroker';
  process.stdout.write(
    [
      `tokenbroker sandbox: an Artifactory-like server on ${server.origin} and a daemon in ${home}`,
      '',
      'In another terminal, point tokenbroker at it:',
      `export TOKENBROKER_HOME=${home}`,
      'export TOKENBROKER_NO_AUTOSTART=1',
      '',
      '',
      `Then try (until tokenbroker is installed: alias tokenbroker='node ${entry}'):`,
      `  ${cli} status`,
      `  ${cli} apps list`,
      `  echo ${SANDBOX_TOKEN} | ${cli} token set`,
      `  ${cli} sources add '${restricted.sourceUrl}'`,
      `  ${cli} apps download sandbox-restricted/pc-nrfconnect-secret -o /tmp`,
      '',
      `Test token: ${SANDBOX_TOKEN}    Daemon log: ${logFile}`,
      'Ctrl-C stops the daemon and the server and removes the sandbox home.',
      '',
    ].join('\n'),
  );
}

await main();
