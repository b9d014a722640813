import { spawn } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerEvent } from '../../src/protocol/events.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { CLI_ENTRY, makeTempHome, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { watchCommandLines } from '../helpers/command-lines.js';
import { recordEvents } from '../helpers/event-stream.js';

/**
 * The token lifecycle through the real daemon, the real CLI and the REAL OS keychain (gnome-keyring
 * under the test command's private D-Bus session: scripts/with-keyring.sh). Without a Secret
 * Service these tests fail: the daemon is configured with "secretStore": "keychain".
 */
const canary = `tbk-canary-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
let af: FakeArtifactory;
let home: string;
let daemon: TestDaemon;
let config: Record<string, unknown>;
const seen: string[] = [];
const events: BrokerEvent[] = [];

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

async function cli(args: string[], input?: string) {
  const result = await runCli(args, { env: daemon.env, ...(input === undefined ? {} : { input }) });
  seen.push(result.stdout, result.stderr);
  return result;
}

describe('token lifecycle end to end (real keychain)', () => {
  beforeAll(async () => {
    af = await startFakeArtifactory();
    home = await makeTempHome();
    config = { allowInsecureLoopback: true, secretStore: 'keychain', servers: [{ name: `e2e-${path.basename(home).toLowerCase().replace(/[^a-z0-9]/g, '')}`, origin: af.origin }] };
    af.addToken(canary, { token_id: 'tid-canary', description: 'CI laptop', expiry: Math.floor(Date.now() / 1000) + 20 * 86400 });
    daemon = await startTestDaemon({ home, config });
  });
  afterAll(async () => {
    await cli(['token', 'remove', '--yes']).catch(() => undefined);
    await daemon.cleanup();
    await af.close();
    await rm(home, { recursive: true, force: true });
  });

  it('uses the OS keychain (not a fallback)', async () => {
    const status = await daemon.client.status();
    expect(status.secretStore).toMatchObject({ kind: 'keychain', state: 'ok', persistent: true, plaintextAtRest: false });
  });

  it('token set reads stdin (one trailing newline trimmed), never argv, and shows the seed details', async () => {
    const controller = new AbortController();
    const recording = recordEvents(daemon.client, controller.signal);
    await recording.opened;

    // Every command line on the machine, from before the token is sent until the daemon has
    // validated and stored it: neither the CLI, the daemon nor any helper either spawns has it.
    const watch = watchCommandLines();
    // The watcher's own proof that it can fail: a short-lived process with a marker in argv.
    const marker = `argv-marker-${canary.slice(-8)}`;
    await new Promise((resolve) => spawn('sh', ['-c', 'sleep 0.2', marker]).once('close', resolve));
    const child = spawn(process.execPath, [CLI_ENTRY, 'token', 'set'], { env: daemon.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.stdin.end(`${canary}\n`);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    const commandLines = await watch.stop();
    expect(commandLines.some((line) => line.includes(marker))).toBe(true);
    expect(commandLines.some((line) => line.includes(`${CLI_ENTRY} token set`))).toBe(true);
    expect(commandLines.filter((line) => line.includes(canary))).toEqual([]);
    seen.push(...commandLines, out);
    expect(code).toBe(0);
    expect(out).toContain('Token ID:        tid-canary');
    expect(out).toContain('Description:     CI laptop');
    expect(out).toMatch(/Expiration date: \d{4}-\d{2}-\d{2} \(19 days left\)/);

    const show = await cli(['token', 'show', '--json']);
    expect(JSON.parse(show.stdout)).toMatchObject({ state: 'valid', tokenId: 'tid-canary', daysLeft: 19 });
    controller.abort();
    await recording.done;
    events.push(...recording.events);
    expect(events.map((e) => e.type)).toContain('token.set');
  });

  it('set refuses when a token exists and points to replace; argv tokens are refused', async () => {
    // Neither changes anything: run side by side.
    const [again, argv] = await Promise.all([cli(['token', 'set'], `${canary}\n`), cli(['token', 'replace', 'token-given-on-the-command-line'])]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/token replace/);
    expect(argv.code).toBe(2);
    expect(argv.stderr).toMatch(/never taken from the command line/);
  });

  it('replace with an invalid token exits 4 and keeps the old one', async () => {
    const bad = await cli(['token', 'replace'], `${canary}-revoked\n`);
    expect(bad.code).toBe(4);
    expect(bad.stderr).toMatch(/rejected the token/);
    expect((await daemon.client.token()).tokenId).toBe('tid-canary');
  });

  it('remove without a TTY needs --yes (exit 2)', async () => {
    const result = await cli(['token', 'remove']);
    expect(result.code).toBe(2);
    expect((await daemon.client.token()).state).toBe('valid');
  });

  it('a restarted daemon finds the token again in the keychain', async () => {
    expect(await daemon.stop()).toBe(0);
    seen.push(daemon.output());
    daemon = await startTestDaemon({ home, config });
    const view = await daemon.client.token();
    expect(view).toMatchObject({ state: 'valid', tokenId: 'tid-canary' });
    // It revalidated in the background with the token it loaded from the keychain.
    await expect.poll(() => af.requests.filter((r) => r.headers.authorization === `Bearer ${canary}`).length, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
  });

  it('remove --yes lists the consequences and the keychain no longer has it after a restart', async () => {
    const result = await cli(['token', 'remove', '--yes']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/can no longer be refreshed/);
    await daemon.stop();
    seen.push(daemon.output());
    daemon = await startTestDaemon({ home, config });
    expect((await daemon.client.token()).state).toBe('absent');
  });

  it('the canary token never appears in output, logs, events, state/cache files or argv', async () => {
    seen.push(daemon.output(), JSON.stringify(events));
    for (const file of await filesUnder(home)) {
      if (file.endsWith('.sock')) continue;
      seen.push(await readFile(file, 'utf8'));
    }
    expect(seen.length).toBeGreaterThan(10);
    const leaks = seen.filter((text) => text.includes(canary));
    expect(leaks).toEqual([]);
  });
});

describe('token set on a terminal', () => {
  it('prompts with the input hidden and never echoes the token', async () => {
    const tty = await startFakeArtifactory();
    const ttyHome = await makeTempHome();
    const secret = `tbk-canary-tty-${Math.random().toString(36).slice(2)}`;
    tty.addToken(secret, { token_id: 'tid-tty' });
    const d = await startTestDaemon({ home: ttyHome, config: { allowInsecureLoopback: true, secretStore: 'memory', servers: [{ name: 'nordic', origin: tty.origin }] } });
    try {
      const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn('python3', [path.join(import.meta.dirname, '..', 'fixtures', 'pty-run.py'), 'input hidden', `${secret}\r`, process.execPath, CLI_ENTRY, 'token', 'set'], { env: d.env });
        let out = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.on('close', (code) => resolve({ code, out }));
      });
      expect(result.out).toContain('Identity token (input hidden):');
      expect(result.out).toContain('Token ID:        tid-tty');
      expect(result.out).not.toContain(secret);
      expect(result.code).toBe(0);
    } finally {
      await d.cleanup();
      await tty.close();
      await rm(ttyHome, { recursive: true, force: true });
    }
  });
});
