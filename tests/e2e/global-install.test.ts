import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keychainAccountScope } from '../../src/daemon/secret-store/keychain-store.js';
import { DAEMON_NODE_FLAGS } from '../../src/protocol/daemon-flags.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { exited } from '../helpers/process.js';
import { REPO_ROOT } from '../helpers/test-daemon.js';
import { findTool } from '../helpers/tools.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * A real install, as a user gets it: `npm pack`, then `npm install -g` of that tarball into a
 * temp prefix with only node and npm on PATH (no compiler, no make, no python: nothing can be
 * built), `--prefer-offline` (npm's cache; the registry only for what it lacks). The installed
 * `tokenbroker` must run the daemon with the OS keychain (real gnome-keyring, scripts/with-keyring.sh)
 * and print its service units. Everything runs from the installed copy, never from this checkout.
 */
const run = promisify(execFile);
const INSTALL_TIMEOUT_MS = 300_000;

let work: string;
let prefix: string;
let installedRoot: string;
let installedBin: string;
let nodeAndNpmOnly: string;
let packedFiles: string[];
let af: FakeArtifactory;
const daemons: ChildProcess[] = [];

/** The environment of a user's shell, minus what `npm test` itself set (npm_*, the project's bins). */
function userEnv(pathValue: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) || key === 'INIT_CWD' || key === 'NODE' || key.startsWith('VITEST') || key.startsWith('TOKENBROKER_')) continue;
    env[key] = value;
  }
  return { ...env, PATH: pathValue, ...extra };
}

