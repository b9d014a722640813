import { z } from 'zod';
import type { ServerConfig } from '../protocol/config-schema.js';
import { BrokerError } from '../protocol/errors.js';
import { describeIssue } from '../protocol/zod-issues.js';
import type { Upstream } from './ports.js';
import { artifactoryMessage, readBodyCapped } from './read-body.js';
import { retryAfterSeconds } from './upstream-errors.js';

/** `GET origin+tokenInfoPath` answer (times in unix seconds; unknown fields ignored). */
const UpstreamTokenInfoSchema = z.looseObject({
  token_id: z.string().min(1).max(512),
  subject: z.string().max(1024).optional(),
  issued_at: z.number().nonnegative().optional(),
  expiry: z.number().nonnegative().optional(),
  description: z.string().max(4096).optional(),
});

export interface ValidatedToken {
  tokenId: string;
  subject?: string;
  /** Epoch ms. */
  issuedAt?: number;
  /** Epoch ms; absent = does not expire. */
  expiresAt?: number;
  description?: string;
}

const MAX_INFO_BYTES = 64 * 1024;

/**
 * Asks the server who the token belongs to. The token goes only to the server's own origin, and a
 * redirect is not followed (a token-info endpoint has no reason to redirect).
 */
export async function validateToken(upstream: Upstream, server: ServerConfig, token: string, signal?: AbortSignal): Promise<ValidatedToken> {
  const url = `${server.origin}${server.tokenInfoPath}`;
  const response = await upstream.request({
    method: 'GET',
    url,
    headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    ...(signal === undefined ? {} : { signal }),
  });
  const body = await readBodyCapped(response.body, MAX_INFO_BYTES).catch((err: unknown) => {
    throw new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `The connection to ${server.origin} broke while validating the token.`, details: { reason: 'network' }, cause: err });
  });
  const text = body.tooLarge ? '' : body.text;
  const status = response.status;
  if (status === 401) {
    const upstreamMessage = artifactoryMessage(text) ?? 'Unauthorized';
    if (/expired/i.test(upstreamMessage)) {
      throw new BrokerError('BROKER_TOKEN_EXPIRED', { message: `${server.origin} says the token has expired (${upstreamMessage}).`, details: { server: server.name } });
    }
    throw new BrokerError('BROKER_TOKEN_INVALID', {
      message: `${server.origin} rejected the token (${upstreamMessage}).`,
      hint: 'Check that you copied the whole identity token (User Profile > Generate an Identity Token), then try again.',
      details: { server: server.name },
    });
  }
  if (status === 429 || status >= 500) {
    throw new BrokerError('BROKER_UPSTREAM_UNREACHABLE', {
      message: `${server.origin} could not validate the token right now (HTTP ${status}); nothing was stored.`,
      hint: 'Try again later, or store it without validation with `tokenbroker token set --no-verify`.',
      details: { reason: 'status', status, ...retryAfterDetail(response.headers['retry-after']) },
    });
  }
  if (status === 403) {
    throw new BrokerError('BROKER_UPSTREAM_FORBIDDEN', { message: `${server.origin} refused to describe the token (HTTP 403).`, details: { server: server.name, status } });
  }
  if (status !== 200) {
    throw new BrokerError('BROKER_UPSTREAM_ERROR', {
      message: `${server.origin}${server.tokenInfoPath} answered HTTP ${status} instead of the token details.`,
      hint: `Check "tokenInfoPath" for server "${server.name}" in config.json.`,
      details: { status },
    });
  }
  let json: unknown;
  try {
    json = body.tooLarge ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = UpstreamTokenInfoSchema.safeParse(json);
  if (!parsed.success) {
    throw new BrokerError('BROKER_UPSTREAM_ERROR', {
      message: `${server.origin} answered the token check with an unexpected document: ${json === undefined ? 'not JSON (or too large)' : describeIssue(parsed.error.issues[0])}.`,
      hint: `Check "tokenInfoPath" for server "${server.name}" in config.json.`,
      details: { status },
    });
  }
  const info = parsed.data;
  return {
    tokenId: info.token_id,
    ...(info.subject === undefined ? {} : { subject: info.subject }),
    ...(info.issued_at === undefined ? {} : { issuedAt: info.issued_at * 1000 }),
    ...(info.expiry === undefined || info.expiry === 0 ? {} : { expiresAt: info.expiry * 1000 }),
    ...(info.description === undefined ? {} : { description: info.description }),
  };
}

function retryAfterDetail(header: string | string[] | undefined): { retryAfter?: number } {
  const seconds = retryAfterSeconds(header, Date.now());
  return seconds === undefined ? {} : { retryAfter: seconds };
}
