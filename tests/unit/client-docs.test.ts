import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/test-daemon.js';

/** Issue 21: docs/client.md documents every public method of TokenBrokerClient. */
describe('docs/client.md', () => {
  it('has a row for every public method of TokenBrokerClient, and says the library starts no daemon unless asked', async () => {
    // The declarations tsc emits (built by the global setup): private and protected members are marked.
    const declarations = await readFile(path.join(REPO_ROOT, 'dist', 'client', 'client.d.ts'), 'utf8');
    const body = declarations.slice(declarations.indexOf('export declare class TokenBrokerClient'));
    const methods = [...body.matchAll(/^ {4}(?!private |protected |readonly |constructor)([a-zA-Z]+)\(/gm)].map((m) => m[1] as string);
    expect(methods).toEqual(expect.arrayContaining(['status', 'downloadApp', 'events', 'close']));
    const doc = await readFile(path.join(REPO_ROOT, 'docs', 'client.md'), 'utf8');
    const undocumented = methods.filter((name) => !new RegExp(`^\\| \`${name}\\(`, 'm').test(doc));
    expect(undocumented).toEqual([]);
    expect(doc).toContain('**The library does not start the daemon unless asked.**');
  });
});
