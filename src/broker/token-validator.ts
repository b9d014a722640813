import { z } from 'zod';
import type { ServerConfig } from '../protocol/config-schema.js';
import { BrokerError } from '../protocol/errors.js';
import { describeIssue } from '../protocol/zod-issues.js';
import { assertNotHtml, type UpstreamExchange } from './upstream-exchange.js';

/** `GET origin+tokenInfoPath` answer (times in unix seconds; unknown fields ignored). */
const UpstreamTokenInfoSchema = z.looseObject({
  token_id: z.string().min(1).max(512),
  subject: z.string().max(1024).optional(),
  issued_at: z.number().nonnegative().optional(),
  expiry: z.number().nonnegative().optional(),
  description: z.string().max(4096).optional(),
});

export interface ValidatedToken {
  /** Absent when the server accepted the token but would not describe it (403). */
  tokenId?: string;
  subject?: string;
  /** Epoch ms. */
  issuedAt?: number;
  /** Epoch ms; absent = does not expire (or unknown, see `metadataUnknown`). */
  expiresAt?: number;
  description?: string;
  /** `tokens/me` answered 403: the token is valid but may not read its own details. */
  metadataUnknown?: true;
}

/** Asks the server who a token belongs to (TokenService's port; wired to the one exchange). */
export type TokenValidation = (server: ServerConfig, token: string, signal?: AbortSignal) => Promise<ValidatedToken>;

/** Token validation through the daemon's one upstream exchange (late-bound: the exchange needs the TokenService). */
export function exchangeTokenValidation(exchange: () => UpstreamExchange): TokenValidation {
  return (server, token, signal) => validateToken(exchange(), server, token, signal);
}

/**
 * Asks the server who the token belongs to, through the one upstream exchange (the server's own
 * origin only, no redirect followed, the one error mapper). 401 -> TOKEN_INVALID/_EXPIRED;
 * 403 -> valid, metadata unknown; 200 with HTML -> the origin is not an Artifactory API.
 */
export async function validateToken(exchange: UpstreamExchange, server: ServerConfig, token: string, signal?: AbortSignal): Promise<ValidatedToken> {
  const answer = await exchange.tokenInfo(server, token, signal);
  if (answer.status === 403) return { metadataUnknown: true };
  if (answer.status !== 200) {
    const error = exchange.endpointError(answer);
    if (error.code === 'BROKER_TOKEN_INVALID') {
      throw new BrokerError('BROKER_TOKEN_INVALID', {
        message: `${server.origin} rejected the token; nothing was stored.`,
        hint: 'Check that you copied the whole identity token (User Profile > Generate an Identity Token), then try again.',
        details: { server: server.name },
      });
    }
    if (error.code === 'BROKER_UPSTREAM_NOT_FOUND') {
      throw new BrokerError('BROKER_UPSTREAM_NOT_FOUND', { message: error.message, hint: `Check "origin" and "tokenInfoPath" of server "${server.name}" in config.json.`, details: { status: answer.status } });
    }
    throw error;
  }
  const url = `${server.origin}${server.tokenInfoPath}`;
  const contentType = answer.headers['content-type'];
  assertNotHtml(Array.isArray(contentType) ? contentType[0] : contentType, Buffer.from(answer.text), url, server);
  let json: unknown;
  try {
    json = JSON.parse(answer.text);
  } catch {
    json = undefined;
  }
  const parsed = UpstreamTokenInfoSchema.safeParse(json);
  if (!parsed.success) {
    throw new BrokerError('BROKER_UPSTREAM_ERROR', {
      message: `${server.origin} answered the token check with an unexpected document: ${json === undefined ? 'not JSON (or too large)' : describeIssue(parsed.error.issues[0])}.`,
      hint: `Check "origin" and "tokenInfoPath" of server "${server.name}" in config.json: they must lead to the Artifactory access API.`,
      details: { status: 200, reason: 'not-json' },
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
