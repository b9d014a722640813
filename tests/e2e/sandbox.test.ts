import { spawn } from 'node:child_process';
import { lstat } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { isolatedEnv, REPO_ROOT, runCli } from '../helpers/test-daemon.js';
import { exited } from '../helpers/process.js';
import { isProcessAlive, waitForExit } from '../../src/cli/process-util.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe('npm run sandbox', () => {
  it('serves a daemon on a temporary home with a memory store; the printed lines drive the CLI; Ctrl-C removes it all', async () => {
    const env = isolatedEnv('/nonexistent');
    delete env.TOKENBROKER_HOME;
    delete env.TOKENBROKER_NO_AUTOSTART;
    const sandbox = spawn(process.execPath, ['--import', 'tsx', 'scripts/sandbox.ts'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => sandbox.kill('SIGKILL'));
    let out = '';
    let err = '';
    sandbox.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      sandbox.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('Ctrl-C stops')) resolve();
      });
      sandbox.once('exit', (code) => reject(new Error(`sandbox exited (${code}) early:\n${out}\n${err}`)));
    });

    // The two environment lines, as a user pastes them into another terminal.
    const exports = [...out.matchAll(/^export (TOKENBROKER_\w+)=(.*)$/gm)].map((m) => [m[1] as string, m[2] as string] as const);
    expect(exports.map(([key]) => key)).toEqual(['TOKENBROKER_HOME', 'TOKENBROKER_NO_AUTOSTART']);
    const cliEnv = { ...env, ...Object.fromEntries(exports) };
    const home = cliEnv.TOKENBROKER_HOME as string;
    const token = /^Test token: (\S+)/m.exec(out)?.[1] as string;
    const restrictedUrl = /sources add '([^']+)'/.exec(out)?.[1] as string;

    const status = await runCli(['status', '--json'], { env: cliEnv });
    expect(status.code, status.stderr).toBe(0);
    const parsed = JSON.parse(status.stdout) as { pid: number; secretStore: { kind: string }; socket: { path: string } };
    expect(parsed.secretStore.kind).toBe('memory');
    expect(parsed.socket.path.startsWith(home)).toBe(true);
    const daemonPid = parsed.pid;
    cleanups.push(() => {
      if (isProcessAlive(daemonPid)) process.kill(daemonPid, 'SIGKILL');
    });

    expect((await runCli(['token', 'set'], { env: cliEnv, input: `${token}\n` })).code).toBe(0);
    expect((await runCli(['sources', 'add', restrictedUrl], { env: cliEnv })).code).toBe(0);
    const apps = await runCli(['apps', 'list'], { env: cliEnv });
    expect(apps.stdout).toMatch(/^official\tpc-nrfconnect-ble\t/m);
    expect(apps.stdout).toMatch(/^sandbox-restricted\tpc-nrfconnect-secret\t/m);

    sandbox.kill('SIGINT');
    expect(await exited(sandbox, 20_000)).toBe(0);
    expect(await waitForExit(daemonPid, 5_000)).toBe(true);
    await expect(lstat(home)).rejects.toMatchObject({ code: 'ENOENT' });
  }, 60_000);
});
