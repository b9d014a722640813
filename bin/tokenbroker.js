#!/usr/bin/env -S node --max-semi-space-size=1 --initial-old-space-size=64
// The installed entry point: runs the compiled CLI (tsx is for development and tests only). The
// bundle (dist/tokenbroker.mjs + dist/chunks/) starts about twice as fast; the plain tsc output is
// the fallback.
// --max-semi-space-size=1 (also in DAEMON_NODE_FLAGS for service units and autostart): a small
// young generation keeps the long-running daemon's RSS ~25 MB lower at no measurable cost here;
// --initial-old-space-size=64 stops a storm of mark-compacts while streaming (daemon-flags.ts).
import { existsSync } from 'node:fs';
import module from 'node:module';
import path from 'node:path';

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
await enableCompileCache();
await import(entry.href);

/**
 * Node >= 22.1 keeps V8's compiled code of the bundle between runs (every CLI command parses it
 * again otherwise), in our own cache directory, never the shared default under /tmp. Only once the
 * daemon has made that directory (private, checked): a CLI command creates nothing of its own
 * (`service install --dry-run` changes nothing). NODE_COMPILE_CACHE set by the user wins; Node 20
 * has no compile cache and skips all of this. A cache that cannot be used costs nothing but speed.
 */
async function enableCompileCache() {
  if (typeof module.enableCompileCache !== 'function' || process.env.NODE_COMPILE_CACHE !== undefined) return;
  try {
    const { currentPathInputs, resolvePaths } = await import('../dist/protocol/paths.js');
    const { cacheDir } = resolvePaths(currentPathInputs());
    if (!existsSync(cacheDir)) return;
    module.enableCompileCache(path.join(cacheDir, 'compile-cache'));
  } catch {
    // No cache: the same program, started a little slower.
  }
}
