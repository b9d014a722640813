import { describe, expect, it } from 'vitest';
import { createTokenPolicy } from '../../src/broker/policy.js';
import { UpstreamExchange } from '../../src/broker/upstream-exchange.js';
import { ConfigSchema } from '../../src/protocol/config-schema.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { useFakeArtifactory, useOtherFakeArtifactory } from '../helpers/fake-upstream.js';
import { TestTokenAccess } from '../helpers/test-token-access.js';

/**
 * Issue 21: with `publicMirrorOrigin` set (the launcher's "Mainland China server"), public URLs are
 * fetched from the mirror, and an error names the origin that actually answered, not the server's.
 */

const PUBLIC = '/artifactory/swtools/external/ncd/apps/official/source.json';
const { af: server, upstream } = await useFakeArtifactory();
const mirror = await useOtherFakeArtifactory();

function exchange(): UpstreamExchange {
  const config = ConfigSchema.parse({ allowInsecureLoopback: true, servers: [{ name: 'nordic', origin: server.origin, publicMirrorOrigin: mirror.origin }] });
  const policy = createTokenPolicy(config.servers, { allowInsecureLoopback: true });
  return new UpstreamExchange({ policy: () => policy, upstream, tokens: new TestTokenAccess('tok'), clock: new FakeClock(), userAgent: 'tokenbroker/test' });
}

describe('errors name the origin that answered', () => {
  it('a 404 and a 503 from the mirror name the mirror, in the message and in details.url', async () => {
    server.setJson(PUBLIC, { name: 'Official', apps: [] });
    const missing = await exchange().document({ url: server.url(PUBLIC), maxBytes: 1024 }).catch((err: unknown) => err);
    expect(mirror.requestsFor(PUBLIC)).toHaveLength(1);
    expect(server.requestsFor(PUBLIC)).toHaveLength(0);
    expect(missing).toMatchObject({ code: 'BROKER_UPSTREAM_NOT_FOUND', message: `The server has no file at ${mirror.url(PUBLIC)} (404).`, details: { url: mirror.url(PUBLIC) } });

    mirror.setFault(PUBLIC, { kind: 'status', status: 503 });
    const failed = await exchange().document({ url: server.url(PUBLIC), maxBytes: 1024 }).catch((err: unknown) => err);
    expect(failed).toMatchObject({ code: 'BROKER_UPSTREAM_ERROR', details: { status: 503, url: mirror.url(PUBLIC) } });
    expect((failed as Error).message).toContain(mirror.origin);
    expect((failed as Error).message).not.toContain(server.origin);
  });
});
