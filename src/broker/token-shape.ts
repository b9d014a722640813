/**
 * What the token's own shape says (DESIGN section 4, JFrog facts), before and without the server:
 * - a reference token (the identity token from the profile page): 64 characters starting
 *   `cmVmdGtu`, base64 of `reftkn:01:<expiry unix seconds, 0 = none>:<random>`;
 * - an access token: a JWT whose payload has an `exp` claim (unix seconds).
 * Anything else is "unknown": not refused, the server decides.
 */

export type TokenShape =
  | { readonly kind: 'reference'; readonly expiresAt?: number }
  | { readonly kind: 'jwt'; readonly expiresAt?: number }
  | { readonly kind: 'unknown' };

const REFERENCE_PREFIX = 'cmVmdGtu';
const REFERENCE_LENGTH = 64;
const REFERENCE_CONTENT = /^reftkn:01:(\d{1,12}):/;
const BASE64URL_SEGMENT = /^[A-Za-z0-9_-]+={0,2}$/;

/** The token's kind and, when it says, its expiry in epoch ms (absent = does not expire or not said). */
export function tokenShape(token: string): TokenShape {
  if (token.length === REFERENCE_LENGTH && token.startsWith(REFERENCE_PREFIX)) {
    const match = REFERENCE_CONTENT.exec(Buffer.from(token, 'base64').toString('latin1'));
    if (match !== null) {
      const seconds = Number(match[1]);
      return seconds === 0 ? { kind: 'reference' } : { kind: 'reference', expiresAt: seconds * 1000 };
    }
  }
  const parts = token.split('.');
  if (parts.length === 3 && parts.every((part) => BASE64URL_SEGMENT.test(part))) {
    const header = parseJson(parts[0] as string);
    const payload = parseJson(parts[1] as string);
    if (header !== undefined && payload !== undefined) {
      const exp = payload.exp;
      return typeof exp === 'number' && Number.isFinite(exp) && exp > 0 ? { kind: 'jwt', expiresAt: exp * 1000 } : { kind: 'jwt' };
    }
  }
  return { kind: 'unknown' };
}

function parseJson(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
