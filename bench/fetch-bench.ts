import { readFile, writeFile } from 'node:fs/promises';
import { Client } from 'undici';
import { startFakeArtifactory } from '../tests/fixtures/fake-artifactory.js';
import { percentile, rssOf, startBenchDaemon, type BenchRow } from './harness.js';

const MiB = 1024 * 1024;
const GIB_FILE = '/artifactory/swtools/external/bench/one-gib.bin';
const MID_FILE = '/artifactory/swtools/external/bench/64-mib.bin';
const SMALL_FILE = '/artifactory/swtools/external/bench/4-kib.bin';

/**
 * Resets the process's VmHWM to its current RSS (Linux >= 4.0, our own child), so the next reading
 * is the peak of what happened since: streaming, not start-up (a compacting GC after start-up can
 * briefly add ~30 MB, whatever the daemon does).
 */
async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5');
}

/** CPU time (user + system) a process has used, in ms (Linux, clock ticks of 10 ms). */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Reads a whole body, counting bytes (no hashing: this measures transport only). */
async function consume(client: Client, path: string, headers: Record<string, string>): Promise<{ ms: number; bytes: number }> {
  const t0 = performance.now();
  const res = await client.request({ method: 'GET', path, headers });
  if (res.statusCode !== 200 && res.statusCode !== 206) throw new Error(`GET ${path}: ${res.statusCode} ${await res.body.text()}`);
  let bytes = 0;
  for await (const chunk of res.body) bytes += (chunk as Buffer).length;
  return { ms: performance.now() - t0, bytes };
}

/**
 * Fetch figures, each against the direct path where there is one, in the same run and from the
 * same fake server: 1 GiB throughput through the broker vs a direct undici download, the daemon's
 * peak RSS streaming 64 MiB and then 1 GiB (flat memory means no growth with size), and the
 * latency the broker adds to a 4 KiB fetch.
 */
