import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { VERSION } from '../../src/protocol/version.js';
import { REPO_ROOT } from '../helpers/test-daemon.js';

describe('version', () => {
  it('VERSION matches package.json', async () => {
    const pkg = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; name: string; bin: Record<string, string>; exports: Record<string, unknown> };
    expect(VERSION).toBe(pkg.version);
    expect(pkg.name).toBe('tokenbroker');
    expect(pkg.bin.tokenbroker).toBe('bin/tokenbroker.js');
    expect(Object.keys(pkg.exports)).toContain('./client');
  });
});
