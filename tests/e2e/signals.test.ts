import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { waitUntilLogged } from '../helpers/wait-for.js';

const daemons: TestDaemon[] = [];
afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.cleanup()));
});

const requestLines = (output: string): number => (output.match(/"level":20,[^\n]*"url":"\/v1\/status"[^\n]*"msg":"request"/g) ?? []).length;

describe('signals', () => {
  it('SIGHUP applies a valid new config; an invalid one is logged and the old one kept while it keeps serving', async () => {
    const daemon = await startTestDaemon({ config: { secretStore: 'memory', logLevel: 'info' } });
    daemons.push(daemon);
    const configFile = path.join(daemon.home, 'config.json');

    // At info, requests are not logged.
    await daemon.client.status();
    expect(requestLines(daemon.output())).toBe(0);

    await writeFile(configFile, JSON.stringify({ secretStore: 'memory', logLevel: 'debug' }));
    daemon.process.kill('SIGHUP');
    await waitUntilLogged(() => daemon.output().includes('"msg":"config reloaded"'), 'the reload', daemon.output);
    await daemon.client.status();
    await waitUntilLogged(() => requestLines(daemon.output()) === 1, 'a debug request line', daemon.output);

    await writeFile(configFile, '{"secretStore": "memory", "logLevel": "loud"}');
    daemon.process.kill('SIGHUP');
    await waitUntilLogged(() => daemon.output().includes('config reload failed; keeping the previous config'), 'the failed reload', daemon.output);
    const failure = daemon.output().split('\n').find((line) => line.includes('config reload failed')) ?? '';
    expect(failure).toContain('\\"logLevel\\" must be one of');
    expect(failure).toMatch(/"level":50/);

    // Still serving, still at debug: the previous config is in force.
    expect((await daemon.client.status()).pid).toBe(daemon.pid);
    await waitUntilLogged(() => requestLines(daemon.output()) === 2, 'a second debug request line', daemon.output);

    // Settings that are read at start only say so instead of silently doing nothing.
    expect(daemon.output()).not.toContain('restart the daemon to apply them');
    await writeFile(configFile, JSON.stringify({ secretStore: 'memory', logLevel: 'debug', timeouts: { connectMs: 5000 } }));
    daemon.process.kill('SIGHUP');
    await waitUntilLogged(() => daemon.output().includes('restart the daemon to apply them'), 'the restart warning', daemon.output);
    expect(await daemon.stop()).toBe(0);
  });
});
