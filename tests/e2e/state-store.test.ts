import { spawn } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sweepTempFiles, writeFileAtomic } from '../../src/node/atomic-file.js';
import { createFsStateStore } from '../../src/daemon/fs-state-store.js';
import { REPO_ROOT } from '../helpers/test-daemon.js';
import { tempFilesIn, writeUnderWay } from '../helpers/mid-write.js';
import { useTempHomes } from '../helpers/per-test.js';

const tempDir = useTempHomes({ prefix: 'tb-state-', after: 'all' });

describe('state store', () => {
  it('round-trips documents with mode 0600 and refuses traversal in names', async () => {
    const dir = await tempDir();
    const store = createFsStateStore(dir);
    expect(await store.read('tokens.json')).toBeUndefined();
    await store.write('tokens.json', { a: 1 });
    await store.write('indexes/official.json', { apps: [] });
    expect(await store.read('tokens.json')).toEqual({ a: 1 });
    expect((await stat(path.join(dir, 'tokens.json'))).mode & 0o777).toBe(0o600);
    for (const bad of ['../x.json', '/etc/passwd', 'a/b/c.json', '.hidden.json', 'x']) {
      await expect(store.write(bad, {})).rejects.toThrow(/invalid state document name/);
    }
    await store.remove('tokens.json');
    expect(await store.read('tokens.json')).toBeUndefined();
  });

  it('a document that does not parse is reported, not silently replaced', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'tokens.json'), '{"broken":');
    await expect(createFsStateStore(dir).read('tokens.json')).rejects.toMatchObject({ code: 'BROKER_INTERNAL', hint: expect.stringContaining('Move') as string });
  });

  it('a write that fails leaves the previous file intact and no temp file behind', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'doc.json');
    await writeFileAtomic(file, '{"version":1}');
    await expect(writeFileAtomic(file, Symbol('not data') as unknown as string)).rejects.toThrow();
    expect(await readFile(file, 'utf8')).toBe('{"version":1}');
    expect(await readdir(dir)).toEqual(['doc.json']);
  });

  it('SIGKILL in the middle of writes always leaves a whole document', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'big.json');
    // A writer that rewrites a ~2 MB document as fast as it can, each version internally consistent.
    const script = `
      const { writeFileAtomic } = await import(${JSON.stringify(path.join(REPO_ROOT, 'dist/node/atomic-file.js'))});
      for (let v = 1; ; v++) {
        const doc = { version: v, apps: Array.from({ length: 20000 }, (_, i) => ({ i, v, name: 'app-' + i })) };
        await writeFileAtomic(${JSON.stringify(file)}, JSON.stringify(doc));
        if (v === 1) process.stdout.write('first\\n');
      }`;
    // Kill the moment a write is under way; count only kills proven to have landed mid-write (the
    // writer's temp file outlived it), until there are three of them.
    let midWrite = 0;
    for (let round = 0; round < 30 && midWrite < 3; round++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      const before = new Set(await tempFilesIn(dir));
      await writeUnderWay(dir, before);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      if ((await tempFilesIn(dir)).some((name) => !before.has(name))) midWrite++;
      const doc = JSON.parse(await readFile(file, 'utf8')) as { version: number; apps: { v: number }[] };
      expect(doc.apps).toHaveLength(20000);
      expect(doc.apps.every((a) => a.v === doc.version)).toBe(true);
    }
    expect(midWrite).toBe(3);
    // Temp files of killed writers are swept (as the daemon does at start); the document stays.
    await sweepTempFiles(dir);
    expect(await readdir(dir)).toEqual(['big.json']);
  });
});
