import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { Client, request } from 'undici';
import { TokenBrokerClient } from '../src/client/client.js';
import { startFakeArtifactory } from '../tests/fixtures/fake-artifactory.js';
import { DAEMON_NODE_FLAGS } from '../src/protocol/daemon-flags.js';
import { CLI_ENTRY, REPO_ROOT, isolatedEnv } from '../tests/helpers/test-daemon.js';
import { rssOf, startBenchDaemon, type BenchRow } from './harness.js';

const MiB = 1024 * 1024;
const GIB_FILE = '/artifactory/swtools/restricted/bench/one-gib.bin';
const MID_FILE = '/artifactory/swtools/restricted/bench/64-mib.bin';
const TOKEN = 'tok-bench-download';
const ROUNDS = 2;
const run = promisify(execFile);

/**
 * Runs a command and reports its wall time, CPU (user + system) and peak RSS, from the kernel's
 * accounting of a child (python's RUSAGE_CHILDREN: Node has no call for a child's rusage).
 */
async function measured(argv: string[], env: NodeJS.ProcessEnv): Promise<{ s: number; cpuS: number }> {
  const script = 'import resource,subprocess,sys,time\nt=time.time()\nr=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL)\nw=time.time()-t\nu=resource.getrusage(resource.RUSAGE_CHILDREN)\nprint(r.returncode,w,u.ru_utime+u.ru_stime)';
  const { stdout } = await run('python3', ['-c', script, ...argv], { env });
  const [code, s, cpuS] = stdout.trim().split(' ').map(Number);
  if (code !== 0) throw new Error(`${argv.join(' ')} exited ${code}`);
  return { s: s as number, cpuS: cpuS as number };
}

async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5');
}

async function cpuS(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) * 10) / 1000;
}

async function hasCurl(): Promise<boolean> {
  return run('curl', ['--version']).then(
    () => true,
    () => false,
  );
}

/**
 * The reference the streaming relay is held to: a node:http server piping an undici body, in a
 * process of its own started with the daemon's Node flags (as the daemon is), so both answer from
 * another process than the one hosting the fake server and reading the body.
 */
const PASS_THROUGH = `
import { createServer } from 'node:http';
import { pipeline } from 'node:stream';
import { request } from 'undici';
const { PASS_SOCKET, PASS_ORIGIN, PASS_TOKEN } = process.env;
createServer((req, res) => {
  request(PASS_ORIGIN + req.url, { headers: { range: 'bytes=0-', authorization: 'Bearer ' + PASS_TOKEN } }).then(
    (upstream) => { res.writeHead(200, { 'content-length': upstream.headers['content-length'] }); pipeline(upstream.body, res, () => {}); },
    () => res.destroy(),
  );
}).listen(PASS_SOCKET, () => process.stdout.write('ready\\n'));
`;

