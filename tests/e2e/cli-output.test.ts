import { spawn } from 'node:child_process';
import { lstat, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { inCliWords } from '../../src/cli/errors.js';
import { formatStatus } from '../../src/cli/commands/status-command.js';
import { BrokerError } from '../../src/protocol/errors.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { bufferIO } from '../helpers/buffer-io.js';
import { CLI_ENTRY, isolatedEnv, makeTempHome, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { itWhen } from '../helpers/tools.js';

const OFFICIAL = '/artifactory/swtools/external/ncd/apps/official/source.json';
const BIG = '/artifactory/swtools/external/big/firmware-16m.bin';

/** Runs the CLI with its stdout a pipe whose reader has already gone (what `| head` leaves behind). */
async function runWithClosedStdout(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI_ENTRY, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  return { code, stderr };
}

/** `sh -c 'tokenbroker ARGS | head …'`: the CLI's own exit code and stderr, and what head printed. */
async function runPipedToHead(args: string, head: string, env: NodeJS.ProcessEnv): Promise<{ cliCode: number; stdout: string; stderr: string }> {
  const script = `"${process.execPath}" "${CLI_ENTRY}" ${args} 2>"$ERR" | ${head}; echo "cli-exit=\${PIPESTATUS[0]}"; cat "$ERR" >&2`;
  const home = await makeTempHome('tbp-');
  try {
    const child = spawn('bash', ['-c', script], { env: { ...env, ERR: path.join(home, 'err') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('latin1')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await new Promise((resolve) => child.once('close', resolve));
    const cliCode = Number(/cli-exit=(\d+)/.exec(stdout)?.[1]);
    return { cliCode, stdout: stdout.replace(/cli-exit=\d+\n$/, ''), stderr };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

describe('CLI output rules', () => {
  let af: FakeArtifactory;
  let daemon: TestDaemon;
  beforeAll(async () => {
    af = await startFakeArtifactory();
    af.setJson(OFFICIAL, { name: 'Official', apps: [] });
    af.setFile(BIG, { size: 16 << 20, seed: 7 });
    af.addToken('good-token', { token_id: 'id-good', expiry: Math.floor(Date.now() / 1000) + 90 * 86_400 });
    daemon = await startTestDaemon({
      config: { allowInsecureLoopback: true, servers: [{ name: 'nordic', origin: af.origin }], officialSource: af.url(OFFICIAL), logLevel: 'warn' },
    });
  });
  afterAll(async () => {
    await daemon.cleanup();
    await af.close();
  });

  describe('a closed pipe ends the command quietly with exit 0', () => {
    it('status whose reader is gone', async () => {
      const result = await runWithClosedStdout(['status'], daemon.env);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
    });

    it('fetch of 16 MiB whose reader is gone', async () => {
      const result = await runWithClosedStdout(['fetch', af.url(BIG)], daemon.env);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
    });

    it('`status | head -1` and `fetch URL | head -c 10`', async () => {
      const status = await runPipedToHead('status', 'head -1', daemon.env);
      expect(status.stdout).toMatch(/^tokenbroker \S+ \(pid \d+\)/);
      expect(status.stdout.split('\n').filter((line) => line !== '')).toHaveLength(1);
      expect(status.stderr).toBe('');
      expect(status.cliCode).toBe(0);
      const fetched = await runPipedToHead(`fetch ${af.url(BIG)}`, 'head -c 10', daemon.env);
      expect(fetched.stdout).toHaveLength(10);
      expect(fetched.stderr).toBe('');
      expect(fetched.cliCode).toBe(0);
    });
  });

  describe('one layout for every command', () => {
    it('piped: tables are tab-separated lines with every value whole, apps list stays text', async () => {
      const sources = bufferIO(isolatedEnv(daemon.home, { COLUMNS: '60' }));
      expect(await main(['--socket', daemon.socketPath, 'sources', 'list'], { io: sources })).toBe(0);
      const lines = sources.out().trimEnd().split('\n');
      expect(lines[0]).toBe(['ID', 'NAME', 'STATE', 'APPS', 'LAST REFRESH', 'URL'].join('\t'));
      expect(lines[1]?.split('\t')[0]).toBe('official *');
      expect(lines[1]?.split('\t')[5]).toBe(af.url(OFFICIAL));
      expect(sources.out()).not.toContain('…');

      const apps = bufferIO(isolatedEnv(daemon.home));
      expect(await main(['--socket', daemon.socketPath, 'apps', 'list'], { io: apps })).toBe(0);
      // Text, not JSON: --json is the one way to ask for JSON.
      expect(apps.out().trimStart().startsWith('[')).toBe(false);
    });

    it('on a terminal at COLUMNS=60 every line fits, long values cut with "…"', async () => {
      for (const command of [['sources', 'list'], ['status'], ['token', 'show']]) {
        const io = bufferIO(isolatedEnv(daemon.home, { COLUMNS: '60' }), { stdout: true });
        expect(await main(['--socket', daemon.socketPath, ...command], { io })).toBe(0);
        const long = io.out().split('\n').filter((line) => line.length > 60);
        expect(long, `${command.join(' ')}:\n${io.out()}`).toEqual([]);
      }
      const table = bufferIO(isolatedEnv(daemon.home, { COLUMNS: '60' }), { stdout: true });
      await main(['--socket', daemon.socketPath, 'sources', 'list'], { io: table });
      expect(table.out()).toMatch(/^official \*.*…$/m);
    });

    it('--help wraps at COLUMNS, piped or not, and lists the download scope', async () => {
      for (const args of [['--help'], ['fetch', '--help'], ['client-token', 'create', '--help'], ['daemon', '--help']]) {
        const result = await runCli(args, { env: { ...daemon.env, COLUMNS: '60' } });
        expect(result.code).toBe(0);
        expect(result.stdout.split('\n').filter((line) => line.length > 60), result.stdout).toEqual([]);
      }
      const create = await runCli(['client-token', 'create', '--help'], { env: daemon.env });
      expect(create.stdout.replace(/\s+/g, ' ')).toContain('fetch, download, token:write');
    });
  });

  describe('CLI words', () => {
    it('a pasted token with spaces around it and a blank line after it is trimmed', async () => {
      const result = await runCli(['token', 'set'], { env: daemon.env, input: '   good-token  \n\n' });
      expect(result.stderr).not.toMatch(/body|JSON/);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('id-good');
      const inner = await runCli(['token', 'replace'], { env: daemon.env, input: 'good token\n' });
      expect(inner.code).toBe(2);
      expect(inner.stderr).toContain('tokenbroker: The token contains whitespace');
      expect(inner.stderr).not.toMatch(/body|JSON|bytes/);
    });

    it('a 100 KB URL is refused in the CLI\'s words; a long URL is never echoed whole', async () => {
      const huge = `${af.origin}/artifactory/swtools/external/${'a'.repeat(100_000)}`;
      const result = await runCli(['fetch', huge], { env: daemon.env });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/The URL is 10\d{4} characters long/);
      expect(result.stderr).not.toMatch(/body|JSON|bytes/i);
      const long = `https://elsewhere.example/${'b'.repeat(8_000)}`;
      const refused = await runCli(['fetch', long], { env: daemon.env });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).not.toContain('b'.repeat(200));
      expect(refused.stderr.length).toBeLessThan(2_000);
    });
  });

  describe('saving where no file can be created', () => {
    itWhen(process.getuid?.() === 0, 'root (writes to /proc and /sys look possible only to root)', '-o /proc/x and -o /sys/x as root name the real problem, not BROKER_INTERNAL', async () => {
      for (const target of ['/proc/x', '/sys/x']) {
        const result = await runCli(['fetch', af.url(BIG), '-o', target], { env: daemon.env });
        expect(result.code, result.stderr).toBe(2);
        expect(result.stderr).toContain(`kernel's ${path.dirname(target)} filesystem`);
        expect(result.stderr).not.toMatch(/BROKER_INTERNAL|journalctl/);
        // The daemon refuses it the same way when a client skips the CLI's check.
        await expect(daemon.client.download(af.url(BIG), target)).rejects.toMatchObject({ code: 'BROKER_BAD_REQUEST' });
      }
    });

    it('an internal error points to the log the daemon really writes', async () => {
      const home = await makeTempHome();
      try {
        await mkdir(path.join(home, 'state'), { recursive: true });
        await writeFile(path.join(home, 'state', 'daemon.log'), '');
        const { hint } = inCliWords(new BrokerError('BROKER_INTERNAL'), isolatedEnv(home));
        expect(hint).toContain(path.join(home, 'state', 'daemon.log'));
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    });
  });

  describe('smaller edges', () => {
    it('an unreachable server: token set points to --no-verify, status says why the source fails', async () => {
      const down = await startTestDaemon({ config: { allowInsecureLoopback: true, servers: [{ name: 'nordic', origin: 'http://127.0.0.1:1' }], officialSource: 'http://127.0.0.1:1/artifactory/swtools/external/ncd/apps/official/source.json', logLevel: 'warn' } });
      try {
        const set = await runCli(['token', 'set'], { env: down.env, input: 'good-token\n' });
        expect(set.code).toBe(5);
        expect(set.stderr).toContain('tokenbroker token set --no-verify');
        expect((await runCli(['sources', 'refresh'], { env: down.env })).code).toBe(5);
        const status = await runCli(['status'], { env: down.env });
        expect(status.code).toBe(0);
        // The state line as before, and the reason under it.
        expect(status.stdout).toMatch(/^ {2}official {2}failing\n {4}\S.*127\.0\.0\.1:1/m);
      } finally {
        await down.cleanup();
      }
    });

    it('status warns that a socket-activated daemon cannot re-create its socket', async () => {
      const status = await daemon.client.status();
      const activated = formatStatus({ ...status, socket: { ...status.socket, activated: true } });
      expect(activated.join('\n')).toContain('warning: the socket belongs to the service manager');
      expect(formatStatus(status).join('\n')).not.toContain('belongs to the service manager');
    });
  });

  describe('directories the daemon did not create', () => {
    it('an existing 0755 directory of the user is refused, left as it was, and no chmod is suggested', async () => {
      const home = await makeTempHome();
      try {
        const mine = path.join(home, 'mine');
        await mkdir(mine, { mode: 0o755 });
        const daemonRun = await runCli(['--socket', path.join(mine, 'x.sock'), 'daemon'], { env: isolatedEnv(home) });
        expect(daemonRun.code).toBe(1);
        expect(daemonRun.stderr).toMatch(/socket directory .*mine is readable by group or others \(mode 0755\)/);
        expect(daemonRun.stderr).toMatch(/hint: Use a directory tokenbroker creates itself/);
        expect(daemonRun.stderr).not.toMatch(/chmod/);
        expect((await stat(mine)).mode & 0o777).toBe(0o755);
        // The state directory is released for the next try.
        await expect(lstat(path.join(home, 'state', 'daemon.lock'))).rejects.toMatchObject({ code: 'ENOENT' });

        const status = await runCli(['--socket', '/tmp/x.sock', 'status'], { env: isolatedEnv(home) });
        expect(status.code).not.toBe(0);
        expect(status.stderr).not.toMatch(/chmod/);
        const relative = spawn(process.execPath, [CLI_ENTRY, '--socket', 'x.sock', 'status'], { cwd: mine, env: isolatedEnv(home), stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        relative.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        await new Promise((resolve) => relative.once('close', resolve));
        expect(stderr).toMatch(/hint: /);
        expect(stderr).not.toMatch(/chmod/);
        expect((await stat(mine)).mode & 0o777).toBe(0o755);
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    });
  });
});
