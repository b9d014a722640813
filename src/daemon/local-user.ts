import os from 'node:os';

/**
 * The local user's name, for client token subjects. os.userInfo() throws when the uid has no
 * passwd entry (common in containers); fall back to the environment, then to the uid.
 */
export function localUserName(): string {
  try {
    const name = os.userInfo().username;
    if (name !== '') return name;
  } catch {
    // No passwd entry: fall through.
  }
  return process.env.USER ?? process.env.USERNAME ?? `uid ${process.getuid?.() ?? 'unknown'}`;
}
