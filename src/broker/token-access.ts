/**
 * What the fetch and source pipelines need from the token lifecycle. The token lifecycle
 * implements it; nothing else ever sees the raw token.
 */
export interface TokenAccess {
  /**
   * The token to put in `Authorization: Bearer` for a request to `server` that needs it. Throws a
   * BrokerError when there is none to use: BROKER_TOKEN_MISSING, BROKER_TOKEN_INVALID (an
   * upstream said 401; no retry until replaced), BROKER_TOKEN_EXPIRED (never sent upstream).
   */
  tokenFor(server: string): string;
  /**
   * An upstream answered 401 to a request that carried the token: mark it invalid. `usedToken` is
   * the token that request carried: a 401 for a token that was replaced meanwhile is ignored.
   */
  rejected(server: string, upstreamMessage: string, usedToken?: string): void;
}
