import Fastify from 'fastify';
const app = Fastify({ logger: process.env.MINI_LOG ? { level: 'warn' } : false });
const body = { version: '0.1.0', pid: process.pid, items: Array.from({ length: 5 }, (_, i) => ({ id: 'x' + i, state: 'ok' })) };
app.get('/v1/status', async () => ({ ...body, uptime: process.uptime() }));
await app.listen({ path: process.argv[2] });
process.stdout.write('ready\n');
