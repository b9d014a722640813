import { readdir, readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'undici';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { appsListed, OFFICIAL_BASE, publishSource } from '../helpers/app-sources.js';
import { recordFigure } from '../helpers/figures.js';
import { startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';

/**
 * Load held: CLIENTS concurrent keep-alive clients each send REQUESTS mixed requests to the real
 * daemon. Zero errors; the daemon's descriptors return to baseline and its RSS stays bounded.
 * The default suite sends 30 per client (3 000 requests, each kind 500 times: every check, a
 * fraction of the time); `npm run soak` and `npm run reliability` run 100 x 1000 (LOAD_REQUESTS).
 */
const CLIENTS = 100;
const REQUESTS = Number(process.env.LOAD_REQUESTS ?? 30);

async function fdCount(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}
async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1]) / 1024;
}

/** The mix: what desktop apps do all day. Each entry is [path, expected status]. */
export function requestMix(af: FakeArtifactory): [string, number][] {
  return [
    ['/v1/status', 200],
    ['/v1/token', 200],
    [`/v1/fetch?url=${encodeURIComponent(af.url('/artifactory/swtools/external/small.bin'))}`, 200],
    ['/v1/apps', 200],
    ['/v1/sources', 200],
    ['/v1/nope', 404],
  ];
}

describe('load', () => {
  let af: FakeArtifactory;
  let daemon: TestDaemon;
  beforeAll(async () => {
    af = await startFakeArtifactory();
    af.setFile('/artifactory/swtools/external/small.bin', Buffer.alloc(4096, 7));
    const official = publishSource(af, OFFICIAL_BASE, { name: 'official', apps: ['pc-nrfconnect-ble', 'pc-nrfconnect-ppk'] });
    daemon = await startTestDaemon({ config: { allowInsecureLoopback: true, secretStore: 'memory', logLevel: 'warn', servers: [{ name: 'nordic', origin: af.origin }], officialSource: official.sourceUrl } });
    await appsListed(daemon.client, 2);
  });
  afterAll(async () => {
    await daemon.cleanup();
    await af.close();
  });

  it(
    `${CLIENTS} concurrent clients x ${REQUESTS} mixed requests: no errors, descriptors back to baseline, RSS bounded`,
    async () => {
      const mix = requestMix(af);
      const baselineFds = await fdCount(daemon.pid);
      const errors: string[] = [];
      let done = 0;
      const t0 = Date.now();
      await Promise.all(
        Array.from({ length: CLIENTS }, async (_, c) => {
          const client = new Client('http://localhost', { socketPath: daemon.socketPath });
          try {
            for (let i = 0; i < REQUESTS; i++) {
              const [path, expected] = mix[(c + i) % mix.length] as [string, number];
              const res = await client.request({ method: 'GET', path, headers: { host: 'localhost' } });
              const body = await res.body.arrayBuffer();
              if (res.statusCode !== expected) errors.push(`${path} -> ${res.statusCode} ${Buffer.from(body).toString().slice(0, 200)}`);
              done++;
            }
          } finally {
            await client.close();
          }
        }),
      );
      const seconds = (Date.now() - t0) / 1000;
      expect(errors.slice(0, 5)).toEqual([]);
      expect(done).toBe(CLIENTS * REQUESTS);
      // Connections closed by the clients must be released by the daemon.
      await expect.poll(() => fdCount(daemon.pid), { timeout: 10_000, interval: 200 }).toBeLessThanOrEqual(baselineFds + 2);
      const rss = await rssMb(daemon.pid);
      expect(rss).toBeLessThan(400);
      const fdsAfter = await fdCount(daemon.pid);
      recordFigure('load: concurrent clients x requests each', `${CLIENTS} x ${REQUESTS}`);
      recordFigure('load: requests completed / errors', `${done} / ${errors.length}`);
      recordFigure('load: throughput', Math.round(done / seconds), 'req/s');
      recordFigure('load: daemon open descriptors before -> after', `${baselineFds} -> ${fdsAfter}`);
      recordFigure('load: daemon RSS after the run', rss.toFixed(0), 'MB');
      console.log(`load: ${done} requests in ${seconds.toFixed(1)} s (${Math.round(done / seconds)} req/s), daemon RSS ${rss.toFixed(0)} MB, fds ${baselineFds} -> ${await fdCount(daemon.pid)}`);
    },
    180_000,
  );
});
