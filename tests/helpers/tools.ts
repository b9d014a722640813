import { spawnSync } from 'node:child_process';
import { it } from 'vitest';

export function findTool(name: string): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', name], { encoding: 'utf8' });
  return found.status === 0 && found.stdout.trim() !== '' ? found.stdout.trim() : undefined;
}

/**
 * A test that needs external tools (systemd's). Locally a missing tool skips it (macOS has no
 * systemd), but in CI (CI=true) it fails: a check that silently disappears is worse than none.
 */
export function itWithTools(tools: string[], title: string, fn: () => Promise<void>, timeoutMs?: number): void {
  const missing = tools.filter((tool) => findTool(tool) === undefined);
  if (missing.length === 0) {
    it(title, fn, timeoutMs);
  } else if (process.env.CI === 'true') {
    it(title, () => {
      throw new Error(`${missing.join(', ')} not found, and CI=true requires this check to run (Debian/Ubuntu: apt-get install systemd)`);
    });
  } else {
    it.skip(`${title} (needs ${missing.join(', ')})`, fn);
  }
}
