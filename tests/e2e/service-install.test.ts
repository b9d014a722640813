import { spawnSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runServiceInstall, runServiceStatus, runServiceUninstall } from '../../src/cli/commands/service-command.js';
import { createContext, type CliContext } from '../../src/cli/context.js';
import type { CommandResult } from '../../src/cli/service/command-runner.js';
import { currentServiceHost, ServiceError, type ServiceHost } from '../../src/cli/service/service-host.js';
import type { ServiceActionReport, ServiceStatusReport } from '../../src/cli/service/service-manager.js';
import { DAEMON_NODE_FLAGS } from '../../src/protocol/daemon-flags.js';
import { bufferIO } from '../helpers/buffer-io.js';
import { CLI_ENTRY, runCli, startTestDaemon } from '../helpers/test-daemon.js';
import { itWithTools } from '../helpers/tools.js';
import { readFileSync } from 'node:fs';

const temps: string[] = [];
afterEach(async () => {
  await Promise.all(temps.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A fake login: HOME, XDG_CONFIG_HOME and XDG_RUNTIME_DIR in a temp dir, no D-Bus session. */
async function tempLogin(): Promise<{ home: string; env: NodeJS.ProcessEnv; unitDir: string; runtime: string }> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'tb-svc-'));
  temps.push(home);
  const runtime = path.join(home, 'rt');
  await mkdir(runtime, { mode: 0o700 });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, 'config'),
    XDG_RUNTIME_DIR: runtime,
    XDG_STATE_HOME: path.join(home, 'state'),
    XDG_CACHE_HOME: path.join(home, 'cache'),
    TOKENBROKER_NO_AUTOSTART: '1',
  };
  for (const key of ['TOKENBROKER_HOME', 'TOKENBROKER_SOCKET', 'TOKENBROKER_CONFIG', 'DBUS_SESSION_BUS_ADDRESS']) delete env[key];
  return { home, env, unitDir: path.join(home, 'config', 'systemd', 'user'), runtime };
}

function context(env: NodeJS.ProcessEnv): CliContext & { io: ReturnType<typeof bufferIO> } {
  const io = bufferIO(env);
  return createContext(io, () => ({})) as CliContext & { io: ReturnType<typeof bufferIO> };
}

/** The same machine as the CLI process sees it, in the temp login, with the given runner. */
function hostFor(env: NodeJS.ProcessEnv, home: string, run: ServiceHost['run'], overrides: Partial<ServiceHost> = {}): ServiceHost {
  return { ...currentServiceHost(env), homedir: home, run, ...overrides };
}

const execStart = `ExecStart=${process.execPath} ${DAEMON_NODE_FLAGS.join(' ')} ${CLI_ENTRY} daemon`;

