import { spawn, spawnSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, formatHumanLine } from '../../src/daemon/logger.js';
import { exited } from '../helpers/process.js';
import { CLI_ENTRY, isolatedEnv, makeTempHome } from '../helpers/test-daemon.js';

function memoryDestination(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text, lines: () => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('logger', () => {
  const secret = 'tbk-canary-log-9f8e7d';

  it('writes JSON lines at the configured level', () => {
    const dest = memoryDestination();
    const logger = createLogger({ level: 'warn', destination: dest.stream });
    logger.info('hidden');
    logger.warn({ server: 'nordic' }, 'shown');
    const lines = dest.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, msg: 'shown', server: 'nordic' });
  });

  it('redacts tokens and authorization headers wherever they appear', () => {
    const dest = memoryDestination();
    const logger = createLogger({ level: 'info', destination: dest.stream });
    logger.info({ token: secret }, 'top-level token');
    logger.info({ req: { headers: { authorization: `Bearer ${secret}`, cookie: secret } } }, 'request');
    logger.info({ upstream: { headers: { authorization: `Bearer ${secret}` } } }, 'upstream');
    logger.info({ body: { token: secret } }, 'body');
    logger.child({ headers: { authorization: secret } }).info('child');
    logger.info({ authorization: secret }, 'bare header');
    expect(dest.text()).not.toContain(secret);
    expect(dest.lines()).toHaveLength(6);
    expect(dest.text()).toContain('[redacted]');
  });

  it('redacts secret keys at any depth and in any letter case', () => {
    const dest = memoryDestination();
    const logger = createLogger({ level: 'info', destination: dest.stream });
    logger.info({ upstream: { request: { headers: { Authorization: `Bearer ${secret}`, Cookie: secret, accept: 'application/json' } } } }, 'three levels deep');
    logger.info({ a: { b: { c: { d: { authorization: secret } } } } }, 'four levels deep');
    logger.info({ list: [{ headers: { 'Set-Cookie': secret, 'Proxy-Authorization': secret } }] }, 'in an array');
    expect(dest.text()).not.toContain(secret);
    // Child-logger bindings (and their children's) go through the same redaction.
    logger.child({ a: { b: { token: secret } } }).child({ Authorization: secret, headers: { 'Set-Cookie': secret } }).info('child of a child');
    expect(dest.text()).not.toContain(secret);
    const [first] = dest.lines();
    // Only the secrets go: the rest of the object is still there to debug with.
    expect(first).toMatchObject({ upstream: { request: { headers: { Authorization: '[redacted]', Cookie: '[redacted]', accept: 'application/json' } } } });
  });

  it('a terminal gets readable lines: time, level, message, then the fields', () => {
    const line = formatHumanLine(JSON.stringify({ level: 40, time: '2026-01-02T03:04:05.678Z', pid: 7, msg: 'token expires soon', server: 'nordic', daysLeft: 3 }));
    expect(line).toBe('03:04:05 WARN  token expires soon server=nordic daysLeft=3');
    expect(formatHumanLine('not json')).toBe('not json');
  });

  it('the daemon writes readable lines to a terminal and JSON lines otherwise', async () => {
    const home = await makeTempHome();
    try {
      await writeFile(path.join(home, 'config.json'), JSON.stringify({ secretStore: 'memory', officialSource: 'http://127.0.0.1:9/source.json', allowInsecureLoopback: true }));
      const env = isolatedEnv(home);
      // On a pseudo-terminal: wait for the ready line, then Ctrl-C (SIGINT) stops the daemon.
      const onTty = spawnSync('python3', [path.join(import.meta.dirname, '..', 'fixtures', 'pty-run.py'), 'daemon ready', '\x03', process.execPath, CLI_ENTRY, 'daemon'], { env, encoding: 'utf8', timeout: 25_000 });
      expect(onTty.stdout).toMatch(/^\d{2}:\d{2}:\d{2} INFO {2}tokenbroker daemon ready socket=\S+/m);
      expect(onTty.stdout).not.toContain('{"level"');
      // Piped (journald, a file): JSON lines.
      const piped = spawn(process.execPath, [CLI_ENTRY, 'daemon'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      await new Promise<void>((resolve) =>
        piped.stderr.on('data', (chunk: Buffer) => {
          err += chunk.toString();
          if (err.includes('daemon ready')) resolve();
        }),
      );
      piped.kill('SIGTERM');
      expect(await exited(piped, 10_000)).toBe(0);
      expect(JSON.parse(err.split('\n')[0] ?? '')).toMatchObject({ level: 30, msg: 'tokenbroker daemon ready' });
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});
