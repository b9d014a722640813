/** `tokenbroker/client`: the typed client library for desktop apps and the CLI. */
export { TokenBrokerClient, DaemonUnavailableError, isDaemonUnavailable, type TokenBrokerClientOptions } from './client.js';
export { UntrustedSocketError, isUntrustedSocket, inspectOwnerSocket, type SocketFinding } from './socket-trust.js';
export { BrokerError, isBrokerError, ERRORS, type ErrorCode, type ErrorEnvelope } from '../protocol/errors.js';
export type { Status } from '../protocol/status.js';
export type { ConfigView } from '../protocol/config-api.js';
export type { TokenView, TokenRemoved, TokenState, SecretStoreStatus } from '../protocol/token.js';
export type { BrokerEvent, EventType } from '../protocol/events.js';
export type { SourceView, SourceState, SourceProblem, SourceRefreshResult, SourceRemoved, SourceAdded, AppView, AppVersion, AppDetail, AppTarball, SourcesStatus } from '../protocol/sources.js';
export { VERSION } from '../protocol/version.js';
export type { FetchOptions, FetchResult, DownloadOptions, DownloadProgress, DownloadResult } from './fetch.js';
export type { FetchRecord } from '../protocol/fetch.js';
export {
  CLIENT_SCOPES,
  type ClientScope,
  type ClientTokenScope,
  type ClientTokenView,
  type CreateClientTokenBody,
  type CreatedClientToken,
  type RevokedClientToken,
} from '../protocol/client-tokens.js';
export type { DownloadRequest, DownloadOutcome, DownloadProgressView, DownloadState, VerifiedBy } from '../protocol/downloads.js';
export { isDownloadCancelled } from '../protocol/downloads.js';