describe('service install --dry-run', () => {
  it('prints the filled-in units and the commands, names absolute paths, is stable and changes nothing', async () => {
    const { home, env, unitDir, runtime } = await tempLogin();
    const first = await runCli(['service', 'install', '--dry-run'], { env });
    const second = await runCli(['service', 'install', '--dry-run'], { env });
    expect(first.code, first.stderr).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    const lines = first.stdout.split('\n');
    expect(lines).toContain(`# write ${path.join(unitDir, 'tokenbroker.socket')} (new file):`);
    expect(lines).toContain(`# write ${path.join(unitDir, 'tokenbroker.service')} (new file):`);
    expect(lines).toContain(execStart);
    expect(path.isAbsolute(process.execPath) && path.isAbsolute(CLI_ENTRY)).toBe(true);
    expect(lines).toContain('ListenStream=%t/tokenbroker/broker.sock');
    expect(first.stdout).not.toMatch(/@[A-Z]+@/);
    const commands = lines.slice(lines.indexOf('# then run:') + 1).filter((line) => line !== '' && !line.startsWith('#'));
    expect(commands).toEqual(['systemctl --user daemon-reload', 'systemctl --user enable --now tokenbroker.socket']);
    expect(lines).toContain(`# The service's socket: ${path.join(runtime, 'tokenbroker', 'broker.sock')}`);
    // Nothing was written.
    expect(await readdir(home)).toEqual(['rt']);
  });

  it('macOS: prints the plist with absolute paths and the launchctl commands, and runs nothing', async () => {
    const { home, env } = await tempLogin();
    const ran: string[] = [];
    const host = hostFor(env, home, async (file, args) => {
      ran.push([file, ...args].join(' '));
      return { code: 0, stdout: '', stderr: '' };
    }, { platform: 'darwin', uid: 501 });
    const ctx = context(env);
    await runServiceInstall({ dryRun: true, json: false }, ctx, { host });
    const out = ctx.io.out();
    const plist = path.join(home, 'Library', 'LaunchAgents', 'com.nordicsemi.tokenbroker.plist');
    expect(out).toContain(`# write ${plist} (new file):`);
    expect(out).toContain(`<string>${process.execPath}</string>`);
    expect(out).toContain(`<string>${CLI_ENTRY}</string>`);
    expect(out).toContain(`<string>${path.join(home, 'Library', 'Logs', 'tokenbroker')}/tokenbroker.err.log</string>`);
    expect(out).toContain(`launchctl bootstrap gui/501 ${plist}  # only if the agent is not loaded (yet)`);
    expect(ran).toEqual([]);
    expect(await readdir(home)).toEqual(['rt']);
  });

  it('is refused where there is no supported service manager', async () => {
    const { home, env } = await tempLogin();
    const host = hostFor(env, home, async () => ({ code: 0, stdout: '', stderr: '' }), { platform: 'win32' });
    await expect(runServiceInstall({ dryRun: true, json: false }, context(env), { host })).rejects.toThrow(ServiceError);
  });
});

/*
 * The real systemctl, with no user manager: there is none on the test machine (containers, CI),
 * and the temp login makes that certain (an empty XDG_RUNTIME_DIR, no D-Bus session). systemctl
 * still enables and disables units there, by editing ~/.config/systemd/user itself, which is what
 * install and uninstall fall back to. Starting and stopping is covered with a stand-in below.
 */
describe('service status in a D-Bus session without a systemd user manager', () => {
  // scripts/with-keyring.sh runs the tests in such a session (dbus-daemon, no systemd): the bus
  // is reachable, the manager is not, and status must say so rather than "active no (socket , ...)".
  itWithTools(['systemctl'], 'reports the manager unreachable and the state unknown', async () => {
    if (process.env['DBUS_SESSION_BUS_ADDRESS'] === undefined) throw new Error('Run the tests under scripts/with-keyring.sh (it starts a D-Bus session).');
    const { env } = await tempLogin();
    env['DBUS_SESSION_BUS_ADDRESS'] = process.env['DBUS_SESSION_BUS_ADDRESS'];
    const json = await runCli(['service', 'status', '--json'], { env });
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ active: null, activeState: 'unknown', managerReachable: false, message: expect.stringMatching(/no user systemd instance is running/) });
    const human = await runCli(['service', 'status'], { env });
    expect(human.stdout).toMatch(/active\s+unknown: no user systemd instance is running/);
    expect(human.stdout).not.toMatch(/socket ,/);
  });
});

