/**
 * `tokenbroker/client`: the typed client library for desktop apps and the CLI. Loading it loads
 * neither undici nor zod (the schemas come with the first answer that is checked).
 */
export { TokenBrokerClient, LOCAL_REQUEST_TIMEOUT_MS, type TokenBrokerClientOptions } from './client.js';
export { DaemonUnavailableError, isDaemonUnavailable, DaemonNotAnsweringError, AutostartError, UntrustedSocketError, isUntrustedSocket, UnverifiedDaemonError } from './client-errors.js';
export type { AutostartOptions, DaemonStarted } from './autostart.js';
export { inspectOwnerSocket, type SocketFinding } from './socket-trust.js';
export { BrokerError, isBrokerError, ERRORS, ClientError, CLIENT_ERRORS, exitCodeOf, type ErrorCode, type ClientErrorCode, type ErrorEnvelope } from '../protocol/errors.js';
export type { Status } from '../protocol/status.js';
export type { ConfigView } from '../protocol/config-api.js';
export type { TokenView, TokenRemoved, TokenState, SecretStoreStatus } from '../protocol/token.js';
export type { BrokerEvent, EventType } from '../protocol/events.js';
export type { SourceView, SourceState, SourceProblem, SourceRefreshResult, SourceRemoved, SourceAdded, AppView, AppVersion, AppDetail, AppTarball, SourcesStatus } from '../protocol/sources.js';
export { VERSION } from '../protocol/version.js';
export type { FetchOptions, FetchResult, DownloadOptions, DownloadProgress, DownloadResult } from './fetch.js';
export type { FetchRecord } from '../protocol/fetch.js';
export { CLIENT_SCOPES, type ClientScope } from '../protocol/client-scopes.js';
export type { ClientTokenScope, ClientTokenView, CreateClientTokenBody, CreatedClientToken, RevokedClientToken } from '../protocol/client-tokens.js';
export type { DownloadRequest, DownloadOutcome, DownloadProgressView, DownloadState, VerifiedBy } from '../protocol/downloads.js';
export { isDownloadCancelled } from '../protocol/download-cancelled.js';
