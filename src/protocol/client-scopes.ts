/** The scopes a client token can carry (DESIGN section 8), without zod: the client library exports them. */
export const CLIENT_SCOPES = ['status:read', 'sources:read', 'sources:write', 'fetch', 'download', 'token:write'] as const;
export type ClientScope = (typeof CLIENT_SCOPES)[number];
