import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BrokerError } from '../../src/client/index.js';
import { statusRequestLines } from '../helpers/test-daemon.js';
import { waitUntilLogged } from '../helpers/wait-for.js';
import { useTestDaemons } from '../helpers/per-test.js';

/**
 * The client library's getConfig / patchConfig / updateServer against the real daemon (issue 21):
 * the launcher's "Mainland China server" switch flips at run time, a stale ETag is refused, and a
 * patch is in force at once in the running daemon, as after SIGHUP.
 */

const { start } = useTestDaemons();

describe('client: settings at run time', () => {
  it('updateServer flips publicMirrorOrigin (servers read-modify-write), patchConfig applies at once, a stale etag is BROKER_CONFIG_CHANGED', async () => {
    const daemon = await start({ config: { secretStore: 'memory', logLevel: 'info' } });
    const configFile = path.join(daemon.home, 'config.json');
    const first = await daemon.client.getConfig();
    expect(first).toMatchObject({ path: configFile, exists: true, file: { secretStore: 'memory', logLevel: 'info' }, restartRequired: [] });

    const china = await daemon.client.updateServer('nordic', { publicMirrorOrigin: 'https://files.nordicsemi.cn' });
    expect(china.effective.servers).toEqual([expect.objectContaining({ name: 'nordic', origin: 'https://files.nordicsemi.com', requestForm: 'download-api', publicMirrorOrigin: 'https://files.nordicsemi.cn' })]);
    const onDisk = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
    expect(onDisk).toMatchObject({ secretStore: 'memory', logLevel: 'info', servers: [expect.objectContaining({ name: 'nordic', publicMirrorOrigin: 'https://files.nordicsemi.cn' })] });
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);

    // The first read's etag is stale now.
    const stale = await daemon.client.patchConfig({ logLevel: 'debug' }, { ifMatch: first.etag }).catch((err: unknown) => err);
    expect(stale).toBeInstanceOf(BrokerError);
    expect(stale).toMatchObject({ code: 'BROKER_CONFIG_CHANGED', status: 412, details: { etag: china.etag } });

    // In force at once: at debug the daemon logs each request.
    expect(statusRequestLines(daemon.output())).toBe(0);
    await daemon.client.patchConfig({ logLevel: 'debug' }, { ifMatch: china.etag });
    await daemon.client.status();
    await waitUntilLogged(() => statusRequestLines(daemon.output()) >= 1, 'a debug request line', daemon.output);

    await expect(daemon.client.updateServer('nope', { publicMirrorOrigin: null })).rejects.toMatchObject({ code: 'BROKER_BAD_REQUEST' });
    expect(await daemon.stop()).toBe(0);
  });
});
