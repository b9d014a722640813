/** The daemon's and client's version; a test keeps it equal to package.json's. */
export const VERSION = '0.1.0';

/** Sent on every response; the client warns when it differs from its own VERSION. */
export const VERSION_HEADER = 'x-tokenbroker-version';
