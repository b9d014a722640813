import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'undici';
import { MAX_CLIENT_TOKENS } from '../src/broker/client-tokens.js';
import { percentile, startBenchDaemon, type BenchRow } from './harness.js';

/**
 * The cost of the client-token check on an extra listener: GET /v1/status on the owner's socket
 * versus the shared one, with the maximum number of client tokens stored (verification compares
 * against every stored hash, so this is the worst case).
 */
export async function benchClientTokens(): Promise<BenchRow[]> {
  // The shared socket lives outside the bench daemon's home (which is created by the harness).
  const home = await mkdtemp(path.join(os.tmpdir(), 'tbb-l-'));
  const shared = path.join(home, 'shared', 'tb.sock');
  const bench = await startBenchDaemon({ listeners: [{ path: shared, mode: '0660' }] });
  try {
    const owner = new Client('http://localhost', { socketPath: bench.socketPath });
    let token = '';
    for (let i = 0; i < MAX_CLIENT_TOKENS; i++) {
      const res = await owner.request({ method: 'POST', path: '/v1/client-tokens', headers: { host: 'localhost', 'content-type': 'application/json' }, body: JSON.stringify({ description: `bench ${i}`, scope: ['status:read'] }) });
      token = ((await res.body.json()) as { token: string }).token;
    }
    const extra = new Client('http://localhost', { socketPath: shared });
    const measure = async (client: Client, headers: Record<string, string>): Promise<number[]> => {
      const once = async (): Promise<number> => {
        const t0 = performance.now();
        const res = await client.request({ method: 'GET', path: '/v1/status', headers: { host: 'localhost', ...headers } });
        await res.body.text();
        if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
        return performance.now() - t0;
      };
      for (let i = 0; i < 500; i++) await once();
      const samples: number[] = [];
      for (let i = 0; i < 3000; i++) samples.push(await once());
      return samples.sort((a, b) => a - b);
    };
    const ownerSamples = await measure(owner, {});
    const extraSamples = await measure(extra, { authorization: `Bearer ${token}` });
    await owner.close();
    await extra.close();
    const p50Owner = percentile(ownerSamples, 50);
    const p50Extra = percentile(extraSamples, 50);
    return [
      { name: 'GET /v1/status p50, owner socket', value: p50Owner, unit: 'ms' },
      { name: `GET /v1/status p50, extra listener, ${MAX_CLIENT_TOKENS} tokens stored`, value: p50Extra, unit: 'ms', target: '<= owner + 0.1 ms', ok: p50Extra <= p50Owner + 0.1 },
      { name: 'GET /v1/status p99, extra listener', value: percentile(extraSamples, 99), unit: 'ms' },
    ];
  } finally {
    await bench.stop();
    await rm(home, { recursive: true, force: true });
  }
}
