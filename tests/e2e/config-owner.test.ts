import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/node/config-file.js';
import { isolatedEnv, runCli } from '../helpers/test-daemon.js';
import { isRoot, itWhen } from '../helpers/tools.js';
import { waitUntilLogged } from '../helpers/wait-for.js';
import { useTestDaemons } from '../helpers/per-test.js';

const { start, tempHome: home } = useTestDaemons();

/** Root ignores file modes for reading, but the check is on ownership and mode bits, so it still applies. */

describe('config.json must be ours and not writable by others (like ssh)', () => {
  it('a world-writable config.json: the daemon does not start and names the file', async () => {
    const h = await home();
    const file = path.join(h, 'config.json');
    await writeFile(file, JSON.stringify({ secretStore: 'memory' }));
    await chmod(file, 0o666);
    const result = await runCli(['daemon'], { env: isolatedEnv(h) });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`config ${file}: the file ${file} is writable by group or others (mode 0666); refusing to use it`);
    expect(result.stderr).toContain('hint: ');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('a group-writable config directory is refused, naming the file', async () => {
    const h = await home();
    const dir = path.join(h, 'conf');
    await mkdir(dir);
    const file = path.join(dir, 'config.json');
    await writeFile(file, '{}');
    await chmod(dir, 0o775);
    const error = await loadConfig(file).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(`config ${file}: the directory ${dir} is writable by group or others (mode 0775); refusing to use it`);
  });

  itWhen(isRoot, 'root (to chown to another uid)', 'a config.json owned by another uid is refused', async () => {
    const h = await home();
    const file = path.join(h, 'config.json');
    await writeFile(file, '{}');
    await chown(file, 65534, 65534);
    const result = await runCli(['daemon'], { env: isolatedEnv(h) });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`config ${file}: the file ${file} is owned by uid 65534, not by you (uid 0); refusing to use it`);
  });

  it('a config made world-writable later: SIGHUP refuses the reload, logs the file and keeps the old config', async () => {
    const daemon = await start({ config: { secretStore: 'memory', logLevel: 'info' } });
    const file = path.join(daemon.home, 'config.json');
    await writeFile(file, JSON.stringify({ secretStore: 'memory', logLevel: 'debug' }));
    await chmod(file, 0o646);
    daemon.process.kill('SIGHUP');
    await waitUntilLogged(() => daemon.output().includes('config reload failed'), 'the reload failure', daemon.output);
    const line = daemon.output().split('\n').find((l) => l.includes('config reload failed')) ?? '';
    expect(line).toContain(`the file ${file} is writable by group or others (mode 0646)`);
    // Still at info: the debug level of the refused file is not in force.
    await daemon.client.status();
    expect(daemon.output()).not.toMatch(/"level":20,[^\n]*"msg":"request"/);
  });
});
