import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'undici';
import { DAEMON_NODE_FLAGS } from '../src/protocol/daemon-flags.js';
import { median, percentile, rssOf, startBenchDaemon, type BenchRow } from './harness.js';

const WARM_UP = 1000;
const MEASURED = 5000;

/**
 * The baselines of issue 23, each a process of its own started with the daemon's Node flags: bare
 * Node idling (RSS), and a minimal node:http server answering a fixed JSON body of the status
 * answer's size on a Unix socket (p50).
 */
const BARE_IDLE = 'setInterval(() => {}, 1 << 30); process.stdout.write("ready\\n");';
const MINIMAL_STATUS = `
import { createServer } from 'node:http';
const body = 'x'.repeat(Number(process.env.BODY_BYTES));
createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}).listen(process.env.SOCKET, () => process.stdout.write('ready\\n'));
`;

async function startBaseline(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`a baseline process exited with ${code}`)));
    child.stdout?.once('data', () => resolve());
  });
  return child;
}

async function stopped(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

async function latencies(socketPath: string, count: number): Promise<number[]> {
  const client = new Client('http://localhost', { socketPath, pipelining: 1 });
  const samples: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const res = await client.request({ method: 'GET', path: '/v1/status', headers: { host: 'localhost' } });
      await res.body.text();
      samples.push(performance.now() - t0);
    }
  } finally {
    await client.close();
  }
  return samples;
}

/** Foundation figures: status latency over the socket, start-to-ready, idle RSS, each beside its baseline. */
export async function benchStatus(): Promise<BenchRow[]> {
  const readyRuns: number[] = [];
  for (let i = 0; i < 5; i++) {
    const d = await startBenchDaemon();
    readyRuns.push(d.readyMs);
    await d.stop();
  }

  const bare = await startBaseline(['-e', BARE_IDLE]);
  await new Promise((r) => setTimeout(r, 2000));
  const bareRss = (await rssOf(bare.pid as number)).rssMb;
  await stopped(bare);

  const daemon = await startBenchDaemon();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tbb-st-'));
  try {
    const probe = new Client('http://localhost', { socketPath: daemon.socketPath });
    const answer = await probe.request({ method: 'GET', path: '/v1/status', headers: { host: 'localhost' } });
    const bodyBytes = Buffer.byteLength(await answer.body.text());
    await probe.close();
    const minimalSocket = path.join(dir, 'minimal.sock');
    const minimal = await startBaseline(['--input-type=module', '-e', MINIMAL_STATUS], { ...process.env, SOCKET: minimalSocket, BODY_BYTES: String(bodyBytes) });
    // Alternating blocks, so both see the same load on a shared machine; the first of each warms up.
    const daemonSamples: number[] = [];
    const minimalSamples: number[] = [];
    await latencies(minimalSocket, WARM_UP);
    await latencies(daemon.socketPath, WARM_UP);
    for (let block = 0; block < 5; block++) {
      daemonSamples.push(...(await latencies(daemon.socketPath, MEASURED / 5)));
      minimalSamples.push(...(await latencies(minimalSocket, MEASURED / 5)));
    }
    await stopped(minimal);
    daemonSamples.sort((a, b) => a - b);
    minimalSamples.sort((a, b) => a - b);
    // Idle: the requests are over, the post-load GC has had its chance.
    await new Promise((r) => setTimeout(r, 2000));
    const { rssMb, peakMb } = await rssOf(daemon.child.pid as number);
    const p50 = percentile(daemonSamples, 50);
    const minimalP50 = percentile(minimalSamples, 50);
    const readyMs = median(readyRuns);
    return [
      { name: 'GET /v1/status p50 (keep-alive, socket)', value: p50, unit: 'ms', target: '<= 0.2 ms', ok: p50 <= 0.2 },
      { name: `minimal node:http server p50 (${bodyBytes}-byte body)`, value: minimalP50, unit: 'ms' },
      { name: 'status p50 / minimal server p50', value: p50 / minimalP50, unit: 'x' },
      { name: 'GET /v1/status p99', value: percentile(daemonSamples, 99), unit: 'ms' },
      { name: 'daemon start to socket ready (median of 5)', value: readyMs, unit: 'ms', target: '<= 300 ms', ok: readyMs <= 300 },
      { name: 'bare Node RSS (daemon flags, idle)', value: bareRss, unit: 'MB' },
      { name: `idle RSS after ${WARM_UP + MEASURED} status requests`, value: rssMb, unit: 'MB', target: '<= 80 MB (goal 60)', ok: rssMb <= 80 },
      { name: 'idle RSS / bare Node RSS', value: rssMb / bareRss, unit: 'x', target: '<= 2.0 (80/40)', ok: rssMb / bareRss <= 2 },
      { name: 'peak RSS so far', value: peakMb, unit: 'MB' },
    ];
  } finally {
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
