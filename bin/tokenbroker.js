#!/usr/bin/env -S node --max-semi-space-size=1 --initial-old-space-size=64
// The installed entry point: runs the compiled CLI (tsx is for development and tests only). The
// bundle (dist/tokenbroker.mjs + dist/chunks/) starts about twice as fast; the plain tsc output is
// the fallback.
// --max-semi-space-size=1 (also in DAEMON_NODE_FLAGS for service units and autostart): a small
// young generation keeps the long-running daemon's RSS ~25 MB lower at no measurable cost here;
// --initial-old-space-size=64 stops a storm of mark-compacts while streaming (daemon-flags.ts).
import { existsSync } from 'node:fs';

// `daemon` without the flags above (`node bin/tokenbroker.js daemon`, npm's Windows shims):
// re-execute with them before loading the CLI, so a process that only waits (Node 20) stays
// small. src/entry.ts checks again for entries that bypass this file; the check is cheap.
if (process.argv.slice(2).includes('daemon')) {
  const reexec = new URL('../dist/node/daemon-reexec.js', import.meta.url);
  if (existsSync(reexec)) await (await import(reexec.href)).reexecDaemonWithFlags();
}

const bundle = new URL('../dist/tokenbroker.mjs', import.meta.url);
const plain = new URL('../dist/entry.js', import.meta.url);
const entry = existsSync(bundle) ? bundle : plain;
if (!existsSync(entry)) {
  process.stderr.write('tokenbroker: the compiled CLI is missing (dist/). Run `npm run build` in the package directory.\n');
  process.exit(1);
}
await import(entry.href);
