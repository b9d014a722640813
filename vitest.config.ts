import { defineConfig } from 'vitest/config';

// Two projects, one run: `unit` needs no build and starts no process (pure functions, fastify
// inject, in-process servers); `e2e` runs the compiled daemon and CLI, so only it builds dist/.
export default defineConfig({
  test: {
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['tests/unit/**/*.test.ts'], testTimeout: 20_000, hookTimeout: 20_000 },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['tests/e2e/**/*.test.ts'],
          globalSetup: ['tests/setup/global-setup.ts'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
    ],
  },
});
