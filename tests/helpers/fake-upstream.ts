import { afterAll, afterEach } from 'vitest';
import { createUndiciUpstream, type UndiciUpstream } from '../../src/node/undici-upstream.js';
import type { UndiciUpstreamOptions } from '../../src/node/undici-upstream.js';
import { startFakeArtifactory, type FakeArtifactory, type FakeArtifactoryOptions } from '../fixtures/fake-artifactory.js';

/** Short enough that a `hang` fault ends a test in about a second, long enough for a loaded CI machine. */
export const TEST_UPSTREAM_TIMEOUTS: UndiciUpstreamOptions['timeouts'] = { connectMs: 1000, headersMs: 1000, bodyIdleMs: 1000 };

export interface FakeUpstream {
  af: FakeArtifactory;
  /** A real undici upstream (no proxy, no extra CA) for the test file's services. */
  upstream: UndiciUpstream;
}

/**
 * The one fake-Artifactory set-up of a test file: call it at the top level with `await`. Faults are
 * cleared after each test; both servers close after the file.
 */
export async function useFakeArtifactory(options: FakeArtifactoryOptions = {}): Promise<FakeUpstream> {
  const af = await startFakeArtifactory(options);
  const upstream = createUndiciUpstream({ timeouts: TEST_UPSTREAM_TIMEOUTS, proxy: null, caFile: null, env: {} });
  afterEach(() => af.clearFaults());
  afterAll(async () => {
    await upstream.close();
    await af.close();
  });
  return { af, upstream };
}

/** A further fake server for a file that uses useFakeArtifactory (a mirror, a third party): closes after the file. */
export async function useOtherFakeArtifactory(options: FakeArtifactoryOptions = {}): Promise<FakeArtifactory> {
  const other = await startFakeArtifactory(options);
  afterAll(() => other.close());
  return other;
}