describe('service install/uninstall with the real systemctl and no user manager', () => {
  itWithTools(['systemctl'], 'round-trips in a temp HOME: files, enable symlink, status, idempotent re-install, uninstall', async () => {
    const { env, unitDir } = await tempLogin();
    const socketUnit = path.join(unitDir, 'tokenbroker.socket');
    const serviceUnit = path.join(unitDir, 'tokenbroker.service');
    const wants = path.join(unitDir, 'sockets.target.wants', 'tokenbroker.socket');
    const isEnabled = (): string => spawnSync('systemctl', ['--user', 'is-enabled', 'tokenbroker.socket'], { env, encoding: 'utf8' }).stdout.trim();

    const install = await runCli(['service', 'install'], { env });
    expect(install.code, install.stderr).toBe(0);
    expect(install.stdout).toContain('Installed the tokenbroker service (systemd user units):');
    expect(install.stdout).toContain(`created   ${socketUnit}`);
    expect(install.stdout).toContain('ran       systemctl --user enable tokenbroker.socket');
    expect(install.stdout).toMatch(/note: No user systemd instance is running in this session \(systemctl --user: Failed to connect to bus/);
    expect(await readFile(serviceUnit, 'utf8')).toContain(`\n${execStart}\n`);
    expect((await lstat(socketUnit)).mode & 0o777).toBe(0o644);
    expect((await lstat(wants)).isSymbolicLink()).toBe(true);
    expect(isEnabled()).toBe('enabled');

    const status = await runCli(['service', 'status', '--json'], { env });
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      manager: 'systemd',
      installed: true,
      upToDate: true,
      enabled: true,
      enabledState: 'enabled',
      active: null,
      managerReachable: false,
      message: expect.stringMatching(/no user systemd instance is running/),
    } satisfies Partial<ServiceStatusReport>);

    const before = await lstat(serviceUnit);
    const again = await runCli(['service', 'install'], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('tokenbroker service is already installed (systemd user units, files unchanged):');
    expect((await lstat(serviceUnit)).ino).toBe(before.ino);

    // A unit from an older install (node moved): status says so, install replaces it.
    await writeFile(serviceUnit, (await readFile(serviceUnit, 'utf8')).replace(process.execPath, '/old/node'));
    expect(JSON.parse((await runCli(['service', 'status', '--json'], { env })).stdout)).toMatchObject({ installed: true, upToDate: false });
    const update = await runCli(['service', 'install'], { env });
    expect(update.stdout).toContain(`updated   ${serviceUnit}`);
    expect(await readFile(serviceUnit, 'utf8')).toContain(`\n${execStart}\n`);

    const dry = await runCli(['service', 'uninstall', '--dry-run'], { env });
    expect(dry.stdout.split('\n').filter((line) => line !== '' && !line.startsWith('#'))).toEqual([
      'systemctl --user disable --now tokenbroker.socket tokenbroker.service',
      `rm ${socketUnit}`,
      `rm ${serviceUnit}`,
      'systemctl --user daemon-reload',
    ]);
    expect((await lstat(socketUnit)).isFile()).toBe(true);

    const uninstall = await runCli(['service', 'uninstall'], { env });
    expect(uninstall.code, uninstall.stderr).toBe(0);
    expect(uninstall.stdout).toContain(`removed   ${socketUnit}`);
    await expect(lstat(socketUnit)).rejects.toThrow(/ENOENT/);
    await expect(lstat(serviceUnit)).rejects.toThrow(/ENOENT/);
    await expect(lstat(wants)).rejects.toThrow(/ENOENT/);
    expect(isEnabled()).not.toBe('enabled');

    const nothing = await runCli(['service', 'uninstall'], { env });
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toContain('tokenbroker service is not installed (systemd user units): nothing to do.');
  });
});

/**
 * A stand-in for `systemctl --user` with a running user manager. Used ONLY because no user
 * systemd runs on the test machine; it answers the way systemctl 252 does and records the calls.
 */
function fakeSystemctl(unitDir: string) {
  const calls: string[] = [];
  const state = { enabled: false, socketActive: false, failOn: undefined as string | undefined, onCall: (_command: string) => undefined as void };
  const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });
  const run = async (file: string, args: readonly string[]): Promise<CommandResult> => {
    const command = [file, ...args].join(' ');
    calls.push(command);
    state.onCall(command);
    if (state.failOn !== undefined && command.includes(state.failOn)) return { code: 1, stdout: '', stderr: `Failed to enable unit: Unit file ${unitDir}/tokenbroker.socket is masked.` };
    if (file !== 'systemctl') return { code: 127, stdout: '', stderr: `${file}: command not found` };
    const [, verb] = args;
    if (args[0] === '--version') return ok('systemd 252 (252.39-1~deb12u2)\n');
    switch (verb) {
      case 'daemon-reload':
      case 'try-restart':
        return ok();
      case 'enable':
        state.enabled = true;
        if (args.includes('--now')) state.socketActive = true;
        return ok();
      case 'disable':
        state.enabled = false;
        if (args.includes('--now')) state.socketActive = false;
        return ok();
      case 'is-enabled':
        return { code: state.enabled ? 0 : 1, stdout: state.enabled ? 'enabled\n' : 'disabled\n', stderr: '' };
      case 'is-active':
        return { code: state.socketActive ? 0 : 3, stdout: `${state.socketActive ? 'active' : 'inactive'}\ninactive\n`, stderr: '' };
      default:
        return { code: 1, stdout: '', stderr: `Unknown command verb ${verb}.` };
    }
  };
  return { calls, state, run };
}

