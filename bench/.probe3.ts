import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { Client } from 'undici';
import { rssOf } from './harness.js';
const sock = '/tmp/perfwork/mini.sock'; await rm(sock, { force: true });
const child = spawn(process.execPath, ['--max-semi-space-size=1', '--initial-old-space-size=64', 'bench/.mini-fastify.mjs', sock], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((r) => child.stdout!.once('data', r));
const dump = async (label: string) => { child.kill('SIGUSR2'); await new Promise((r) => setTimeout(r, 300)); console.log(label, (await rssOf(child.pid as number)).rssMb.toFixed(1), await readFile(`/tmp/perfwork/mem-${child.pid}.json`, 'utf8')); };
await new Promise((r) => setTimeout(r, 1000));
await dump('start');
const client = new Client('http://localhost', { socketPath: sock, pipelining: 1 });
for (let i = 0; i < 6000; i++) { const res = await client.request({ method: 'GET', path: '/v1/status', headers: { host: 'localhost' } }); await res.body.text(); }
await client.close();
await new Promise((r) => setTimeout(r, 2000));
await dump('after');
child.kill();
