import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { statusRequestLines } from '../helpers/test-daemon.js';
import { waitUntilLogged } from '../helpers/wait-for.js';
import { useTestDaemons } from '../helpers/per-test.js';

const { start } = useTestDaemons();

describe('signals', () => {
  it('SIGHUP applies a valid new config; an invalid one is logged and the old one kept while it keeps serving', async () => {
    const daemon = await start({ config: { secretStore: 'memory', logLevel: 'info' } });
    const configFile = path.join(daemon.home, 'config.json');

    // At info, requests are not logged.
    await daemon.client.status();
    expect(statusRequestLines(daemon.output())).toBe(0);

    await writeFile(configFile, JSON.stringify({ secretStore: 'memory', logLevel: 'debug' }));
    daemon.process.kill('SIGHUP');
    await waitUntilLogged(() => daemon.output().includes('"msg":"config reloaded"'), 'the reload', daemon.output);
    await daemon.client.status();
    await waitUntilLogged(() => statusRequestLines(daemon.output()) === 1, 'a debug request line', daemon.output);

    await writeFile(configFile, '{"secretStore": "memory", "logLevel": "loud"}');
    daemon.process.kill('SIGHUP');
    await waitUntilLogged(() => daemon.output().includes('config reload failed; keeping the previous config'), 'the failed reload', daemon.output);
    const failure = daemon.output().split('\n').find((line) => line.includes('config reload failed')) ?? '';
    expect(failure).toContain('\\"logLevel\\" must be one of');
    expect(failure).toMatch(/"level":50/);

    // Still serving, still at debug: the previous config is in force.
    expect((await daemon.client.status()).pid).toBe(daemon.pid);
    await waitUntilLogged(() => statusRequestLines(daemon.output()) === 2, 'a second debug request line', daemon.output);

    // Settings that are read at start only say so instead of silently doing nothing.
    expect(daemon.output()).not.toContain('restart the daemon to apply them');
    await writeFile(configFile, JSON.stringify({ secretStore: 'memory', logLevel: 'debug', timeouts: { connectMs: 5000 } }));
    daemon.process.kill('SIGHUP');
    await waitUntilLogged(() => daemon.output().includes('restart the daemon to apply them'), 'the restart warning', daemon.output);
    expect(await daemon.stop()).toBe(0);
  });
});
