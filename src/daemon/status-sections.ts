import type { ClientTokenService } from '../broker/client-tokens.js';
import type { SourceService } from '../broker/source-service.js';
import type { CacheStatus, CoreDumpsStatus, ListenerStatus, StatusSections } from '../protocol/status.js';
import type { SecretStoreStatus } from '../protocol/token.js';

/** Where each section of `GET /v1/status` comes from; main.ts wires the real ones, tests small ones. */
export interface StatusSources {
  secretStore(): SecretStoreStatus;
  sources: Pick<SourceService, 'statusSection'>;
  clientTokens: Pick<ClientTokenService, 'count'>;
  /** Read at each call: extra listeners open after the server is built. */
  listeners(): readonly ListenerStatus[];
  cache(): Promise<CacheStatus>;
  /** Where the platform has core-file limits (Linux reads /proc/self/limits). */
  coreDumps(): Promise<CoreDumpsStatus>;
}

/** The services' part of status, typed against the protocol's one StatusSchema. */
export function statusSections(from: StatusSources): () => Promise<StatusSections> {
  return async () => ({
    secretStore: from.secretStore(),
    // No object spread on this path (see status-routes.ts).
    sources: from.sources.statusSection().sources,
    listeners: [...from.listeners()],
    clientTokens: { count: from.clientTokens.count },
    cache: await from.cache(),
    coreDumps: await from.coreDumps(),
  });
}
