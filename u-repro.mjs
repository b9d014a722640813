import { createServer } from 'node:net';
import { Agent } from 'undici';
const BODY = Buffer.alloc(Number(process.argv[2] ?? 64*1024), 0x61);
const server = createServer((sock) => {
  sock.once('data', () => {
    sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n`);
    sock.write(BODY);
    sock.end();
  });
});
process.on('exit', (c) => console.log('exit', c));
server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  const agent = new Agent();
  const res = await agent.request({ origin: `http://127.0.0.1:${port}`, path: '/', method: 'GET' });
  await new Promise((r) => setTimeout(r, 500));
  let n = 0;
  try { for await (const c of res.body) n += c.length; console.log('read', n); } catch (e) { console.log('body error', e.code, e.message); }
  server.close(); await agent.close();
});
