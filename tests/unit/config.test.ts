import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/node/config-file.js';
import { DEFAULT_OFFICIAL_SOURCE } from '../../src/protocol/config-schema.js';

async function configFile(content: string | undefined): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tb-config-'));
  const file = path.join(dir, 'config.json');
  if (content !== undefined) await writeFile(file, content);
  return file;
}

async function configErrorFor(content: string): Promise<string> {
  const file = await configFile(content);
  const error = await loadConfig(file).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(ConfigError);
  const message = (error as ConfigError).message;
  expect(message).toContain(file);
  expect(message).not.toContain('\n');
  return message;
}

describe('config', () => {
  it('a configured server requests URLs as given unless it says "download-api"; a mirror must be an https origin', async () => {
    const base = { name: 'mine', origin: 'https://artifacts.example' };
    expect((await loadConfig(await configFile(JSON.stringify({ servers: [base] })))).servers[0]).toMatchObject({ requestForm: 'as-given', publicMirrorOrigin: null });
    const mirrored = await loadConfig(await configFile(JSON.stringify({ servers: [{ ...base, requestForm: 'download-api', publicMirrorOrigin: 'https://mirror.example/' }] })));
    expect(mirrored.servers[0]).toMatchObject({ requestForm: 'download-api', publicMirrorOrigin: 'https://mirror.example' });
    await expect(loadConfig(await configFile(JSON.stringify({ servers: [{ ...base, publicMirrorOrigin: 'http://mirror.example' }] })))).rejects.toThrow(/publicMirrorOrigin/);
    await expect(loadConfig(await configFile(JSON.stringify({ servers: [{ ...base, requestForm: 'short' }] })))).rejects.toThrow(/requestForm/);
  });

  it('a missing file gives the real Nordic defaults, frozen', async () => {
    const config = await loadConfig(await configFile(undefined));
    expect(config.servers).toEqual([
      {
        name: 'nordic',
        origin: 'https://files.nordicsemi.com',
        tokenInfoPath: '/access/api/v1/tokens/me',
        pingPath: '/artifactory/api/system/ping',
        authenticatedPrefixes: ['/artifactory/'],
        publicPrefixes: ['/artifactory/swtools/external/'],
        requestForm: 'download-api',
        publicMirrorOrigin: null,
      },
    ]);
    expect(config.officialSource).toBe(DEFAULT_OFFICIAL_SOURCE);
    expect(config).toMatchObject({ secretStore: 'auto', expiryWarningDays: [14, 3, 1], allowInsecureLoopback: false, shutdownGraceSeconds: 10, logLevel: 'info', proxy: null, caFile: null, listeners: [] });
    expect(config.refresh).toEqual({ intervalMinutes: 60, jitterPercent: 10, concurrency: 8 });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.servers[0])).toBe(true);
    expect(() => (config.servers as unknown as unknown[]).push({})).toThrow();
  });

  it('fills server defaults and keeps given values', async () => {
    const file = await configFile(JSON.stringify({ servers: [{ name: 'mirror', origin: 'http://127.0.0.1:8081' }], allowInsecureLoopback: true, logLevel: 'debug' }));
    const config = await loadConfig(file);
    expect(config.servers[0]).toMatchObject({ name: 'mirror', origin: 'http://127.0.0.1:8081', authenticatedPrefixes: ['/artifactory/'] });
    expect(config.logLevel).toBe('debug');
  });

  it('bad JSON names the file and says it is not JSON', async () => {
    expect(await configErrorFor('{"logLevel": "info",}')).toMatch(/not valid JSON/);
  });

  it('an unknown key is named', async () => {
    expect(await configErrorFor('{"logLevle": "info"}')).toMatch(/unknown key "logLevle"/);
    expect(await configErrorFor('{"refresh": {"intervalMinute": 5}}')).toMatch(/unknown key "refresh.intervalMinute"/);
    expect(await configErrorFor('{"servers": [{"name": "a", "origin": "https://a.example", "extra": 1}]}')).toMatch(/unknown key "servers\[0\].extra"/);
  });

  it('a wrong type names the key and the expected type', async () => {
    const message = await configErrorFor('{"shutdownGraceSeconds": "ten"}');
    expect(message).toMatch(/"shutdownGraceSeconds" has the wrong type: expected number, received string/);
    expect(await configErrorFor('{"secretStore": "vault"}')).toMatch(/"secretStore" must be one of "auto", "keychain", "memory", "file"/);
  });

  it('a non-https origin is refused unless it is loopback and allowed', async () => {
    expect(await configErrorFor('{"servers": [{"name": "a", "origin": "http://files.example.com"}]}')).toMatch(/"servers\[0\].origin" must be https:\/\/.*allowInsecureLoopback/);
    expect(await configErrorFor('{"servers": [{"name": "a", "origin": "http://127.0.0.1:9"}]}')).toMatch(/"servers\[0\].origin" must be https/);
    expect(await configErrorFor('{"allowInsecureLoopback": true, "servers": [{"name": "a", "origin": "http://evil.example"}]}')).toMatch(/only allowed for 127.0.0.1/);
  });

  it('an origin with a path or credentials is refused', async () => {
    expect(await configErrorFor('{"servers": [{"name": "a", "origin": "https://a.example/artifactory"}]}')).toMatch(/origin only/);
    expect(await configErrorFor('{"servers": [{"name": "a", "origin": "https://u:p@a.example"}]}')).toMatch(/origin only/);
  });

  it('the top level must be an object', async () => {
    expect(await configErrorFor('[]')).toMatch(/must be a JSON object/);
  });
});
