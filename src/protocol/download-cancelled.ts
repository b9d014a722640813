import { BrokerError, isBrokerError } from './errors.js';

/**
 * A cancelled download (`DELETE /v1/downloads/:id`, the client went away, Ctrl-C): the error
 * registry of the design has no code of its own for it, so it is BROKER_UPSTREAM_UNREACHABLE
 * (the family of "the download broke off, run it again to resume") with `details.reason: "client-aborted"`.
 */
export function downloadCancelled(message = 'The download was cancelled; its .part file is kept.'): BrokerError {
  return new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message, hint: 'Run the same download again to resume where it stopped.', details: { reason: 'client-aborted' } });
}

export function isDownloadCancelled(err: unknown): err is BrokerError {
  return isBrokerError(err, 'BROKER_UPSTREAM_UNREACHABLE') && err.details?.reason === 'client-aborted';
}
