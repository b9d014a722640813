import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/test-daemon.js';

/**
 * Issue 23: the client library and the CLI speak node:http to the socket and `ws` for events; they
 * load no undici (~80 ms) and load zod (~60 ms) only when an answer is checked. Checked on the
 * import graph of the sources, transitively (src/node included).
 */
const SRC = path.join(REPO_ROOT, 'src');

interface Edge {
  spec: string;
  dynamic: boolean;
}

/** Value imports of a file (type-only imports and re-exports load nothing at run time). */
function imports(source: string): Edge[] {
  const edges: Edge[] = [];
  for (const m of source.matchAll(/^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s+['"]([^'"]+)['"]/gm)) {
    if (m[2] !== undefined) continue;
    // `import { type A, type B } from` loads nothing either.
    const names = m[3] ?? '';
    if (/^\{[^}]*\}$/.test(names.trim()) && names.replace(/[{}\s]/g, '').split(',').every((n) => n === '' || n.startsWith('type'))) continue;
    edges.push({ spec: m[4] as string, dynamic: false });
  }
  for (const m of source.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) edges.push({ spec: m[1] as string, dynamic: false });
  for (const m of source.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) edges.push({ spec: m[1] as string, dynamic: true });
  return edges;
}

/** Every module reachable from `entries` (following dynamic imports only if asked): file -> its packages. */
async function reachable(entries: string[], followDynamic: boolean, skip: (file: string) => boolean = () => false): Promise<Map<string, string[]>> {
  const seen = new Map<string, string[]>();
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.shift() as string;
    if (seen.has(file) || skip(file)) continue;
    const edges = imports(await readFile(file, 'utf8')).filter((e) => followDynamic || !e.dynamic);
    seen.set(file, edges.filter((e) => !e.spec.startsWith('.')).map((e) => e.spec));
    for (const e of edges) if (e.spec.startsWith('.')) queue.push(path.resolve(path.dirname(file), e.spec.replace(/\.js$/, '.ts')));
  }
  return seen;
}

function offenders(graph: Map<string, string[]>, pkg: string): string[] {
  return [...graph].filter(([, pkgs]) => pkgs.some((p) => p === pkg || p.startsWith(`${pkg}/`))).map(([file]) => path.relative(REPO_ROOT, file));
}

async function filesUnder(dir: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => path.join(e.parentPath, e.name));
}

/**
 * The one named exception: `diagnose` probes the servers the way the daemon does (proxy, CA,
 * timeouts: the daemon's own undici upstream) even when no daemon runs. It is a second
 * composition root (issue 19), loaded by `import()` only when `diagnose` runs.
 */
const DIAGNOSE_SERVER_PROBE = path.join(SRC, 'cli', 'diagnose', 'server-probe.ts');

describe('client library and CLI imports', () => {
  it('nothing under src/client or src/cli, nor anything they import, loads undici (diagnose\'s server probe aside)', async () => {
    // The probe lives in src/cli/diagnose: an entry of its own would make it reachable by definition.
    const entries = [...(await filesUnder(path.join(SRC, 'client'))), ...(await filesUnder(path.join(SRC, 'cli')))].filter((file) => file !== DIAGNOSE_SERVER_PROBE);
    const graph = await reachable(entries, true, (file) => file === DIAGNOSE_SERVER_PROBE);
    expect(graph.size).toBeGreaterThan(40);
    expect(offenders(graph, 'undici')).toEqual([]);
    // The exception is reached only through import(), so no other command loads it.
    const eager = await reachable(entries, false);
    expect([...eager.keys()]).not.toContain(DIAGNOSE_SERVER_PROBE);
  });

  it('loading tokenbroker/client loads no zod and no ws: both come with the first call that needs them', async () => {
    const graph = await reachable([path.join(SRC, 'client', 'index.ts')], false);
    expect(offenders(graph, 'zod')).toEqual([]);
    expect(offenders(graph, 'ws')).toEqual([]);
    expect(offenders(graph, 'undici')).toEqual([]);
    // The lazy module really holds the schemas (the test would pass vacuously otherwise).
    const lazy = await reachable([path.join(SRC, 'client', 'response-schemas.ts')], false);
    expect(offenders(lazy, 'zod').length).toBeGreaterThan(3);
  });

  it('the scanner sees value imports and ignores type-only ones', () => {
    const sample = "import type { A } from 'zod';\nimport { type B } from 'undici';\nimport { C } from 'ws';\nexport { D } from './d.js';\nconst e = await import('./e.js');";
    expect(imports(sample)).toEqual([
      { spec: 'ws', dynamic: false },
      { spec: './d.js', dynamic: false },
      { spec: './e.js', dynamic: true },
    ]);
  });
});
