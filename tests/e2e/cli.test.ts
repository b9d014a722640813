import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { StatusSchema } from '../../src/protocol/status.js';
import { bufferIO } from '../helpers/buffer-io.js';
import { isolatedEnv, makeTempHome, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';


describe('CLI', () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon.cleanup();
  });

  it('status --json prints valid JSON with pid and version (real process)', async () => {
    const result = await runCli(['status', '--json'], { env: daemon.env });
    expect(result.code).toBe(0);
    // The real daemon's answer satisfies the one StatusSchema, every section included.
    const status = StatusSchema.parse(JSON.parse(result.stdout));
    expect(status.pid).toBe(daemon.pid);
    expect(status.sources.items.map((source) => source.id)).toContain('official');
    expect(status.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('status prints a readable summary', async () => {
    const io = bufferIO();
    const code = await main(['--socket', daemon.socketPath, 'status'], { io });
    expect(code).toBe(0);
    expect(io.out()).toContain(`(pid ${daemon.pid})`);
    expect(io.out()).toContain(`socket  ${daemon.socketPath}`);
    expect(io.out()).toMatch(/^sources: 1 source, /m);
    expect(io.out()).toMatch(/^ {2}official {2}(ok|stale|failing|needs-token)$/m);
  });

  it('a daemon that is not running gives exit 3 and a hint, no stack trace', async () => {
    const home = await makeTempHome();
    try {
      const result = await runCli(['status'], { env: isolatedEnv(home) });
      expect(result.code).toBe(3);
      expect(result.stderr).toMatch(/not reachable/);
      expect(result.stderr).toMatch(/hint: Start it with `tokenbroker daemon`/);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it.each([[['bogus']], [['status', '--frobnicate']], [['--socket']]])('usage error %j exits 2', async (args) => {
    const io = bufferIO();
    expect(await main(args, { io })).toBe(2);
    // Every error the CLI prints starts with the program's name, commander's own included.
    expect(io.err()).toMatch(/^tokenbroker: /);
    expect(io.err()).not.toMatch(/^error:/m);
  });

  it('help shows no placeholder argument and one default per option', async () => {
    const tokenSet = bufferIO();
    expect(await main(['token', 'set', '--help'], { io: tokenSet })).toBe(0);
    expect(tokenSet.out()).toContain('Usage: tokenbroker token set [options]\n');
    expect(tokenSet.out()).not.toMatch(/refused/);
    const create = bufferIO();
    expect(await main(['client-token', 'create', '--help'], { io: create })).toBe(0);
    const scopeHelp = create.out().slice(create.out().indexOf('--scope'), create.out().indexOf('\n  -', create.out().indexOf('--scope') + 1));
    expect(scopeHelp.match(/default/g)).toHaveLength(1);
  });

  it('a token on the command line is refused with the reason, and the usage does not offer one', async () => {
    const io = bufferIO();
    expect(await main(['token', 'set', 'tbk-on-argv'], { io })).toBe(2);
    expect(io.err()).toMatch(/^tokenbroker: The token is never taken from the command line/);
  });

  it('--help and --version exit 0', async () => {
    const help = bufferIO();
    expect(await main(['--help'], { io: help })).toBe(0);
    expect(help.out()).toContain('Usage: tokenbroker');
    const version = bufferIO();
    expect(await main(['--version'], { io: version })).toBe(0);
    expect(version.out().trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
