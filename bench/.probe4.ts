import { Client } from 'undici';
import { readFile } from 'node:fs/promises';
import { rssOf, startBenchDaemon } from './harness.js';
const d = await startBenchDaemon({}, process.env.PROBE_FLAGS === undefined ? undefined : process.env.PROBE_FLAGS.split(' ').filter(Boolean));
const dump = async (label: string) => { d.child.kill('SIGUSR2'); await new Promise((r) => setTimeout(r, 300)); console.log(label, (await rssOf(d.child.pid as number)).rssMb.toFixed(1), await readFile(`/tmp/perfwork/mem-${d.child.pid}.json`, 'utf8')); };
await new Promise((r) => setTimeout(r, 1000));
if (!process.env.ONE_DUMP) await dump('start');
const client = new Client('http://localhost', { socketPath: d.socketPath, pipelining: 1 });
for (let i = 0; i < 6000; i++) { const res = await client.request({ method: 'GET', path: '/v1/status', headers: { host: 'localhost' } }); await res.body.text(); }
await client.close();
await new Promise((r) => setTimeout(r, 2000));
await dump('after');
await d.stop();
