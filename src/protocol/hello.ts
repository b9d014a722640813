import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The hello handshake (DESIGN section 2): at each start the daemon writes a fresh random key to
 * `state/daemon.key` (0600), and a client of the owner's socket asks `GET /v1/hello?nonce=N`
 * before sending anything else on a new connection. Only a process that can read the key can
 * answer `HMAC-SHA256(key, N)`: on Windows this is what stops another user's process that squats
 * the named pipe from receiving a token; on Unix it backs up the socket's ownership checks.
 */
export const HELLO_PATH = '/v1/hello';

/** The key file's name in the state directory. It holds the key as 64 hex digits and a newline. */
export const DAEMON_KEY_FILE = 'daemon.key';

/** 32 random bytes. */
export const DAEMON_KEY_BYTES = 32;

/** What a nonce may look like: hex or base64url, 16 to 128 characters (clients send 32 hex digits). */
export const HELLO_NONCE = /^[A-Za-z0-9_-]{16,128}$/;

/** The answer's `mac`: lower-case hex of HMAC-SHA256 under the key's bytes, over the nonce's UTF-8. */
export function helloMac(key: Uint8Array, nonce: string): string {
  return createHmac('sha256', key).update(nonce, 'utf8').digest('hex');
}

/** Compares an answer with the expected mac in constant time. */
export function helloMacMatches(key: Uint8Array, nonce: string, mac: unknown): boolean {
  if (typeof mac !== 'string' || !/^[0-9a-f]{64}$/.test(mac)) return false;
  return timingSafeEqual(Buffer.from(helloMac(key, nonce), 'hex'), Buffer.from(mac, 'hex'));
}

/** The key file's text for `key`, and back (undefined for anything that is not exactly a key). */
export function encodeDaemonKey(key: Uint8Array): string {
  return `${Buffer.from(key).toString('hex')}\n`;
}

export function decodeDaemonKey(text: string): Buffer | undefined {
  const hex = text.trim();
  return new RegExp(`^[0-9a-f]{${DAEMON_KEY_BYTES * 2}}$`).test(hex) ? Buffer.from(hex, 'hex') : undefined;
}
