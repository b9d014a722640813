import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenBrokerClient } from '../../src/client/index.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { OFFICIAL_BASE, publishSource, tarballBytes } from '../helpers/app-sources.js';
import { isolatedEnv, makeTempHome, REPO_ROOT } from '../helpers/test-daemon.js';
import { waitForExit } from '../../src/node/process-alive.js';

/** The runnable examples (examples/*.mjs) against the test server, as a desktop developer runs them. */
function runExample(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'examples', script), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

describe('examples/download-app.mjs', () => {
  let af: FakeArtifactory;
  let home: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    af = await startFakeArtifactory();
    const official = publishSource(af, OFFICIAL_BASE, { name: 'official', apps: ['pc-nrfconnect-ble'] });
    home = await makeTempHome('tb-ex-');
    await writeFile(path.join(home, 'config.json'), JSON.stringify({ allowInsecureLoopback: true, secretStore: 'memory', servers: [{ name: 'nordic', origin: af.origin }], officialSource: official.sourceUrl }));
    // No daemon runs: the example's client starts one (autostart). HOME and XDG_CONFIG_HOME in the
    // temp home, so that a login service of the real user cannot interfere.
    env = isolatedEnv(home, { HOME: home, XDG_CONFIG_HOME: path.join(home, 'xdg-config') });
  });
  afterAll(async () => {
    const client = new TokenBrokerClient({ socketPath: path.join(home, 'run', 'broker.sock') });
    const pid = await client.status().then((s) => s.pid, () => undefined);
    await client.close();
    if (pid !== undefined) {
      process.kill(pid, 'SIGTERM');
      await waitForExit(pid, 15_000);
    }
    await af.close();
    await rm(home, { recursive: true, force: true });
  });

  it('starts the daemon, downloads SOURCE/NAME@VERSION verified into DIR, prints the path, progress on stderr', async () => {
    const out = path.join(home, 'out');
    const result = await runExample('download-app.mjs', ['official/pc-nrfconnect-ble@1.0.0', out], env);
    expect(result.code, result.stderr).toBe(0);
    const file = path.join(out, 'pc-nrfconnect-ble-1.0.0.tgz');
    expect(result.stdout).toBe(`${file}\n`);
    expect((await readFile(file)).equals(tarballBytes('pc-nrfconnect-ble', '1.0.0'))).toBe(true);
    expect(result.stderr).toMatch(/official\/pc-nrfconnect-ble: 100% \(\d+ of \d+ bytes\)/);
    // The daemon it started runs on: the next run uses it, and without @VERSION takes the latest.
    const latest = await runExample('download-app.mjs', ['official/pc-nrfconnect-ble', out], env);
    expect(latest.code, latest.stderr).toBe(0);
    expect(latest.stdout).toBe(`${path.join(out, 'pc-nrfconnect-ble-1.2.0.tgz')}\n`);
    expect((await readFile(path.join(home, 'state', 'daemon.log'), 'utf8')).match(/tokenbroker daemon ready/g)).toHaveLength(1);
  });

  it('an unknown app exits with the CLI\'s code and the daemon\'s message and hint', async () => {
    const result = await runExample('download-app.mjs', ['official/no-such-app', path.join(home, 'out')], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^download-app: .*no-such-app/m);
    expect(result.stderr).toMatch(/^hint: /m);
    const usage = await runExample('download-app.mjs', ['just-a-name'], env);
    expect(usage.code).toBe(2);
  });
});
