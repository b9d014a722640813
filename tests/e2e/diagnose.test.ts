import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Check, DiagnoseReport } from '../../src/cli/diagnose/check.js';
import { socketChecks } from '../../src/cli/diagnose/local-checks.js';
import { privateDirHint } from '../../src/protocol/paths.js';
import { runDiagnoseChecks } from '../../src/cli/diagnose/run-diagnose.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { isolatedEnv, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { useTempHomes } from '../helpers/per-test.js';

const tempHome = useTempHomes({ prefix: 'tb-dg-', after: 'all' });

function configFor(af: FakeArtifactory): Record<string, unknown> {
  return {
    allowInsecureLoopback: true,
    secretStore: 'memory',
    servers: [{ name: 'nordic', origin: af.origin }],
    officialSource: af.url('/artifactory/swtools/external/ncd/apps/official/source.json'),
  };
}

function byId(report: DiagnoseReport, id: string): Check {
  const found = report.checks.find((c) => c.id === id);
  if (found === undefined) throw new Error(`no ${id} check in ${JSON.stringify(report.checks)}`);
  return found;
}

describe('tokenbroker diagnose against the fake Artifactory', () => {
  let af: FakeArtifactory;
  let daemon: TestDaemon;
  beforeAll(async () => {
    af = await startFakeArtifactory();
    daemon = await startTestDaemon({ config: configFor(af) });
  });
  afterAll(async () => {
    await daemon.cleanup();
    await af.close();
  });

  it('--json: every check ok with a running daemon and a reachable server, exit 0', async () => {
    const result = await runCli(['diagnose', '--json'], { env: daemon.env });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as DiagnoseReport;
    expect(report.checks.filter((c) => c.status !== 'ok')).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => (c.server === undefined ? c.id : `${c.server}/${c.id}`))).toEqual([
      'socket-dir',
      'socket',
      'daemon',
      'version',
      'secret-store',
      'core-dumps',
      'config',
      'nordic/token',
      'nordic/proxy',
      'nordic/dns',
      'nordic/tcp',
      'nordic/ping',
      'nordic/clock',
    ]);
    expect(byId(report, 'socket').message).toBe(`${daemon.socketPath}: mode 0600, owned by you`);
    expect(byId(report, 'daemon').message).toContain(`pid ${daemon.pid}`);
    expect(byId(report, 'ping').message).toBe(`GET ${af.url('/artifactory/api/system/ping')}: HTTP 200 "OK"`);
    expect(byId(report, 'core-dumps').message).toBe('the daemon writes no core files (limit 0)');
    expect(report.summary).toEqual({ ok: 13, warn: 0, fail: 0 });
    expect(af.requestsTo('/artifactory/api/system/ping').length).toBeGreaterThan(0);
  });

  it('the daemon down: that check fails (exit 1), the server checks still run', async () => {
    const home = await tempHome();
    await writeFile(path.join(home, 'config.json'), JSON.stringify(configFor(af)));
    const result = await runCli(['diagnose', '--json'], { env: isolatedEnv(home) });
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as DiagnoseReport;
    expect(byId(report, 'daemon')).toMatchObject({ status: 'fail', hint: expect.stringContaining('tokenbroker daemon') });
    expect(byId(report, 'ping').status).toBe('ok');
    // diagnose reports; it never starts a daemon (autostart is for the other commands).
    expect(report.checks.some((c) => c.id === 'version')).toBe(false);
  });

  it('the human report names each failure with its hint', async () => {
    const home = await tempHome();
    await writeFile(path.join(home, 'config.json'), JSON.stringify(configFor(af)));
    const result = await runCli(['diagnose'], { env: isolatedEnv(home) });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^ {2}FAIL {2}daemon {8}The tokenbroker daemon is not reachable/m);
    expect(result.stdout).toMatch(/^ {22}hint: Start it with `tokenbroker daemon`/m);
    expect(result.stdout).toMatch(/^server nordic$/m);
    expect(result.stdout).toMatch(/^ {2}ok {4}ping/m);
    expect(result.stdout).toMatch(/\d+ ok, \d+ warnings?, 1 failure$/m);
  });

  it('with the fake stopped: the ping check fails with a hint and the exit is non-zero', async () => {
    await af.close();
    const result = await runCli(['diagnose', '--json'], { env: daemon.env });
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as DiagnoseReport;
    expect(report.ok).toBe(false);
    const ping = byId(report, 'ping');
    expect(ping.status).toBe('fail');
    expect(ping.message).toContain(af.url('/artifactory/api/system/ping'));
    expect(ping.hint).toMatch(/Nothing answered at http:\/\/127\.0\.0\.1:\d+/);
    expect(byId(report, 'tcp')).toMatchObject({ status: 'fail', message: expect.stringContaining('ECONNREFUSED') });
    // The daemon itself is fine.
    expect(byId(report, 'daemon').status).toBe('ok');
  });
});

describe('diagnose checks', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it('warns when the server clock differs by more than 5 minutes', async () => {
    const server = createServer((_req, res) => {
      res.setHeader('date', new Date(Date.now() - 3 * 3600 * 1000).toUTCString());
      res.end('OK');
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const home = await tempHome();
    const configFile = path.join(home, 'config.json');
    await writeFile(configFile, JSON.stringify({ allowInsecureLoopback: true, servers: [{ name: 'local', origin }] }));
    const report = await runDiagnoseChecks({ socketPath: path.join(home, 'run', 'broker.sock'), configFile, env: {}, uid: process.getuid?.() });
    expect(byId(report, 'ping').status).toBe('ok');
    expect(byId(report, 'clock')).toMatchObject({ status: 'warn', message: "this machine's clock is 3.0 h ahead of the server's", hint: expect.stringContaining('days left') });
  });

  it('an invalid config fails its check and skips the server checks', async () => {
    const home = await tempHome();
    const configFile = path.join(home, 'config.json');
    await writeFile(configFile, '{"servers": []}');
    const report = await runDiagnoseChecks({ socketPath: path.join(home, 'run', 'broker.sock'), configFile, env: {}, uid: process.getuid?.() });
    expect(byId(report, 'config')).toMatchObject({ status: 'fail', message: expect.stringContaining('servers') });
    expect(report.checks.some((c) => c.server !== undefined)).toBe(false);
  });

  it('a socket others can connect to fails, and so does a socket directory open to others (clients refuse both)', async () => {
    const home = await tempHome();
    const dir = path.join(home, 'run');
    await mkdir(dir, { mode: 0o700 });
    const socketPath = path.join(dir, 'broker.sock');
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    await chmod(socketPath, 0o666);
    const [dirOk, socketCheck] = await socketChecks(socketPath, process.getuid?.());
    expect(dirOk).toMatchObject({ id: 'socket-dir', status: 'ok' });
    expect(socketCheck).toMatchObject({ id: 'socket', status: 'fail', message: `${socketPath} can be used by group or others (mode 0666): they would act as you; clients refuse to use it` });
    await chmod(dir, 0o755);
    expect(await socketChecks(socketPath, process.getuid?.())).toEqual([
      { id: 'socket-dir', status: 'fail', message: `${dir} is open to group or others (mode 0755); clients refuse to use it`, hint: privateDirHint(dir, 'socket', process.getuid?.()) },
    ]);
    await chmod(socketPath, 0o600);
    await chmod(dir, 0o700);
    expect((await socketChecks(socketPath, process.getuid?.())).map((c) => c.status)).toEqual(['ok', 'ok']);
  });
});