describe('service install/uninstall with a user manager (stand-in systemctl)', () => {
  it('reloads and enables --now, reports enabled/active, restarts on a changed unit, uninstall reverses it', async () => {
    const { home, env, unitDir } = await tempLogin();
    const systemctl = fakeSystemctl(unitDir);
    const host = hostFor(env, home, systemctl.run);
    const ctx = context(env);

    await runServiceInstall({ dryRun: false, json: true }, ctx, { host });
    const report = JSON.parse(ctx.io.out()) as ServiceActionReport;
    expect(report.commands).toEqual([
      { command: 'systemctl --user daemon-reload', code: 0 },
      { command: 'systemctl --user enable --now tokenbroker.socket', code: 0 },
    ]);
    expect(report.files.map((file) => file.change)).toEqual(['create', 'create']);
    expect(report.notes).toEqual([]);

    const statusCtx = context(env);
    await runServiceStatus({ json: false }, statusCtx, { host });
    expect(statusCtx.io.out()).toContain('  installed  yes, up to date');
    expect(statusCtx.io.out()).toContain('  enabled    yes (enabled)');
    expect(statusCtx.io.out()).toContain('  active     yes (socket active, daemon inactive)');

    // Node moved (e.g. an nvm upgrade): the units are rewritten and a running daemon restarted.
    const moved = context(env);
    await runServiceInstall({ dryRun: false, json: true }, moved, { host: { ...host, node: '/opt/node-22/bin/node' } });
    const movedReport = JSON.parse(moved.io.out()) as ServiceActionReport;
    expect(movedReport.files.map((file) => file.change)).toEqual(['unchanged', 'update']);
    expect(movedReport.commands.map((c) => c.command)).toContain('systemctl --user try-restart tokenbroker.service');
    expect(await readFile(path.join(unitDir, 'tokenbroker.service'), 'utf8')).toContain(`ExecStart=/opt/node-22/bin/node ${DAEMON_NODE_FLAGS.join(' ')} ${CLI_ENTRY} daemon`);

    systemctl.calls.length = 0;
    const un = context(env);
    await runServiceUninstall({ dryRun: false, json: false }, un, { host });
    expect(systemctl.calls).toEqual(['systemctl --version', 'systemctl --user disable --now tokenbroker.socket tokenbroker.service', 'systemctl --user daemon-reload']);
    expect(await readdir(unitDir)).toEqual([]);
    expect(systemctl.state).toMatchObject({ enabled: false, socketActive: false });
  });

  it('a failing systemctl command is an error naming the command and its output', async () => {
    const { home, env, unitDir } = await tempLogin();
    const systemctl = fakeSystemctl(unitDir);
    systemctl.state.failOn = 'enable';
    const host = hostFor(env, home, systemctl.run);
    await expect(runServiceInstall({ dryRun: false, json: false }, context(env), { host })).rejects.toThrow(
      /`systemctl --user enable --now tokenbroker\.socket` failed \(exit 1\): Failed to enable unit: .* is masked\./,
    );
  });

  it('stops a daemon started outside the service manager on the service socket before enabling', async () => {
    const { home, env, unitDir, runtime } = await tempLogin();
    const socketPath = path.join(runtime, 'tokenbroker', 'broker.sock');
    const daemon = await startTestDaemon({ args: ['--socket', socketPath], config: { secretStore: 'memory' } });
    try {
      const systemctl = fakeSystemctl(unitDir);
      let daemonGoneAtReload: boolean | undefined;
      systemctl.state.onCall = (command) => {
        // Read from /proc, not the ChildProcess: under load its 'exit' event can lag the exit itself.
        if (command.endsWith('daemon-reload')) daemonGoneAtReload = processGone(daemon.pid);
      };
      const ctx = context(env);
      await runServiceInstall({ dryRun: false, json: false }, ctx, { host: hostFor(env, home, systemctl.run) });
      expect(ctx.io.out()).toContain(`note: stopped the daemon that ran outside the service manager (pid ${daemon.pid}) so that systemd can take over ${socketPath}.`);
      expect(daemonGoneAtReload).toBe(true);
      // It drained and exited cleanly (SIGTERM), and removed its own socket for systemd to create.
      // (The ChildProcess learns of the exit a little later than /proc: wait for its 'exit' event.)
      const exitCode = daemon.process.exitCode ?? (await new Promise<number | null>((resolve) => daemon.process.once('exit', (code) => resolve(code))));
      expect(exitCode).toBe(0);
      await expect(lstat(socketPath)).rejects.toThrow(/ENOENT/);
    } finally {
      await daemon.cleanup();
    }
  });
});

