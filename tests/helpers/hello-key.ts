import { mkdir } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createDaemonKey, writeDaemonKey } from '../../src/node/daemon-key.js';
import { helloMac } from '../../src/protocol/hello.js';

/**
 * For stand-in daemons: a key in `stateDir/daemon.key` (as the daemon writes one at start) and a
 * request handler wrapper that answers `GET /v1/hello` with it, as the real daemon does.
 */
export async function withHelloKey(stateDir: string): Promise<{ key: Buffer; answer: (handler: (req: IncomingMessage, res: ServerResponse) => void) => (req: IncomingMessage, res: ServerResponse) => void }> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const key = createDaemonKey();
  await writeDaemonKey(stateDir, key);
  return {
    key,
    answer: (handler) => (req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname === '/v1/hello') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ mac: helloMac(key, url.searchParams.get('nonce') ?? '') }));
        return;
      }
      handler(req, res);
    },
  };
}
