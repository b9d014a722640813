import { spawn, spawnSync } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DAEMON_NODE_FLAGS } from '../../src/protocol/daemon-flags.js';
import { exited } from '../helpers/process.js';
import { findTool, itWithTools } from '../helpers/tools.js';
import { waitForSocketFile } from '../helpers/wait-for.js';
import {
  LAUNCHD_LABEL,
  TEMPLATE_FILES,
  TemplateError,
  escapeXml,
  fillTemplate,
  quoteSystemdArgument,
  quoteSystemdExecutable,
  renderLaunchdPlist,
  renderSystemdUnits,
  type SystemdUnitTexts,
} from '../../src/cli/service/unit-templates.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

const temps: string[] = [];
afterEach(async () => {
  await Promise.all(temps.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(prefix: string): Promise<string> {
  // Short names under os.tmpdir(): socket paths must stay under sun_path's 104 bytes.
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

async function readTemplate(relative: string): Promise<string> {
  return readFile(path.join(REPO_ROOT, relative), 'utf8');
}

async function systemdTemplates(): Promise<SystemdUnitTexts> {
  return { socket: await readTemplate(TEMPLATE_FILES.systemdSocket), service: await readTemplate(TEMPLATE_FILES.systemdService) };
}

/** Section -> key -> every value assigned (unit files allow repeated keys). Comments dropped. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header?.[1] !== undefined) {
      current = new Map();
      sections.set(header[1], current);
      continue;
    }
    const eq = line.indexOf('=');
    if (current === undefined || eq < 0) throw new Error(`unexpected unit line: ${raw}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

function unitValue(unit: Map<string, Map<string, string[]>>, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

interface VerifyResult {
  status: number | null;
  output: string;
}

/**
 * `systemd-analyze verify --user` loads the units the way a user manager would, reports unknown
 * keys, bad values and quoting errors, and checks that ExecStart's executable exists. As root in
 * a container or CI job there is no login session, so it fails up front with "Failed to
 * initialize manager: No such device or address" (no $XDG_RUNTIME_DIR). It only needs that
 * directory to exist, it starts nothing, so a private empty one is given; HOME and
 * XDG_CONFIG_HOME point into the temp dir too, so a developer's own installed units
 * (~/.config/systemd/user) cannot leak into the check. Exit status 0 alone proves little:
 * unknown keys are warnings with status 0, so the output must be empty as well.
 */
async function systemdVerify(dir: string, files: string[]): Promise<VerifyResult> {
  const runtime = path.join(dir, 'runtime');
  await mkdir(runtime, { mode: 0o700 });
  const result = spawnSync('systemd-analyze', ['verify', '--user', ...files], {
    encoding: 'utf8',
    env: {
      ...process.env,
      XDG_RUNTIME_DIR: runtime,
      HOME: dir,
      XDG_CONFIG_HOME: path.join(dir, 'config'),
      SYSTEMD_PAGER: '',
      SYSTEMD_COLORS: '0',
    },
    timeout: 20_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

/** Renders the real templates into `dir` with a real executable and entry file, returns the file paths. */
async function renderInto(dir: string, paths: { node: string; entry: string }, templates?: SystemdUnitTexts): Promise<string[]> {
  const units = renderSystemdUnits(paths, templates ?? (await systemdTemplates()));
  const socketFile = path.join(dir, 'tokenbroker.socket');
  const serviceFile = path.join(dir, 'tokenbroker.service');
  await writeFile(socketFile, units.socket);
  await writeFile(serviceFile, units.service);
  return [socketFile, serviceFile];
}

describe('systemd units', () => {
  it('the templates carry the settings DESIGN section 9 asks for', async () => {
    const { socket, service } = await systemdTemplates();
    const s = parseUnit(socket);
    expect(unitValue(s, 'Socket', 'ListenStream')).toBe('%t/tokenbroker/broker.sock');
    expect(unitValue(s, 'Socket', 'SocketMode')).toBe('0600');
    expect(unitValue(s, 'Socket', 'DirectoryMode')).toBe('0700');
    expect(unitValue(s, 'Install', 'WantedBy')).toBe('sockets.target');

    const v = parseUnit(service);
    expect(unitValue(v, 'Unit', 'Requires')).toBe('tokenbroker.socket');
    expect(unitValue(v, 'Service', 'ExecStart')).toBe(`@NODE@ ${DAEMON_NODE_FLAGS.join(' ')} @ENTRY@ daemon`);
    expect(unitValue(v, 'Service', 'UMask')).toBe('0077');
    expect(unitValue(v, 'Service', 'LimitCORE')).toBe('0');
    expect(unitValue(v, 'Service', 'NoNewPrivileges')).toBe('yes');
    expect(unitValue(v, 'Service', 'Restart')).toBe('on-failure');
    expect(unitValue(v, 'Install', 'Also')).toBe('tokenbroker.socket');
    // Over the default 10 s shutdown grace, so a draining daemon is not SIGKILLed.
    const stopTimeout = unitValue(v, 'Service', 'TimeoutStopSec');
    expect(Number.parseInt(stopTimeout ?? '', 10)).toBeGreaterThan(10);
    // V8's JIT needs W+X memory: node dies at startup under MemoryDenyWriteExecute=yes.
    expect(unitValue(v, 'Service', 'MemoryDenyWriteExecute')).toBeUndefined();
    // Fails a user unit with 218/CAPABILITIES: a user manager cannot shrink the bounding set.
    expect(unitValue(v, 'Service', 'CapabilityBoundingSet')).toBeUndefined();
  });

  itWithTools(['systemd-analyze'], 'rendered units pass `systemd-analyze verify --user` without a single warning', async () => {
    const dir = await tempDir('tb-units-');
    const entry = path.join(dir, 'tokenbroker.js');
    await writeFile(entry, '');
    const files = await renderInto(dir, { node: process.execPath, entry });
    const result = await systemdVerify(dir, files);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  itWithTools(['systemd-analyze'], 'the verify check can fail: an unknown key and a missing executable are reported', async () => {
    const dir = await tempDir('tb-units-');
    const templates = await systemdTemplates();
    const broken = { ...templates, service: templates.service.replace('[Service]\n', '[Service]\nNoSuchHardening=yes\n') };
    const files = await renderInto(dir, { node: path.join(dir, 'no-such-node'), entry: path.join(dir, 'entry.js') }, broken);
    const result = await systemdVerify(dir, files);
    expect(result.output).toMatch(/Unknown key.*NoSuchHardening/);
    expect(result.output).toMatch(/no-such-node/);
  });

  itWithTools(['systemd-analyze'], 'paths with spaces, $, %, quotes and backslashes survive systemd quoting', async () => {
    const dir = await tempDir('tb-units-');
    // The executable: systemd checks that it exists, so a wrong decoding fails the verify.
    const nodeDir = path.join(dir, 'node dir $HOME %t ;&');
    await mkdir(nodeDir);
    const node = path.join(nodeDir, 'node$x%%');
    await symlink(process.execPath, node);
    // The argument: not checked for existence, but bad quoting or escapes are reported.
    const entryDir = path.join(dir, `entry "dir" $1 %h it's \\b`);
    await mkdir(entryDir);
    const entry = path.join(entryDir, 'main.js');
    await writeFile(entry, '');
    const files = await renderInto(dir, { node, entry });
    const result = await systemdVerify(dir, files);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  it('quotes ExecStart words by the rules systemd applies to each position', () => {
    // Expected strings checked against systemd 252: a real user manager handed the service
    // exactly these argv values.
    expect(quoteSystemdExecutable('/usr/bin/node')).toBe('/usr/bin/node');
    expect(quoteSystemdExecutable('/opt/my node/100%/$v/node')).toBe('"/opt/my node/100%%/$v/node"');
    expect(quoteSystemdArgument('/home/u/lib/tokenbroker/bin/tokenbroker.js')).toBe('/home/u/lib/tokenbroker/bin/tokenbroker.js');
    expect(quoteSystemdArgument('/home/u/$HOME %t/a "b" \\c\'d.js')).toBe('"/home/u/$$HOME %%t/a \\"b\\" \\\\c\'d.js"');
    expect(quoteSystemdArgument('/a/$x')).toBe('/a/$$x');
  });

  it('refuses paths that no unit file can express or that systemd would not start', async () => {
    const templates = await systemdTemplates();
    const render = (node: string, entry: string): SystemdUnitTexts => renderSystemdUnits({ node, entry }, templates);
    expect(() => render('node', '/x/entry.js')).toThrow(TemplateError);
    expect(() => render('/usr/bin/node', 'entry.js')).toThrow(/absolute/);
    expect(() => render('/usr/bin/node', '/x/en\ntry.js')).toThrow(/control character/);
    expect(() => render('/usr/bin/no\rde', '/x/entry.js')).toThrow(/control character/);
    expect(() => render(`/home/o'brien/node`, '/x/entry.js')).toThrow(/quote or a backslash/);
    expect(() => render('/home/a\\b/node', '/x/entry.js')).toThrow(/quote or a backslash/);
  });
});

/** Parses a plist strictly and returns it as JSON: plutil on macOS, else Python's plistlib (expat). */
function parsePlist(file: string): unknown {
  if (findTool('plutil') !== undefined) {
    const lint = spawnSync('plutil', ['-lint', file], { encoding: 'utf8' });
    expect(lint.status, lint.stdout + lint.stderr).toBe(0);
    const json = spawnSync('plutil', ['-convert', 'json', '-o', '-', file], { encoding: 'utf8' });
    expect(json.status, json.stderr).toBe(0);
    return JSON.parse(json.stdout);
  }
  const script = 'import json, plistlib, sys\nwith open(sys.argv[1], "rb") as f:\n    print(json.dumps(plistlib.load(f, fmt=plistlib.FMT_XML)))';
  const parsed = spawnSync('python3', ['-c', script, file], { encoding: 'utf8' });
  expect(parsed.status, parsed.stderr).toBe(0);
  return JSON.parse(parsed.stdout);
}

const plistTools = findTool('plutil') !== undefined ? ['plutil'] : ['python3'];

describe('launchd plist', () => {
  itWithTools(plistTools, 'renders into a valid property list with the agent settings', async () => {
    const dir = await tempDir('tb-plist-');
    const file = path.join(dir, `${LAUNCHD_LABEL}.plist`);
    const paths = {
      node: '/usr/local/bin/node',
      entry: '/usr/local/lib/node_modules/tokenbroker/bin/tokenbroker.js',
      logDir: '/Users/ada/Library/Logs/tokenbroker/',
    };
    await writeFile(file, renderLaunchdPlist(paths, await readTemplate(TEMPLATE_FILES.launchdPlist)));
    expect(parsePlist(file)).toEqual({
      Label: 'com.nordicsemi.tokenbroker',
      ProgramArguments: [paths.node, ...DAEMON_NODE_FLAGS, paths.entry, 'daemon'],
      RunAtLoad: true,
      KeepAlive: { SuccessfulExit: false },
      ExitTimeOut: 15,
      ProcessType: 'Background',
      Umask: 0o077,
      SoftResourceLimits: { Core: 0 },
      HardResourceLimits: { Core: 0 },
      StandardOutPath: '/Users/ada/Library/Logs/tokenbroker/tokenbroker.out.log',
      StandardErrorPath: '/Users/ada/Library/Logs/tokenbroker/tokenbroker.err.log',
    });
  });

  itWithTools(plistTools, 'XML-special characters in paths come back unchanged', async () => {
    const dir = await tempDir('tb-plist-');
    const file = path.join(dir, 'agent.plist');
    const paths = { node: `/Users/a&b/<n>/"q"/it's/node`, entry: '/Users/x/]]>/@NODE@/e.js', logDir: '/Users/x/Logs & more' };
    await writeFile(file, renderLaunchdPlist(paths, await readTemplate(TEMPLATE_FILES.launchdPlist)));
    const parsed = parsePlist(file) as { ProgramArguments: string[]; StandardOutPath: string };
    expect(parsed.ProgramArguments).toEqual([paths.node, ...DAEMON_NODE_FLAGS, paths.entry, 'daemon']);
    expect(parsed.StandardOutPath).toBe('/Users/x/Logs & more/tokenbroker.out.log');
  });

  it('refuses relative paths and control characters', async () => {
    const template = await readTemplate(TEMPLATE_FILES.launchdPlist);
    expect(() => renderLaunchdPlist({ node: '/n', entry: '/e', logDir: '~/Library/Logs/tokenbroker' }, template)).toThrow(/absolute/);
    expect(() => renderLaunchdPlist({ node: '/n\u0001', entry: '/e', logDir: '/l' }, template)).toThrow(/control character/);
  });
});

describe('fillTemplate', () => {
  it('fills every placeholder', () => {
    expect(fillTemplate('@A@ and @B_2@, @A@ again', { A: 'x', B_2: 'y' })).toBe('x and y, x again');
  });

  it('throws naming every placeholder without a value, typos included', () => {
    expect(() => fillTemplate('@NODE@ @ENTRY@ @LOGDIR@', { NODE: '/n' })).toThrow(TemplateError);
    expect(() => fillTemplate('@NODE@ @ENTRY@ @LOGDIR@', { NODE: '/n' })).toThrow('@ENTRY@, @LOGDIR@');
    expect(() => fillTemplate('ExecStart=@Node@', { NODE: '/n' })).toThrow('@Node@');
    // Inherited properties are not values.
    expect(() => fillTemplate('@toString@', {})).toThrow('@toString@');
  });

  it('passes each value through the encoder, once', () => {
    expect(fillTemplate('<string>@P@</string>', { P: `a&b<c>"d"'e` }, escapeXml)).toBe('<string>a&amp;b&lt;c&gt;&quot;d&quot;&apos;e</string>');
    // A value that looks like a placeholder is data, not a second round of substitution.
    expect(fillTemplate('@A@|@B@', { A: '@B@', B: 'b' })).toBe('@B@|b');
  });

  it('leaves text that only resembles a placeholder alone', () => {
    expect(fillTemplate('user@.service a@b.c %t', {})).toBe('user@.service a@b.c %t');
  });

  it('every placeholder in the shipped templates is filled by the renderers', async () => {
    const units = renderSystemdUnits({ node: '/n', entry: '/e' }, await systemdTemplates());
    const plist = renderLaunchdPlist({ node: '/n', entry: '/e', logDir: '/l' }, await readTemplate(TEMPLATE_FILES.launchdPlist));
    for (const text of [units.socket, units.service, plist]) expect(text).not.toMatch(/@[A-Za-z_]\w*@/);
  });
});


function getOverSocket(socketPath: string, urlPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get({ socketPath, path: urlPath, agent: false, headers: { host: 'localhost' }, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error('no answer on the activated socket')));
    request.on('error', reject);
  });
}

/*
 * What the daemon will do under tokenbroker.socket, with systemd's own test activator: it holds
 * the listening socket, execs the program on the first connection (same PID, so LISTEN_PID is the
 * program's own), and passes the socket as fd 3. Node serves HTTP on it with listen({ fd: 3 }).
 */
const ACTIVATED_SERVER = `
const http = require('node:http');
const fs = require('node:fs');
const info = {
  listenFds: process.env.LISTEN_FDS,
  listenPidIsSelf: process.env.LISTEN_PID === String(process.pid),
  fdNames: process.env.LISTEN_FDNAMES,
  fd3IsSocket: fs.fstatSync(3).isSocket(),
};
const server = http.createServer((req, res) => {
  // One answer, then exit; Connection: close so no keep-alive socket holds the process open.
  res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify({ ...info, path: req.url }));
  server.close();
});
server.listen({ fd: 3 });
`;

describe('socket activation', () => {
  itWithTools(['systemd-socket-activate'], 'node serves HTTP on fd 3 and leaves the socket file to its owner', async () => {
    const dir = await tempDir('tb-sa-');
    await chmod(dir, 0o700);
    const socketPath = path.join(dir, 's.sock');
    const activator = spawn('systemd-socket-activate', ['-l', socketPath, '--fdname=broker', process.execPath, '-e', ACTIVATED_SERVER], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    activator.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    try {
      await waitForSocketFile(socketPath, activator, () => 'systemd-socket-activate', 10_000);
      const body = JSON.parse(await getOverSocket(socketPath, '/v1/status')) as Record<string, unknown>;
      expect(body).toEqual({ listenFds: '1', listenPidIsSelf: true, fdNames: 'broker', fd3IsSocket: true, path: '/v1/status' });
      expect(await exited(activator, 10_000), log).toBe(0);
      // The program never created the socket and must not remove it: under systemd the socket
      // unit keeps it and starts the daemon again on the next connection.
      expect((await lstat(socketPath)).isSocket()).toBe(true);
    } finally {
      // The activator execs the program in place, so this one PID covers both.
      if (activator.exitCode === null && activator.signalCode === null) {
        activator.kill('SIGKILL');
        await exited(activator, 5_000).catch(() => undefined);
      }
    }
  });
});
