import type { Stats } from 'node:fs';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspectOwnedPath, ownedPathProblem } from '../../src/node/owned-path.js';

/** The one owned-path check (issue 19): every rule its six callers used, decided in one function. */

function stats(over: { kind?: 'directory' | 'file' | 'socket' | 'symlink'; uid?: number; mode?: number }): Stats {
  const kind = over.kind ?? 'directory';
  return {
    uid: over.uid ?? 1000,
    mode: over.mode ?? 0o700,
    isSymbolicLink: () => kind === 'symlink',
    isDirectory: () => kind === 'directory',
    isFile: () => kind === 'file',
    isSocket: () => kind === 'socket',
  } as Stats;
}

describe('ownedPathProblem', () => {
  const privateDir = { kind: 'directory', closedBits: 0o077 } as const;
  it('a directory of ours, private: no problem', () => {
    expect(ownedPathProblem(stats({}), privateDir, 1000)).toBeUndefined();
  });
  it('a symlink is refused before anything else, whatever it points at', () => {
    expect(ownedPathProblem(stats({ kind: 'symlink' }), privateDir, 1000)).toEqual({ problem: 'symlink' });
    expect(ownedPathProblem(stats({ kind: 'symlink' }), { closedBits: 0o022 }, null)).toEqual({ problem: 'symlink' });
  });
  it('the wrong kind of file', () => {
    expect(ownedPathProblem(stats({ kind: 'file' }), privateDir, 1000)).toEqual({ problem: 'wrong-kind', kind: 'directory' });
    expect(ownedPathProblem(stats({ kind: 'directory' }), { kind: 'socket', closedBits: 0o022 }, 1000)).toEqual({ problem: 'wrong-kind', kind: 'socket' });
  });
  it("another user's: refused, unless the rule accepts that owner (root, for config files)", () => {
    expect(ownedPathProblem(stats({ uid: 1001 }), privateDir, 1000)).toEqual({ problem: 'foreign-owner', owner: 1001, uid: 1000 });
    expect(ownedPathProblem(stats({ uid: 0, kind: 'file', mode: 0o644 }), { closedBits: 0o022, alsoOwnedBy: [0] }, 1000)).toBeUndefined();
    expect(ownedPathProblem(stats({ uid: 1001, kind: 'file', mode: 0o644 }), { closedBits: 0o022, alsoOwnedBy: [0] }, 1000)).toMatchObject({ problem: 'foreign-owner' });
  });
  it('open mode bits: 0o022 refuses group/world-writable, 0o077 any access by others', () => {
    expect(ownedPathProblem(stats({ mode: 0o755 }), { kind: 'directory', closedBits: 0o022 }, 1000)).toBeUndefined();
    expect(ownedPathProblem(stats({ mode: 0o775 }), { kind: 'directory', closedBits: 0o022 }, 1000)).toEqual({ problem: 'open-mode', mode: '0775', bits: 0o775 });
    expect(ownedPathProblem(stats({ mode: 0o750 }), privateDir, 1000)).toEqual({ problem: 'open-mode', mode: '0750', bits: 0o750 });
  });
  it('without uids (Windows) owner and mode are not compared', () => {
    expect(ownedPathProblem(stats({ uid: 0, mode: 0o777 }), privateDir, null)).toBeUndefined();
  });
});

describe('inspectOwnedPath', () => {
  it('lstat-based: missing is undefined, a symlink is never followed', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tb-owned-'));
    try {
      expect(await inspectOwnedPath(path.join(dir, 'none'), { closedBits: 0o022 })).toBeUndefined();
      await writeFile(path.join(dir, 'real'), 'x', { mode: 0o600 });
      await symlink(path.join(dir, 'real'), path.join(dir, 'link'));
      expect((await inspectOwnedPath(path.join(dir, 'real'), { kind: 'file', closedBits: 0o077 }))?.problem).toBeUndefined();
      expect((await inspectOwnedPath(path.join(dir, 'link'), { kind: 'file', closedBits: 0o077 }))?.problem).toEqual({ problem: 'symlink' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
