import { readdir } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'undici';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { OFFICIAL_BASE, publishSource } from '../helpers/app-sources.js';
import { recordFigure } from '../helpers/figures.js';
import { startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';

/** Faults against the real daemon: whatever the upstream does, the client gets an answer or an aborted body, never a hang. */
const PUBLIC = '/artifactory/swtools/external/faults';

describe('faults (real daemon)', () => {
  let af: FakeArtifactory;
  let daemon: TestDaemon;
  let http: Client;
  const fetchPath = (path: string) => `/v1/fetch?url=${encodeURIComponent(af.url(path))}`;
  const fds = async () => (await readdir(`/proc/${daemon.pid}/fd`)).length;

  beforeAll(async () => {
    af = await startFakeArtifactory();
    const official = publishSource(af, OFFICIAL_BASE, { name: 'official', apps: ['pc-nrfconnect-ble'] });
    af.setFile(`${PUBLIC}/big.bin`, { size: 64 * 1024 * 1024, seed: 3 });
    af.setFile(`${PUBLIC}/small.bin`, Buffer.alloc(1000, 1));
    daemon = await startTestDaemon({
      config: { allowInsecureLoopback: true, secretStore: 'memory', logLevel: 'warn', servers: [{ name: 'nordic', origin: af.origin }], officialSource: official.sourceUrl, timeouts: { connectMs: 2000, headersMs: 1500, bodyIdleMs: 1000 } },
    });
    http = new Client('http://localhost', { socketPath: daemon.socketPath });
  });
  afterAll(async () => {
    await http.close();
    await daemon.cleanup();
    await af.close();
  });

  it('an upstream that stalls mid-body: the idle timeout fires and the client body ends with an error, not a hang', async () => {
    af.setFault(`${PUBLIC}/big.bin`, { kind: 'stall', afterBytes: 100_000 }, { times: 1 });
    const res = await http.request({ method: 'GET', path: fetchPath(`${PUBLIC}/big.bin`), headers: { host: 'localhost' } });
    expect(res.statusCode).toBe(200);
    const outcome = await res.body.arrayBuffer().then(
      () => 'complete',
      () => 'aborted',
    );
    expect(outcome).toBe('aborted');
    const record = await daemon.client.fetchOutcome(String(res.headers['x-tokenbroker-request-id']));
    expect(record.outcome).toBe('timeout');
  });

  it('an upstream that never answers: an envelope after the header timeout', async () => {
    af.setFault(`${PUBLIC}/small.bin`, { kind: 'hang' }, { times: 1 });
    const res = await http.request({ method: 'GET', path: fetchPath(`${PUBLIC}/small.bin`), headers: { host: 'localhost' } });
    expect(res.statusCode).toBe(502);
    expect(JSON.parse(await res.body.text())).toMatchObject({ error: { code: 'BROKER_UPSTREAM_UNREACHABLE', details: { reason: 'headers-timeout' } } });
  });

  it('a garbage status line: an envelope, and the daemon keeps serving', async () => {
    af.setFault(`${PUBLIC}/small.bin`, { kind: 'garbage' }, { times: 1 });
    const res = await http.request({ method: 'GET', path: fetchPath(`${PUBLIC}/small.bin`), headers: { host: 'localhost' } });
    expect(res.statusCode).toBe(502);
    expect(JSON.parse(await res.body.text())).toMatchObject({ error: { code: 'BROKER_UPSTREAM_UNREACHABLE' } });
    const again = await http.request({ method: 'GET', path: fetchPath(`${PUBLIC}/small.bin`), headers: { host: 'localhost' } });
    expect(again.statusCode).toBe(200);
    expect((await again.body.arrayBuffer()).byteLength).toBe(1000);
  });

  it('a storm of 5xx: one upstream request per client request, and the refresh backs off', async () => {
    af.setFault(`${PUBLIC}/small.bin`, { kind: 'status', status: 503 });
    af.clearRequests();
    for (let i = 0; i < 5; i++) {
      const res = await http.request({ method: 'GET', path: fetchPath(`${PUBLIC}/small.bin`), headers: { host: 'localhost' } });
      expect(JSON.parse(await res.body.text())).toMatchObject({ error: { code: 'BROKER_UPSTREAM_ERROR', details: { status: 503 } } });
    }
    expect(af.requestsTo(`${PUBLIC}/small.bin`)).toHaveLength(5);
    af.clearFaults(`${PUBLIC}/small.bin`);

    af.setFault(`${OFFICIAL_BASE}/source.json`, { kind: 'status', status: 500 });
    af.clearRequests();
    await daemon.client.refreshSources({ id: 'official' }).catch(() => undefined);
    // The scheduler retries on its own: failure 1 waits exactly 1 s, failure 2 in [1 s, 2 s]
    // (the growth of the backoff is proven with a fake clock in refresh-scheduler.test.ts; here
    // the real timers). Wait for the manual attempt and two retries, then check the gaps.
    const retries = 2;
    await expect.poll(() => af.requestsTo(`${OFFICIAL_BASE}/source.json`).length, { timeout: 15_000, interval: 100 }).toBeGreaterThanOrEqual(1 + retries);
    const at = af.requestsTo(`${OFFICIAL_BASE}/source.json`).map((r) => r.at);
    const gaps = at.slice(1, 1 + retries).map((time, i) => time - (at[i] ?? 0));
    recordFigure('5xx storm: gaps between source.json retries while it always answers 500 (ms)', gaps.join(', '));
    // Timers never fire early: every gap is at least the 1 s floor (less a little for the upstream's
    // own timestamping), so a storm of failures is never retried at event-loop speed.
    expect(gaps).toHaveLength(retries);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(950);
    af.clearFaults();
    const sources = await daemon.client.sources();
    expect(sources.find((s) => s.name === 'official')?.state).toBe('failing');
    expect((await daemon.client.apps()).map((a) => a.name)).toContain('pc-nrfconnect-ble');
  }, 20_000);

  it('a client that disconnects mid-download: the upstream request is aborted and no descriptor leaks', async () => {
    const baseline = await fds();
    for (let i = 0; i < 5; i++) {
      const openBefore = af.openConnections;
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest({ socketPath: daemon.socketPath, path: fetchPath(`${PUBLIC}/big.bin`), headers: { host: 'localhost' } }, (res) => {
          let got = 0;
          res.on('data', (chunk: Buffer) => {
            got += chunk.length;
            if (got > 1024 * 1024) {
              req.destroy();
              resolve();
            }
          });
          res.on('error', () => undefined);
        });
        req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
        req.end();
      });
      await expect.poll(() => af.openConnections, { timeout: 5000 }).toBeLessThanOrEqual(openBefore);
    }
    await expect.poll(fds, { timeout: 5000 }).toBeLessThanOrEqual(baseline + 1);
    recordFigure('client disconnects mid-download: daemon descriptors before -> after 5 aborts', `${baseline} -> ${await fds()}`);
  });
});
