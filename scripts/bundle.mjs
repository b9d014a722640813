// Bundles the CLI + daemon into dist/tokenbroker.mjs plus chunks in dist/chunks/. Loading a few
// files instead of several hundred modules roughly halves the daemon's start-to-ready time.
// @napi-rs/keyring stays external: it loads a prebuilt native binary (one optional package per
// platform) from its own node_modules directory, which a bundle cannot carry.
//
// Measured for issue 15 (docs/performance.md):
// - splitting: the daemon (fastify, ajv, pino, ws) is a chunk of its own, loaded by the dynamic
//   import in src/entry.ts, so every other CLI command parses about half the code; each CLI
//   command and the CLI context are chunks too (src/cli/main.ts imports only the one a run
//   invokes, issue 23), so `--version` loads commander and nothing else;
// - minifyWhitespace + minifySyntax: a third less source text for V8 to keep and parse (daemon
//   idle heap ~9 MB smaller). Identifiers are not renamed, so stack traces (--debug) keep their
//   function names; the linked source map gives the original lines.
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';

// Chunk names carry a content hash: drop those of earlier builds.
await rm('dist/chunks', { recursive: true, force: true });
await build({
  entryPoints: { tokenbroker: 'dist/entry.js' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['@napi-rs/keyring'],
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  logLevel: 'warning',
  // Some dependencies are CommonJS and call require(); give each ESM output file one.
  banner: { js: "import { createRequire as __tbCreateRequire } from 'node:module'; const require = __tbCreateRequire(import.meta.url);" },
});