async function tokenbroker(args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(installedBin, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

describe('npm pack + npm install -g without a C toolchain', () => {
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'tb-install-'));
    prefix = path.join(work, 'prefix');
    nodeAndNpmOnly = path.join(work, 'path');
    await mkdir(nodeAndNpmOnly);
    const npmCli = await realpath(findTool('npm') ?? 'npm');
    await symlink(process.execPath, path.join(nodeAndNpmOnly, 'node'));
    await symlink(npmCli, path.join(nodeAndNpmOnly, 'npm'));
    const npmEnv = userEnv(nodeAndNpmOnly);
    // The global setup has just built dist/; the tarball is what `npm publish` would upload.
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: REPO_ROOT, env: npmEnv, maxBuffer: 64 * 1024 * 1024 });
    const [manifest] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
    packedFiles = manifest.files.map((file) => file.path);
    await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', path.join(work, manifest.filename)], {
      cwd: work,
      env: npmEnv,
      timeout: INSTALL_TIMEOUT_MS,
      maxBuffer: 64 * 1024 * 1024,
    });
    installedRoot = path.join(prefix, 'lib', 'node_modules', 'tokenbroker');
    installedBin = path.join(prefix, 'bin', 'tokenbroker');
    af = await startFakeArtifactory();
  }, INSTALL_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    for (const child of daemons) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited(child, 5_000).catch(() => undefined);
      }
    }
    await af?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('the package carries what it runs and nothing of the tests', () => {
    expect(packedFiles).toContain('bin/tokenbroker.js');
    expect(packedFiles).toContain('dist/tokenbroker.mjs');
    expect(packedFiles).toContain('dist/client/index.js');
    expect(packedFiles).toContain('dist/client/index.d.ts');
    expect(packedFiles).toContain('systemd/tokenbroker.service');
    expect(packedFiles).toContain('launchd/com.nordicsemi.tokenbroker.plist');
    const outside = packedFiles.filter((file) => !/^(bin|dist|systemd|launchd|docs)\//.test(file) && !['package.json', 'README.md', 'LICENSE'].includes(file));
    expect(outside).toEqual([]);
    expect(packedFiles.filter((file) => /(^|\/)(tests?|fixtures|bench|scripts)\/|\.test\.|\.tsbuildinfo$/.test(file))).toEqual([]);
  });

  it('installs @napi-rs/keyring as a prebuilt binary, and no keytar', async () => {
    const pkg = JSON.parse(await readFile(path.join(installedRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(Object.keys(pkg.dependencies)).toContain('@napi-rs/keyring');
    const { stdout } = await run('npm', ['ls', '--all', '--parseable', '--prefix', installedRoot], { env: userEnv(nodeAndNpmOnly) }).catch((err: { stdout: string }) => ({ stdout: err.stdout }));
    expect(stdout).toMatch(/node_modules\/@napi-rs\/keyring\n/);
    expect(stdout).not.toMatch(/keytar|node-gyp|prebuild-install/);
  });

  it('`tokenbroker --version` runs the installed copy', async () => {
    const { version } = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const result = await tokenbroker(['--version'], userEnv(nodeAndNpmOnly));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toContain(version);
  });

  it('the installed daemon keeps the token in the OS keychain (secret-tool finds it there)', async () => {
    const home = path.join(work, 'home');
    await mkdir(home, { mode: 0o700 });
    const server = 'installed';
    const token = `cmVmdGtu${'I'.repeat(56)}`;
    af.addToken(token, { token_id: 'tid-installed', expiry: Math.floor(Date.now() / 1000) + 30 * 86400 });
    await writeFile(path.join(home, 'config.json'), JSON.stringify({ allowInsecureLoopback: true, secretStore: 'keychain', servers: [{ name: server, origin: af.origin }] }));
    // A user's PATH (no project bins); the daemon is started by the installed bin, like a user would.
    const env = userEnv(`${nodeAndNpmOnly}:/usr/bin:/bin`, { TOKENBROKER_HOME: home, TOKENBROKER_NO_AUTOSTART: '1' });
    const daemon = spawn(installedBin, ['daemon'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    daemons.push(daemon);
    let log = '';
    daemon.stdout?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    daemon.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));

    let lastStderr = '';
    const status = await waitFor(() => `the installed daemon (exit code ${daemon.exitCode}):\n${log}\n${lastStderr}`, async () => {
      if (daemon.exitCode !== null) throw new Error(`the installed daemon exited with ${daemon.exitCode}:\n${log}`);
      const result = await tokenbroker(['status', '--json'], env);
      lastStderr = result.stderr;
      return result.code === 0 ? (JSON.parse(result.stdout) as { secretStore?: unknown }) : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    expect(status.secretStore).toMatchObject({ kind: 'keychain', state: 'ok' });

    const set = await tokenbroker(['token', 'set'], env, `${token}\n`);
    expect(set.code, set.stderr).toBe(0);
    const account = `${server}@${keychainAccountScope({ TOKENBROKER_HOME: home })}`;
    const lookup = await run('secret-tool', ['lookup', 'service', 'tokenbroker', 'username', account]);
    expect(lookup.stdout).toBe(token);

    const removed = await tokenbroker(['token', 'remove', '--yes'], env);
    expect(removed.code, removed.stderr).toBe(0);
    await expect(run('secret-tool', ['lookup', 'service', 'tokenbroker', 'username', account])).rejects.toMatchObject({ code: 1 });
    daemon.kill('SIGTERM');
    expect(await exited(daemon, 20_000)).toBe(0);
    expect(log).not.toContain(token);
  });

  it('`tokenbroker service install --dry-run` names the installed entry and the daemon flags', async () => {
    const home = path.join(work, 'service-home');
    await mkdir(home, { mode: 0o700 });
    const env = userEnv(`${nodeAndNpmOnly}:/usr/bin:/bin`, { HOME: home, XDG_CONFIG_HOME: path.join(home, '.config') });
    const result = await tokenbroker(['service', 'install', '--dry-run'], env);
    expect(result.code, result.stderr).toBe(0);
    const entry = path.join(await realpath(installedRoot), 'bin', 'tokenbroker.js');
    const launcher = process.platform === 'darwin' ? `<string>${entry}</string>` : `${DAEMON_NODE_FLAGS.join(' ')} ${entry} daemon`;
    expect(result.stdout).toContain(launcher);
  });
});