export async function benchFetch(): Promise<BenchRow[]> {
  const af = await startFakeArtifactory({ chunkedWithoutRange: true });
  af.setFile(GIB_FILE, { size: 1024 * MiB, seed: 1 });
  af.setFile(MID_FILE, { size: 64 * MiB, seed: 2 });
  af.setFile(SMALL_FILE, { size: 4096, seed: 3 });
  // The daemon refreshes the official source at start: give it one, so no retries run meanwhile.
  af.setJson('/artifactory/swtools/external/ncd/apps/official/source.json', { name: 'official', apps: [] });
  const { sha256: gibSha256 } = await af.digestOf(GIB_FILE);
  const daemon = await startBenchDaemon({
    allowInsecureLoopback: true,
    servers: [{ name: 'nordic', origin: af.origin }],
    officialSource: af.url('/artifactory/swtools/external/ncd/apps/official/source.json'),
  });
  const pid = daemon.child.pid as number;
  const direct = new Client(af.origin, { pipelining: 1 });
  const broker = new Client('http://localhost', { socketPath: daemon.socketPath, pipelining: 1 });
  const viaBroker = (file: string, query = ''): string => `/v1/fetch?url=${encodeURIComponent(af.url(file))}${query}`;
  const local = { host: 'localhost' };
  try {
    // Warm up (code paths compiled, connections open, the post-start GC done), then measure the
    // peak while streaming 64 MiB, and separately while streaming 1 GiB three times.
    await consume(broker, viaBroker(MID_FILE), local);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const settled = await rssOf(pid);
    await resetPeak(pid);
    await consume(broker, viaBroker(MID_FILE), local);
    const after64 = await rssOf(pid);
    await resetPeak(pid);

    // Throughput: alternate direct and broker runs; best of three each (the machine is shared).
    // The direct download asks for `bytes=0-` too, as the broker does upstream.
    const directMs: number[] = [];
    const brokerMs: number[] = [];
    let daemonCpu = 0;
    for (let i = 0; i < 3; i++) {
      const d = await consume(direct, GIB_FILE, { range: 'bytes=0-' });
      const cpu0 = await cpuMs(pid);
      const b = await consume(broker, viaBroker(GIB_FILE), local);
      daemonCpu += (await cpuMs(pid)) - cpu0;
      if (d.bytes !== 1024 * MiB || b.bytes !== 1024 * MiB) throw new Error(`short body: direct ${d.bytes}, broker ${b.bytes}`);
      directMs.push(d.ms);
      brokerMs.push(b.ms);
    }
    const after1g = await rssOf(pid);
    await resetPeak(pid);
    const bestDirect = Math.min(...directMs);
    const bestBroker = Math.min(...brokerMs);
    const ratio = bestDirect / bestBroker;

    // Verified: sha256 while streaming, last chunk withheld, body written to the cache.
    let cpu0 = await cpuMs(pid);
    const verified = await consume(broker, viaBroker(GIB_FILE, `&sha256=${gibSha256}`), local);
    const verifiedCpu = (await cpuMs(pid)) - cpu0;
    cpu0 = await cpuMs(pid);
    const cached = await consume(broker, viaBroker(GIB_FILE, `&sha256=${gibSha256}`), local);
    const cachedCpu = (await cpuMs(pid)) - cpu0;
    const afterVerified = await rssOf(pid);

    // Latency added to a small fetch: the same request direct and through the broker, interleaved.
    for (let i = 0; i < 300; i++) {
      await consume(direct, SMALL_FILE, { range: 'bytes=0-' });
      await consume(broker, viaBroker(SMALL_FILE), local);
    }
    const smallDirect: number[] = [];
    const smallBroker: number[] = [];
    for (let i = 0; i < 2000; i++) {
      smallDirect.push((await consume(direct, SMALL_FILE, { range: 'bytes=0-' })).ms);
      smallBroker.push((await consume(broker, viaBroker(SMALL_FILE), local)).ms);
    }
    smallDirect.sort((a, b) => a - b);
    smallBroker.sort((a, b) => a - b);
    const added = percentile(smallBroker, 50) - percentile(smallDirect, 50);
    const growth = after1g.peakMb - after64.peakMb;
    const mibPerSecond = (ms: number): number => (1024 * 1000) / ms;

    return [
      { name: '1 GiB direct undici download (best of 3)', value: mibPerSecond(bestDirect), unit: 'MiB/s' },
      { name: '1 GiB through the broker (best of 3)', value: mibPerSecond(bestBroker), unit: 'MiB/s' },
      { name: 'broker / direct throughput ratio', value: ratio, unit: 'x', target: '>= 0.90', ok: ratio >= 0.9 },
      { name: 'daemon CPU per GiB relayed (load-independent)', value: daemonCpu / 3, unit: 'ms' },
      { name: 'daemon RSS, warmed up and idle', value: settled.rssMb, unit: 'MB' },
      { name: 'daemon peak RSS streaming 64 MiB', value: after64.peakMb, unit: 'MB', target: '< 100 MB', ok: after64.peakMb < 100 },
      { name: 'daemon peak RSS streaming 3 x 1 GiB', value: after1g.peakMb, unit: 'MB', target: '< 100 MB', ok: after1g.peakMb < 100 },
      { name: 'peak RSS growth 64 MiB -> 1 GiB', value: growth, unit: 'MB', target: '<= 5 MB (flat)', ok: growth <= 5 },
      { name: 'daemon lifetime peak RSS (VmHWM before the first reset)', value: settled.peakMb, unit: 'MB' },
      { name: '1 GiB verified (sha256) + cache write', value: mibPerSecond(verified.ms), unit: 'MiB/s' },
      { name: '  daemon CPU for it (sha1 + sha256 + write)', value: verifiedCpu, unit: 'ms' },
      { name: '1 GiB verified, served from the cache', value: mibPerSecond(cached.ms), unit: 'MiB/s' },
      { name: '  daemon CPU for it (read + sha256)', value: cachedCpu, unit: 'ms' },
      { name: 'daemon peak RSS streaming verified + cached 1 GiB', value: afterVerified.peakMb, unit: 'MB', target: '< 100 MB', ok: afterVerified.peakMb < 100 },
      { name: '4 KiB fetch p50 direct', value: percentile(smallDirect, 50), unit: 'ms' },
      { name: '4 KiB fetch p50 through the broker', value: percentile(smallBroker, 50), unit: 'ms' },
      { name: '4 KiB fetch latency added by the broker (p50)', value: added, unit: 'ms', target: '<= 1 ms', ok: added <= 1 },
    ];
  } finally {
    await direct.close();
    await broker.close();
    await daemon.stop();
    await af.close();
  }
}
