/**
 * Every schema the client checks the daemon's answers with, in one module that client.ts loads
 * on first use (`import()`): zod costs tens of milliseconds to load, and a program that only
 * opens the client (or a CLI command that fails before any answer) should not pay for it.
 * A new call's schema is added here and named in `request()`.
 */
export { StatusSchema } from '../protocol/status.js';
export { BrokerEventSchema } from '../protocol/events.js';
export { AppDetailSchema, AppListSchema, SourceListSchema, SourceRefreshResultListSchema, SourceAddedSchema, SourceRemovedSchema } from '../protocol/sources.js';
export { FetchRecordSchema } from '../protocol/fetch.js';
export { DownloadOutcomeSchema, DownloadProgressSchema } from '../protocol/downloads.js';
export { ClientTokenListSchema, CreatedClientTokenSchema, RevokedClientTokenSchema } from '../protocol/client-tokens.js';
export { TokenRemovedSchema, TokenViewSchema } from '../protocol/token.js';
export { ConfigViewSchema } from '../protocol/config-api.js';
