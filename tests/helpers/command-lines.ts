import { readdir, readFile } from 'node:fs/promises';

/**
 * Records the command line of every process on the machine (Linux /proc) until stopped, polling
 * as fast as it can: a secret passed in argv to a short-lived child (a helper the CLI or daemon
 * might spawn) is caught while it runs, not only before or after.
 */
export function watchCommandLines(): { stop(): Promise<string[]> } {
  const seen = new Set<string>();
  let stopped = false;
  const poll = (async () => {
    while (!stopped) {
      const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
      await Promise.all(
        pids.map(async (pid) => {
          const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
          if (cmdline !== '') seen.add(cmdline.split('\0').join(' ').trim());
        }),
      );
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await poll;
      return [...seen];
    },
  };
}
