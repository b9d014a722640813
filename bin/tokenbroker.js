#!/usr/bin/env node
// The installed entry point: runs the compiled CLI (tsx is for development and tests only).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/run.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('tokenbroker: the compiled CLI is missing (dist/). Run `npm run build` in the package directory.\n');
  process.exit(1);
}
await import(entry.href);
