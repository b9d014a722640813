import { BrokerError } from '../protocol/errors.js';
import type { TokenAccess } from '../broker/token-access.js';

/**
 * PLACEHOLDER — replaced by the token service of the token lifecycle (issue 4) when the branches
 * are merged: wire that service's TokenAccess into the FetchService in main.ts and delete this
 * file. Until then the daemon has no token, so every URL that needs one is refused with
 * BROKER_TOKEN_MISSING (public URLs work).
 */
export const placeholderTokenAccess: TokenAccess = {
  tokenFor(server: string): string {
    throw new BrokerError('BROKER_TOKEN_MISSING', { message: `No identity token is set for ${server}.`, details: { server } });
  },
  rejected(): void {
    // Nothing to mark: this placeholder never hands out a token.
  },
};