async function minimalPassThrough(socketPath: string, origin: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, '--input-type=module', '-e', PASS_THROUGH], {
    cwd: REPO_ROOT,
    env: { ...process.env, PASS_SOCKET: socketPath, PASS_ORIGIN: origin, PASS_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the pass-through exited with ${code}`)));
    child.stdout?.once('data', () => resolve());
  });
  return child;
}

async function consume(client: Client, urlPath: string): Promise<number> {
  const t0 = performance.now();
  const res = await client.request({ method: 'GET', path: urlPath, headers: { host: 'localhost' } });
  let bytes = 0;
  for await (const chunk of res.body) bytes += (chunk as Buffer).length;
  if (bytes !== 1024 * MiB) throw new Error(`short body: ${bytes}`);
  return (performance.now() - t0) / 1000;
}

/**
 * Downloads to a file, in one run against one loopback server: `tokenbroker fetch -o`
 * (daemon-written) vs `curl -o` vs a direct undici download to a file; CPU per GiB (CLI + daemon)
 * vs curl's; the daemon's peak RSS writing 64 MiB and 1 GiB; `client.download()`; and the
 * streaming relay `/v1/fetch` vs a minimal Node pass-through. Best of ROUNDS alternating rounds.
 */
export async function benchDownloads(): Promise<BenchRow[]> {
  const af = await startFakeArtifactory({ tokens: { [TOKEN]: {} } });
  af.setFile(GIB_FILE, { size: 1024 * MiB, seed: 31 });
  af.setFile(MID_FILE, { size: 64 * MiB, seed: 32 });
  af.setJson('/artifactory/swtools/external/ncd/apps/official/source.json', { name: 'official', apps: [] });
  await af.digestOf(GIB_FILE);
  const daemon = await startBenchDaemon({
    allowInsecureLoopback: true,
    secretStore: 'memory',
    servers: [{ name: 'nordic', origin: af.origin }],
    officialSource: af.url('/artifactory/swtools/external/ncd/apps/official/source.json'),
  });
  const pid = daemon.child.pid as number;
  const client = new TokenBrokerClient({ socketPath: daemon.socketPath, onVersionMismatch: () => undefined });
  await client.setToken(TOKEN);
  const out = await mkdtemp(path.join(os.tmpdir(), 'tbb-dl-'));
  const env = isolatedEnv(daemon.home, { TOKENBROKER_SOCKET: daemon.socketPath });
  const passSocket = path.join(out, 'pass.sock');
  const pass = await minimalPassThrough(passSocket, af.origin);
  const broker = new Client('http://localhost', { socketPath: daemon.socketPath });
  const passClient = new Client('http://localhost', { socketPath: passSocket });
  const curl = await hasCurl();
  const file = (name: string): string => path.join(out, name);
  const best = (values: number[]): number => Math.min(...values);
  try {
    // Warm-up: code paths compiled, the token used once, the post-start GC done.
    await client.download(af.url(MID_FILE), file('warm.bin'));
    await rm(file('warm.bin'));

    await resetPeak(pid);
    await client.download(af.url(MID_FILE), file('mid.bin'));
    const peak64 = (await rssOf(pid)).peakMb;
    await rm(file('mid.bin'));

    const t = { cli: [] as number[], curl: [] as number[], direct: [] as number[], lib: [] as number[], relay: [] as number[], pass: [] as number[] };
    const cpu = { cli: [] as number[], curl: [] as number[], lib: [] as number[] };
    let peak1g = 0;
    for (let round = 0; round < ROUNDS; round++) {
      if (curl) {
        const c = await measured(['curl', '-s', '-o', file('curl.bin'), '-H', `Authorization: Bearer ${TOKEN}`, af.url(GIB_FILE)], env);
        t.curl.push(c.s);
        cpu.curl.push(c.cpuS);
        await rm(file('curl.bin'));
      }
      await resetPeak(pid);
      const d0 = await cpuS(pid);
      const f = await measured([process.execPath, CLI_ENTRY, 'fetch', af.url(GIB_FILE), '-o', file('cli.bin')], env);
      cpu.cli.push(f.cpuS + (await cpuS(pid)) - d0);
      t.cli.push(f.s);
      peak1g = Math.max(peak1g, (await rssOf(pid)).peakMb);
      await rm(file('cli.bin'));

      let t0 = performance.now();
      const direct = await request(af.url(GIB_FILE), { headers: { authorization: `Bearer ${TOKEN}`, range: 'bytes=0-' } });
      await pipeline(direct.body, createWriteStream(file('direct.bin')));
      t.direct.push((performance.now() - t0) / 1000);
      await rm(file('direct.bin'));

      // The daemon's CPU only: this process also hosts the fake server, so its own CPU says nothing.
      const l0 = await cpuS(pid);
      t0 = performance.now();
      await client.download(af.url(GIB_FILE), file('lib.bin'));
      t.lib.push((performance.now() - t0) / 1000);
      cpu.lib.push((await cpuS(pid)) - l0);
      await rm(file('lib.bin'));

      t.relay.push(await consume(broker, `/v1/fetch?url=${encodeURIComponent(af.url(GIB_FILE))}`));
      t.pass.push(await consume(passClient, GIB_FILE));
    }
    const mibs = (s: number): number => 1024 / s;
    const rows: BenchRow[] = [];
    const cliRatio = curl ? best(t.curl) / best(t.cli) : NaN;
    const cpuRatio = curl ? best(cpu.cli) / best(cpu.curl) : NaN;
    if (curl) rows.push({ name: '1 GiB curl -o (best of 2)', value: mibs(best(t.curl)), unit: 'MiB/s' });
    rows.push(
      { name: '1 GiB direct undici download to a file', value: mibs(best(t.direct)), unit: 'MiB/s' },
      { name: '1 GiB tokenbroker fetch -o (daemon-written)', value: mibs(best(t.cli)), unit: 'MiB/s' },
    );
    if (curl) rows.push({ name: 'fetch -o / curl -o throughput', value: cliRatio, unit: 'x', target: '>= 0.5', ok: cliRatio >= 0.5 });
    rows.push({ name: 'fetch -o / direct undici throughput', value: best(t.direct) / best(t.cli), unit: 'x' });
    if (curl) rows.push({ name: 'curl CPU per GiB', value: best(cpu.curl), unit: 's' });
    rows.push({ name: 'fetch -o CPU per GiB (CLI + daemon)', value: best(cpu.cli), unit: 's' });
    if (curl) rows.push({ name: 'fetch -o CPU / curl CPU', value: cpuRatio, unit: 'x', target: '<= 3', ok: cpuRatio <= 3 });
    rows.push(
      { name: 'daemon peak RSS writing 64 MiB', value: peak64, unit: 'MB', target: '< 120 MB', ok: peak64 < 120 },
      { name: 'daemon peak RSS writing 1 GiB', value: peak1g, unit: 'MB', target: '< 120 MB', ok: peak1g < 120 },
      { name: 'peak RSS growth 64 MiB -> 1 GiB', value: peak1g - peak64, unit: 'MB', target: '<= 5 MB (flat)', ok: peak1g - peak64 <= 5 },
      { name: '1 GiB client.download() (daemon-written)', value: mibs(best(t.lib)), unit: 'MiB/s' },
      { name: 'client.download() daemon CPU per GiB', value: best(cpu.lib), unit: 's' },
      { name: '1 GiB minimal Node pass-through (http + undici)', value: mibs(best(t.pass)), unit: 'MiB/s' },
      { name: '1 GiB streaming relay /v1/fetch', value: mibs(best(t.relay)), unit: 'MiB/s' },
      { name: 'relay / minimal pass-through', value: best(t.pass) / best(t.relay), unit: 'x', target: '>= 0.9', ok: best(t.pass) / best(t.relay) >= 0.9 },
    );
    return rows;
  } finally {
    await broker.close();
    await passClient.close();
    await client.close();
    pass.kill('SIGTERM');
    await daemon.stop();
    await af.close();
    await rm(out, { recursive: true, force: true });
  }
}
