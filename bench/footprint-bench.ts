import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { TokenBrokerClient } from '../src/client/client.js';
import { startFakeArtifactory } from '../tests/fixtures/fake-artifactory.js';
import { CLI_ENTRY, isolatedEnv } from '../tests/helpers/test-daemon.js';
import { median, startBenchDaemon, type BenchRow } from './harness.js';
import { timeProcesses } from './process-runner.js';

const MiB = 1024 * 1024;
const FILE = '/artifactory/swtools/restricted/bench/256-mib.bin';
const FILE_MIB = 256;
const TOKEN = 'tok-bench-footprint';
const CLI_ROUNDS = 11;
const FETCH_ROUNDS = 3;

/** min / median / max of a list, for the ranges the docs report. */
function spread(values: readonly number[], digits = 2): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `${(sorted[0] ?? NaN).toFixed(digits)}-${(sorted[sorted.length - 1] ?? NaN).toFixed(digits)}`;
}

/**
 * Issue 23's CLI figure: `tokenbroker --version` and `status` against a bare `node -e 0`, wall
 * time, medians of CLI_ROUNDS alternating rounds in one run (the ratio is the figure; the machine
 * is shared). `status` talks to a running daemon, as a user's would.
 */
export async function benchCliStart(): Promise<BenchRow[]> {
  const daemon = await startBenchDaemon();
  try {
    const env = isolatedEnv(daemon.home);
    const node = process.execPath;
    const [bare, version, status] = await timeProcesses(
      [{ argv: [node, '-e', '0'] }, { argv: [node, CLI_ENTRY, '--version'] }, { argv: [node, CLI_ENTRY, 'status'] }],
      CLI_ROUNDS,
      env,
    );
    if (bare === undefined || version === undefined || status === undefined) throw new Error('missing timings');
    const ms = (s: number): number => s * 1000;
    const rows: BenchRow[] = [
      { name: `node -e 0 (median of ${CLI_ROUNDS}, wall)`, value: ms(median(bare.wall)), unit: 'ms' },
      { name: 'tokenbroker --version', value: ms(median(version.wall)), unit: 'ms' },
      { name: 'tokenbroker status', value: ms(median(status.wall)), unit: 'ms' },
    ];
    for (const [label, timing] of [['--version', version], ['status', status]] as const) {
      const ratio = median(timing.wall) / median(bare.wall);
      // Per round (same round, alternating) gives the spread the medians hide.
      const perRound = timing.wall.map((w, i) => w / (bare.wall[i] as number));
      rows.push({ name: `${label} / node -e 0 (per-round ${spread(perRound)})`, value: ratio, unit: 'x', target: '<= 1.6', ok: ratio <= 1.6 });
      rows.push({ name: `${label} CPU / node -e 0 CPU`, value: median(timing.cpu) / median(bare.cpu), unit: 'x' });
    }
    return rows;
  } finally {
    await daemon.stop();
  }
}

/**
 * The program `fetch -o` is held to: single-threaded Node doing the same work — one
 * undici request with `Range: bytes=0-`, sha1 + sha256 over every byte, awaited writes, fsync.
 * Started as a process of its own, as the CLI is.
 */
const MINIMAL_FETCH = `
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { request } from 'undici';
const [url, token, out] = process.argv.slice(1);
const res = await request(url, { headers: { authorization: 'Bearer ' + token, range: 'bytes=0-' } });
if (res.statusCode !== 200 && res.statusCode !== 206) throw new Error('status ' + res.statusCode);
const sha1 = createHash('sha1');
const sha256 = createHash('sha256');
const file = await open(out, 'w');
for await (const chunk of res.body) {
  sha1.update(chunk);
  sha256.update(chunk);
  await file.write(chunk);
}
await file.sync();
await file.close();
process.stdout.write(sha1.digest('hex') + ' ' + sha256.digest('hex') + '\\n');
`;

async function hasCurl(): Promise<boolean> {
  return promisify(execFile)('curl', ['--version']).then(
    () => true,
    () => false,
  );
}

/**
 * `tokenbroker fetch -o` (CLI start-up included, the daemon writes and hashes) against the minimal
 * program above and curl, FETCH_ROUNDS alternating rounds of a FILE_MIB MiB restricted file from
 * one loopback fake Artifactory.
 */
export async function benchFetchToFile(): Promise<BenchRow[]> {
  const af = await startFakeArtifactory({ tokens: { [TOKEN]: {} } });
  af.setFile(FILE, { size: FILE_MIB * MiB, seed: 23 });
  af.setJson('/artifactory/swtools/external/ncd/apps/official/source.json', { name: 'official', apps: [] });
  await af.digestOf(FILE);
  const daemon = await startBenchDaemon({
    allowInsecureLoopback: true,
    secretStore: 'memory',
    servers: [{ name: 'nordic', origin: af.origin }],
    officialSource: af.url('/artifactory/swtools/external/ncd/apps/official/source.json'),
  });
  const client = new TokenBrokerClient({ socketPath: daemon.socketPath, onVersionMismatch: () => undefined });
  const out = await mkdtemp(path.join(os.tmpdir(), 'tbb-fp-'));
  try {
    await client.setToken(TOKEN);
    const env = isolatedEnv(daemon.home, { TOKENBROKER_SOCKET: daemon.socketPath });
    const file = (name: string): string => path.join(out, name);
    const url = af.url(FILE);
    const curl = await hasCurl();
    const commands = [
      { argv: [process.execPath, '--input-type=module', '-e', MINIMAL_FETCH, url, TOKEN, file('minimal.bin')], remove: [file('minimal.bin')] },
      { argv: [process.execPath, CLI_ENTRY, 'fetch', url, '-o', file('cli.bin')], remove: [file('cli.bin')] },
      ...(curl ? [{ argv: ['curl', '-sf', '-o', file('curl.bin'), '-H', `Authorization: Bearer ${TOKEN}`, url], remove: [file('curl.bin')] }] : []),
    ];
    // Warm-up round: the daemon's code paths compiled, the page cache in its steady state.
    await timeProcesses(commands, 1, env);
    const [minimal, cli, curlTiming] = await timeProcesses(commands, FETCH_ROUNDS, env);
    if (minimal === undefined || cli === undefined) throw new Error('missing timings');
    const mibs = (s: number): number => FILE_MIB / s;
    const ratio = median(minimal.wall) / median(cli.wall);
    const perRound = cli.wall.map((w, i) => (minimal.wall[i] as number) / w);
    const rows: BenchRow[] = [
      { name: `${FILE_MIB} MiB minimal Node program (median of ${FETCH_ROUNDS})`, value: mibs(median(minimal.wall)), unit: 'MiB/s' },
      { name: `${FILE_MIB} MiB tokenbroker fetch -o (CLI included)`, value: mibs(median(cli.wall)), unit: 'MiB/s' },
      { name: `fetch -o / minimal program (per-round ${spread(perRound)})`, value: ratio, unit: 'x', target: '>= 1.0', ok: ratio >= 1.0 },
    ];
    if (curlTiming !== undefined) {
      rows.push(
        { name: `${FILE_MIB} MiB curl -o`, value: mibs(median(curlTiming.wall)), unit: 'MiB/s' },
        { name: 'fetch -o / curl', value: median(curlTiming.wall) / median(cli.wall), unit: 'x' },
        { name: 'minimal program / curl', value: median(curlTiming.wall) / median(minimal.wall), unit: 'x' },
      );
    }
    return rows;
  } finally {
    await client.close();
    await daemon.stop();
    await af.close();
    await rm(out, { recursive: true, force: true });
  }
}
