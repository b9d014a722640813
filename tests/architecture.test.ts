import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/test-daemon.js';

const FORBIDDEN_IN_BROKER = ['fastify', '@fastify/websocket', 'undici', 'keytar', 'node:fs', 'fs', 'node:fs/promises', 'fs/promises', 'node:net', 'net', 'node:http', 'http', 'node:https', 'https', 'pino'];

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => path.join(e.parentPath, e.name));
}

/** Every module specifier a file imports: static, dynamic, re-exports and require(). */
export function importedModules(source: string): string[] {
  const patterns = [/\bfrom\s+['"]([^'"]+)['"]/g, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g, /\bimport\s+['"]([^'"]+)['"]/g, /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g];
  return patterns.flatMap((re) => [...source.matchAll(re)].map((m) => m[1] as string));
}

describe('architecture', () => {
  it('src/broker imports no framework, network, keychain or filesystem module', async () => {
    const files = await sourceFiles(path.join(REPO_ROOT, 'src', 'broker'));
    expect(files.length).toBeGreaterThan(0);
    const offences: string[] = [];
    for (const file of files) {
      for (const spec of importedModules(await readFile(file, 'utf8'))) {
        if (FORBIDDEN_IN_BROKER.includes(spec) || spec.startsWith('fastify') || spec.startsWith('undici')) offences.push(`${path.relative(REPO_ROOT, file)} imports ${spec}`);
        if (spec.includes('/daemon/') || spec.includes('/cli/') || spec.includes('/client/')) offences.push(`${path.relative(REPO_ROOT, file)} imports ${spec} (outer layer)`);
      }
    }
    expect(offences).toEqual([]);
  });

  it('the import scanner sees every form of import', () => {
    const sample = `import x from 'node:fs';\nimport type { Y } from "undici";\nconst k = await import('keytar');\nimport 'fastify';\nexport { z } from 'node:net';\nconst h = require('node:http');`;
    expect(importedModules(sample).sort()).toEqual(['fastify', 'keytar', 'node:fs', 'node:http', 'node:net', 'undici'].sort());
  });

  it('src/protocol imports nothing of ours outside src/protocol', async () => {
    const files = await sourceFiles(path.join(REPO_ROOT, 'src', 'protocol'));
    const offences: string[] = [];
    for (const file of files) {
      for (const spec of importedModules(await readFile(file, 'utf8'))) {
        if (spec.startsWith('.') && !spec.startsWith('./')) offences.push(`${path.relative(REPO_ROOT, file)} imports ${spec}`);
      }
    }
    expect(offences).toEqual([]);
  });

  /**
   * Layers point inward: cli -> client -> protocol, daemon -> broker -> protocol. src/node holds
   * the Node adapters the daemon, the client and the CLI need (config file, private dirs, atomic files,
   * the daemon's key and lock files, autostart's spawn and service start,
   * the socket probe, the undici upstream); src/entry.ts is the binary's entry and wires the CLI
   * to the daemon runner.
   */
  const LAYERS: Record<string, readonly string[]> = {
    protocol: ['protocol'],
    broker: ['broker', 'protocol'],
    client: ['client', 'node', 'protocol'],
    node: ['node', 'broker', 'protocol'],
    cli: ['cli', 'client', 'node', 'protocol'],
    daemon: ['daemon', 'broker', 'node', 'protocol'],
  };

  const SRC = path.join(REPO_ROOT, 'src');

  /** Relative imports of one file (path under src/) that leave the layers its layer may use. */
  function importOffences(file: string, source: string): string[] {
    const layer = file.split('/')[0] ?? '';
    const allowed = LAYERS[layer] ?? [];
    return importedModules(source)
      .filter((spec) => spec.startsWith('.'))
      .filter((spec) => !allowed.includes(path.relative(SRC, path.resolve(SRC, path.dirname(file), spec)).split(path.sep)[0] ?? ''))
      .map((spec) => `src/${file} imports ${spec} (${layer} may use ${allowed.join(', ')})`);
  }

  async function layerOffences(layer: string): Promise<string[]> {
    const offences: string[] = [];
    for (const file of await sourceFiles(path.join(SRC, layer))) {
      offences.push(...importOffences(path.relative(SRC, file).split(path.sep).join('/'), await readFile(file, 'utf8')));
    }
    return offences;
  }

  for (const layer of Object.keys(LAYERS)) {
    it(`src/${layer} imports only ${(LAYERS[layer] ?? []).join(', ')}`, async () => {
      expect(await layerOffences(layer)).toEqual([]);
    });
  }

  it('the layer check catches a CLI import of src/daemon', () => {
    expect(importOffences('cli/commands/probe.ts', "import { runDaemon } from '../../daemon/main.js';")).toEqual([
      'src/cli/commands/probe.ts imports ../../daemon/main.js (cli may use cli, client, node, protocol)',
    ]);
    expect(importOffences('cli/commands/probe.ts', "import { x } from '../../node/config-file.js';")).toEqual([]);
  });

  it('one upstream exchange: one redirect loop, one status mapper, one proxy resolver and CA loader in src/', async () => {
    const files = await sourceFiles(path.join(REPO_ROOT, 'src'));
    const where = async (pattern: RegExp): Promise<string[]> => {
      const found: string[] = [];
      for (const file of files) {
        const count = [...(await readFile(file, 'utf8')).matchAll(pattern)].length;
        for (let i = 0; i < count; i++) found.push(path.relative(REPO_ROOT, file));
      }
      return found;
    };
    // Following a redirect means asking the policy about it: exactly one place does.
    expect(await where(/\.redirectDecision\(/g)).toEqual(['src/broker/upstream-exchange.ts']);
    expect(await where(/new Set\(\[301, 302/g)).toEqual(['src/broker/upstream-exchange.ts']);
    // Upstream statuses become envelopes in one mapper.
    expect(await where(/status === 401\b/g)).toEqual(['src/broker/upstream-exchange.ts']);
    expect(await where(/new (EnvHttpProxyAgent|ProxyAgent)\(/g)).toEqual(['src/node/undici-upstream.ts']);
    expect(await where(/rootCertificates/g)).toEqual(['src/node/ca-loader.ts', 'src/node/ca-loader.ts']);
    expect(await where(/(HTTPS?_PROXY|https?_proxy)\b/g).then((found) => [...new Set(found)])).toEqual(['src/node/proxy-resolver.ts']);
  });
});
