import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The directory of this tokenbroker install (the one with package.json, bin/, systemd/, launchd/).
 *
 * Found by walking up from this module, because the code runs from three layouts: the single-file
 * bundle (dist/tokenbroker.mjs and dist/chunks/), the plain tsc output (dist/cli/...) and the sources under tsx
 * (src/cli/...). The result is an absolute path, which service units and autostart need.
 */
export function packageRoot(from: string = fileURLToPath(import.meta.url)): string {
  let dir = path.dirname(from);
  for (let depth = 0; depth < 6; depth++) {
    if (isOurPackage(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(`cannot find the tokenbroker package directory above ${from}`);
}

/** The CLI entry script that service managers and autostart run as `node <entry> daemon`. */
export function cliEntry(root: string = packageRoot()): string {
  return path.join(root, 'bin', 'tokenbroker.js');
}

function isOurPackage(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name === 'tokenbroker';
  } catch {
    return false;
  }
}
