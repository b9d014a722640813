import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface TestCerts {
  /** PEM of the test CA: what caFile / NODE_EXTRA_CA_CERTS point to. */
  caFile: string;
  key: Buffer;
  cert: Buffer;
}

/** A throwaway CA and a leaf for 127.0.0.1/localhost signed by it (openssl CLI; EC keys are quick). */
export async function makeTestCerts(dir: string): Promise<TestCerts> {
  const file = (name: string): string => path.join(dir, name);
  const openssl = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=tokenbroker test CA']);
  openssl(['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=127.0.0.1']);
  await writeFile(file('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'ext.cnf']);
  return { caFile: file('ca.pem'), key: await readFile(file('leaf.key')), cert: await readFile(file('leaf.pem')) };
}

/** An https server on 127.0.0.1 that answers every GET with `body` (enough to test trust). */
export async function startHttpsFileServer(certs: TestCerts, body: string): Promise<{ origin: string; close(): Promise<void> }> {
  const server: Server = createHttpsServer({ key: certs.key, cert: certs.cert }, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `https://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
