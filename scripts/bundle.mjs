// Bundles the CLI + daemon into one ESM file (dist/tokenbroker.mjs). Loading one file instead of
// several hundred modules roughly halves the daemon's start-to-ready time. keytar stays external
// (a native module, optional).
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/entry.js'],
  outfile: 'dist/tokenbroker.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['keytar'],
  sourcemap: 'linked',
  logLevel: 'warning',
  // Some dependencies are CommonJS and call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __tbCreateRequire } from 'node:module'; const require = __tbCreateRequire(import.meta.url);" },
});
