import { Client } from 'undici';
import { median, percentile, rssOf, startBenchDaemon, type BenchRow } from './harness.js';

/** Foundation figures: status latency over the socket, start-to-ready, idle RSS. */
export async function benchStatus(): Promise<BenchRow[]> {
  const readyRuns: number[] = [];
  for (let i = 0; i < 5; i++) {
    const d = await startBenchDaemon();
    readyRuns.push(d.readyMs);
    await d.stop();
  }

  const daemon = await startBenchDaemon();
  try {
    const client = new Client('http://localhost', { socketPath: daemon.socketPath, pipelining: 1 });
    const once = async (): Promise<number> => {
      const t0 = performance.now();
      const res = await client.request({ method: 'GET', path: '/v1/status', headers: { host: 'localhost' } });
      await res.body.text();
      return performance.now() - t0;
    };
    for (let i = 0; i < 1000; i++) await once();
    const samples: number[] = [];
    for (let i = 0; i < 5000; i++) samples.push(await once());
    samples.sort((a, b) => a - b);
    await client.close();
    await new Promise((r) => setTimeout(r, 2000));
    const { rssMb, peakMb } = await rssOf(daemon.child.pid as number);
    const p50 = percentile(samples, 50);
    const readyMs = median(readyRuns);
    return [
      { name: 'GET /v1/status p50 (keep-alive, socket)', value: p50, unit: 'ms', target: '<= 0.3 ms', ok: p50 <= 0.3 },
      { name: 'GET /v1/status p99', value: percentile(samples, 99), unit: 'ms' },
      { name: 'daemon start to socket ready (median of 5)', value: readyMs, unit: 'ms', target: '<= 300 ms', ok: readyMs <= 300 },
      { name: 'idle RSS after 6000 requests', value: rssMb, unit: 'MB', target: '<= 60 MB', ok: rssMb <= 60 },
      { name: 'peak RSS so far', value: peakMb, unit: 'MB' },
    ];
  } finally {
    await daemon.stop();
  }
}
