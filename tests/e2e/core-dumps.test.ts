import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { TokenBrokerClient } from '../../src/client/client.js';
import { DAEMON_NODE_FLAGS } from '../../src/protocol/daemon-flags.js';
import { CLI_ENTRY, isolatedEnv, makeTempHome, runCli } from '../helpers/test-daemon.js';
import { describeWhen, isLinux } from '../helpers/tools.js';
import { waitUntilAnswering } from '../helpers/wait-for.js';

const homes: string[] = [];
const pids: number[] = [];
afterEach(async () => {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await Promise.all(homes.splice(0).map((h) => rm(h, { recursive: true, force: true })));
});

/** The soft core-file limit of a running process, as the kernel applies it. */
async function coreLimitOf(pid: number): Promise<string> {
  const limits = await readFile(`/proc/${pid}/limits`, 'utf8');
  const line = limits.split('\n').find((l) => l.startsWith('Max core file size')) ?? '';
  return line.slice('Max core file size'.length).trim().split(/\s+/)[0] ?? '';
}

async function home(): Promise<{ home: string; env: NodeJS.ProcessEnv }> {
  const h = await makeTempHome('tb-core-');
  homes.push(h);
  // A loopback server nobody serves: diagnose's network checks stay on this machine.
  await writeFile(path.join(h, 'config.json'), JSON.stringify({ secretStore: 'memory', allowInsecureLoopback: true, servers: [{ name: 'local', origin: 'http://127.0.0.1:9' }] }));
  return { home: h, env: isolatedEnv(h, { TOKENBROKER_NO_AUTOSTART: undefined, HOME: h, XDG_CONFIG_HOME: path.join(h, 'xdg-config') }) };
}

/** A shell that allows core files, as a developer's might (`ulimit -c unlimited`). */
function inUnlimitedShell(args: string[]): [string, string[]] {
  return ['/bin/sh', ['-c', 'ulimit -c unlimited && exec "$@"', 'sh', ...args]];
}

describeWhen(isLinux, 'Linux (prlimit and /proc)', 'core dumps', () => {
  it('a daemon autostarted from a shell with `ulimit -c unlimited` runs with a core limit of 0', async () => {
    const { env } = await home();
    const [command, args] = inUnlimitedShell([process.execPath, CLI_ENTRY, 'status', '--json']);
    // Control: the shell really lifts the limit for what it runs.
    const control = spawn(command, [...args.slice(0, 3), '/bin/sh', '-c', 'ulimit -c'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let controlOut = '';
    control.stdout.on('data', (c: Buffer) => (controlOut += c.toString()));
    await new Promise((resolve) => control.once('close', resolve));
    expect(controlOut.trim()).toBe('unlimited');

    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code, stderr).toBe(0);
    const status = JSON.parse(stdout) as { pid: number; coreDumps: unknown };
    pids.push(status.pid);
    expect(await coreLimitOf(status.pid)).toBe('0');
    expect(status.coreDumps).toEqual({ limit: 0 });
  });

  it('a daemon run by hand with core files allowed: status and diagnose warn', async () => {
    const { home: h, env } = await home();
    const [command, args] = inUnlimitedShell([process.execPath, ...DAEMON_NODE_FLAGS, CLI_ENTRY, 'daemon']);
    const child = spawn(command, args, { env, stdio: 'ignore' });
    pids.push(child.pid as number);
    const client = new TokenBrokerClient({ socketPath: path.join(h, 'run', 'broker.sock'), onVersionMismatch: () => undefined });
    const status = await waitUntilAnswering(() => client.status(), child, () => 'a daemon run by hand with core files allowed');
    await client.close();
    expect(status.coreDumps).toMatchObject({ limit: 'unlimited', warning: expect.stringContaining('a core file would hold the token') });
    const text = await runCli(['status'], { env });
    expect(text.stdout).toContain('core dumps: limit unlimited');
    const diagnose = await runCli(['diagnose', '--json'], { env });
    const report = JSON.parse(diagnose.stdout) as { checks: { id: string; status: string }[] };
    expect(report.checks.find((c) => c.id === 'core-dumps')).toMatchObject({ status: 'warn' });
  });
});
