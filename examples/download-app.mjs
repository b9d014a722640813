#!/usr/bin/env node
// Downloads an app's verified tarball through the tokenbroker daemon, starting the daemon if
// none runs (autostart), and prints the saved file's path on stdout; progress goes to stderr.
//
//   node examples/download-app.mjs SOURCE/NAME[@VERSION] DIR
//   node examples/download-app.mjs official/pc-nrfconnect-ble@4.0.4 ~/Downloads
//
// TOKENBROKER_HOME and TOKENBROKER_SOCKET are honoured as by the CLI (the client library resolves
// the socket and state directory from the environment). Exit codes follow the CLI's (docs/errors.md).
import { mkdir } from 'node:fs/promises';
import { TokenBrokerClient } from 'tokenbroker/client';

const [spec, dir] = process.argv.slice(2);
const parsed = /^([^/@\s]+)\/([^/@\s]+)(?:@([^/@\s]+))?$/.exec(spec ?? '');
if (parsed === null || dir === undefined) {
  process.stderr.write('usage: download-app.mjs SOURCE/NAME[@VERSION] DIR\n');
  process.exit(2);
}
const [, source, name, version] = parsed;

// The library starts the daemon only when asked to.
const client = new TokenBrokerClient({ autostart: true });
let lastShown = -1;
const showProgress = ({ received, total }) => {
  if (total === undefined || total === 0) return;
  const percent = Math.floor((received / total) * 100);
  // A line every 10 % (and 100 %): readable in a log as well as on a terminal.
  if (percent === lastShown || (percent < 100 && percent - lastShown < 10)) return;
  lastShown = percent;
  process.stderr.write(`${source}/${name}: ${percent}% (${received} of ${total} bytes)\n`);
};

const download = () => client.downloadApp(source, name, dir, { ...(version === undefined ? {} : { version }), onProgress: showProgress });

try {
  await mkdir(dir, { recursive: true });
  let result;
  try {
    result = await download();
  } catch (err) {
    // A daemon that has just started may not have read the source's index yet: refresh it once.
    if (err?.code !== 'BROKER_NOT_FOUND') throw err;
    await client.refreshSources({ id: source });
    result = await download();
  }
  if (result.app.withdrawn) process.stderr.write(`note: ${source}/${name} has been withdrawn from its source\n`);
  process.stdout.write(`${result.path}\n`);
} catch (err) {
  process.stderr.write(`download-app: ${err instanceof Error ? err.message : String(err)}\n`);
  if (typeof err?.hint === 'string') process.stderr.write(`hint: ${err.hint}\n`);
  process.exitCode = typeof err?.exitCode === 'number' ? err.exitCode : 1;
} finally {
  await client.close();
}
