import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';

/**
 * THE owned-path check ("mine, not a symlink, safe mode"): the daemon's private directories, an
 * extra listener's directory, the owner's socket and its directory (client side), config.json and
 * its directory, the plaintext secrets file, a download's `.part` files. Each caller words its
 * own error (a ConfigError, a PrivateDirError, a BrokerError, a finding of diagnose); the rule
 * is decided here, once.
 */

export type OwnedKind = 'directory' | 'file' | 'socket';

export interface OwnedPathRule {
  /** What must be there (unset: anything that is not a symlink, e.g. a config file read through its link). */
  kind?: OwnedKind;
  /** Permission bits that must be clear: 0o022 (nobody else may write) or 0o077 (private). */
  closedBits: number;
  /** Owners accepted besides the user: `[0]` for config files, as ssh accepts root's. */
  alsoOwnedBy?: readonly number[];
}

export type OwnedPathProblem =
  | { problem: 'symlink' }
  | { problem: 'wrong-kind'; kind: OwnedKind }
  | { problem: 'foreign-owner'; owner: number; uid: number }
  | { problem: 'open-mode'; mode: string; bits: number };

/** `0755`: the permission bits as ls -l's octal. */
export function modeText(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0');
}

/**
 * Judges stats already taken: `lstat` of a path (then a symlink is refused), or `stat` of an open
 * handle (the very file read). Without uids (Windows) owner and mode are not compared.
 */
export function ownedPathProblem(info: Stats, rule: OwnedPathRule, uid: number | null | undefined = process.getuid?.()): OwnedPathProblem | undefined {
  if (info.isSymbolicLink()) return { problem: 'symlink' };
  if (rule.kind !== undefined && !isKind(info, rule.kind)) return { problem: 'wrong-kind', kind: rule.kind };
  // null: no uids on this platform (an undefined argument takes the default, the process's uid).
  if (uid === undefined || uid === null) return undefined;
  if (info.uid !== uid && !(rule.alsoOwnedBy ?? []).includes(info.uid)) return { problem: 'foreign-owner', owner: info.uid, uid };
  if ((info.mode & rule.closedBits) !== 0) return { problem: 'open-mode', mode: modeText(info.mode), bits: info.mode & 0o777 };
  return undefined;
}

/** `lstat` + `ownedPathProblem`; `undefined` when nothing is there. Other lstat errors are thrown. */
export async function inspectOwnedPath(target: string, rule: OwnedPathRule, uid: number | undefined = process.getuid?.()): Promise<{ info: Stats; problem: OwnedPathProblem | undefined } | undefined> {
  let info: Stats;
  try {
    info = await lstat(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return { info, problem: ownedPathProblem(info, rule, uid) };
}

function isKind(info: Stats, kind: OwnedKind): boolean {
  return kind === 'directory' ? info.isDirectory() : kind === 'file' ? info.isFile() : info.isSocket();
}
