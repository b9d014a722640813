import { rm } from 'node:fs/promises';
import { afterAll, afterEach } from 'vitest';
import { makeTempHome, startTestDaemon, type TestDaemon, type TestDaemonOptions } from './test-daemon.js';

/**
 * Temp homes of one test file, removed after each test (or after the file, `after: 'all'`).
 * Call at the top of the file: it registers the hook.
 */
export function useTempHomes(options: { prefix?: string; after?: 'each' | 'all' } = {}): () => Promise<string> {
  const homes: string[] = [];
  (options.after === 'all' ? afterAll : afterEach)(async () => {
    await Promise.all(homes.splice(0).map((home) => rm(home, { recursive: true, force: true })));
  });
  return async () => {
    const home = await makeTempHome(options.prefix);
    homes.push(home);
    return home;
  };
}

/**
 * Daemons (and temp homes) of one test file, stopped and removed after each test: the daemons
 * first, then the homes they may have used. Call at the top of the file: it registers the hook.
 */
export function useTestDaemons(): { start(options?: TestDaemonOptions): Promise<TestDaemon>; tempHome(): Promise<string> } {
  const daemons: TestDaemon[] = [];
  const homes: string[] = [];
  afterEach(async () => {
    await Promise.all(daemons.splice(0).map((daemon) => daemon.cleanup()));
    await Promise.all(homes.splice(0).map((home) => rm(home, { recursive: true, force: true })));
  });
  return {
    async start(options = {}) {
      const daemon = await startTestDaemon(options);
      daemons.push(daemon);
      return daemon;
    },
    async tempHome() {
      const home = await makeTempHome();
      homes.push(home);
      return home;
    },
  };
}
