import { spawnSync } from 'node:child_process';
import { describe, it } from 'vitest';

export function findTool(name: string): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', name], { encoding: 'utf8' });
  return found.status === 0 && found.stdout.trim() !== '' ? found.stdout.trim() : undefined;
}

/**
 * A test that needs something of its machine (root, Linux, a tool). Locally without it the test
 * is skipped (and counted as skipped in the totals line), but in CI (CI=true) it fails: a check
 * that silently disappears from the pipeline is worse than none.
 */
export function itWhen(available: boolean, requirement: string, title: string, fn: () => Promise<void>, timeoutMs?: number): void {
  if (available) {
    it(title, fn, timeoutMs);
  } else if (process.env.CI === 'true') {
    it(title, () => {
      throw new Error(`This check needs ${requirement}, and CI=true requires it to run.`);
    });
  } else {
    it.skip(`${title} (needs ${requirement})`, fn);
  }
}

/** A block of tests that needs something of its machine: see itWhen. */
export function describeWhen(available: boolean, requirement: string, title: string, fn: () => void): void {
  if (available) {
    describe(title, fn);
  } else if (process.env.CI === 'true') {
    describe(title, () => {
      it(`needs ${requirement}`, () => {
        throw new Error(`These checks need ${requirement}, and CI=true requires them to run.`);
      });
    });
  } else {
    describe.skip(`${title} (needs ${requirement})`, fn);
  }
}

/** A test that needs external tools (systemd's): see itWhen. */
export function itWithTools(tools: string[], title: string, fn: () => Promise<void>, timeoutMs?: number): void {
  const missing = tools.filter((tool) => findTool(tool) === undefined);
  itWhen(missing.length === 0, `${missing.join(', ')} (Debian/Ubuntu: bash scripts/setup.sh installs them)`, title, fn, timeoutMs);
}

/** Running as root (chown to another user, other users' directories). */
export const isRoot = process.getuid?.() === 0;
export const isLinux = process.platform === 'linux';