describe('launchd agent (stand-in launchctl: there is no launchd on Linux)', () => {
  it('bootstraps, reports loaded/running, is idempotent, reloads a changed plist, uninstall boots it out', async () => {
    const { home, env } = await tempLogin();
    const calls: string[] = [];
    let loaded = false;
    const run = async (file: string, args: readonly string[]): Promise<CommandResult> => {
      calls.push([file, ...args].join(' '));
      if (args[0] === 'print') return loaded ? { code: 0, stdout: 'gui/501/com.nordicsemi.tokenbroker = {\n\tstate = running\n\tpid = 4242\n}\n', stderr: '' } : { code: 113, stdout: '', stderr: 'Could not find service "com.nordicsemi.tokenbroker" in domain for port' };
      if (args[0] === 'bootstrap') loaded = true;
      if (args[0] === 'bootout') loaded = false;
      return { code: 0, stdout: '', stderr: '' };
    };
    const host = hostFor(env, home, run, { platform: 'darwin', uid: 501 });
    const plist = path.join(home, 'Library', 'LaunchAgents', 'com.nordicsemi.tokenbroker.plist');
    const bootstrap = `launchctl bootstrap gui/501 ${plist}`;
    const bootout = 'launchctl bootout gui/501/com.nordicsemi.tokenbroker';

    await runServiceInstall({ dryRun: false, json: false }, context(env), { host });
    expect(calls.filter((c) => c.includes('bootstrap') || c.includes('bootout'))).toEqual([bootstrap]);
    expect(await readFile(plist, 'utf8')).toContain(`<string>${CLI_ENTRY}</string>`);
    // launchd does not create the log directory; a missing one makes the agent fail to start.
    expect((await lstat(path.join(home, 'Library', 'Logs', 'tokenbroker'))).isDirectory()).toBe(true);

    const status = context(env);
    await runServiceStatus({ json: true }, status, { host });
    expect(JSON.parse(status.io.out())).toMatchObject({ manager: 'launchd', installed: true, upToDate: true, enabled: true, active: true, pid: 4242 });

    calls.length = 0;
    const again = context(env);
    await runServiceInstall({ dryRun: false, json: false }, again, { host });
    expect(again.io.out()).toContain('tokenbroker service is already installed (launchd agent, files unchanged):');
    expect(calls.filter((c) => c.includes('bootstrap') || c.includes('bootout'))).toEqual([]);

    calls.length = 0;
    await runServiceInstall({ dryRun: false, json: false }, context(env), { host: { ...host, node: '/usr/local/bin/node' } });
    expect(calls.filter((c) => c.includes('bootstrap') || c.includes('bootout'))).toEqual([bootout, bootstrap]);

    calls.length = 0;
    await runServiceUninstall({ dryRun: false, json: false }, context(env), { host });
    expect(calls.filter((c) => c.includes('bootstrap') || c.includes('bootout'))).toEqual([bootout]);
    await expect(lstat(plist)).rejects.toThrow(/ENOENT/);
  });
});

/** The process has exited: no /proc entry, or only a zombie waiting for its parent to reap it. */
function processGone(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}
