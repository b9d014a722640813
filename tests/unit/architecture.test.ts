import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/test-daemon.js';

const FORBIDDEN_IN_BROKER = ['fastify', '@fastify/websocket', 'undici', '@napi-rs/keyring', 'node:fs', 'fs', 'node:fs/promises', 'fs/promises', 'node:net', 'net', 'node:http', 'http', 'node:https', 'https', 'pino'];

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
   * the Node adapters the daemon, the client and the CLI need (the one resumable file writer among them, config file, private dirs, atomic files,
   * the daemon's key and lock files, autostart's spawn and service start,
   * the socket probe, the undici upstream); src/entry.ts is the binary's entry and wires the CLI
   * to the daemon runner.
   */
  const LAYERS: Record<string, readonly string[]> = {
    protocol: ['protocol'],
    broker: ['broker', 'protocol'],
    // client -> node: the Node adapters the client library shares (owned-path check, file writer).
    client: ['client', 'node', 'protocol'],
    node: ['node', 'broker', 'protocol'],
    cli: ['cli', 'client', 'node', 'protocol'],
    daemon: ['daemon', 'broker', 'node', 'protocol'],
  };

  const SRC = path.join(REPO_ROOT, 'src');

  /**
   * Declared composition roots outside src/daemon, by name: diagnose's server probe builds its
   * upstream exchange through the daemon's own factory (createUpstreamExchange), so the CLI's
   * server check is the daemon's (issue 19). It may import exactly these broker modules.
   */
  const COMPOSITION_ROOTS: Readonly<Record<string, readonly string[]>> = {
    'cli/diagnose/server-probe.ts': ['broker/upstream-exchange.ts', 'broker/ports.ts'],
  };

  /** Relative imports of one file (path under src/) that leave the layers its layer may use. */
  function importOffences(file: string, source: string): string[] {
    const layer = file.split('/')[0] ?? '';
    const allowed = LAYERS[layer] ?? [];
    const declared = COMPOSITION_ROOTS[file] ?? [];
    return importedModules(source)
      .filter((spec) => spec.startsWith('.'))
      .filter((spec) => !declared.includes(path.relative(SRC, path.resolve(SRC, path.dirname(file), spec)).replace(/\.js$/, '.ts').split(path.sep).join('/')))
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
    // The declared composition root may import its factory, and nothing else of the broker.
    expect(importOffences('cli/diagnose/server-probe.ts', "import { createUpstreamExchange } from '../../broker/upstream-exchange.js';")).toEqual([]);
    expect(importOffences('cli/diagnose/server-probe.ts', "import { SourceService } from '../../broker/source-service.js';")).toHaveLength(1);
    expect(importOffences('cli/diagnose/network-checks.ts', "import { createUpstreamExchange } from '../../broker/upstream-exchange.js';")).toHaveLength(1);
  });

  it('one exchange: no file under src/broker (besides the exchange\'s own) or src/node constructs one; two declared composition roots build it through the factory', async () => {
    const files = await sourceFiles(SRC);
    const found = async (pattern: RegExp): Promise<string[]> => {
      const hits: string[] = [];
      for (const file of files) if (pattern.test(await readFile(file, 'utf8'))) hits.push(path.relative(SRC, file).split(path.sep).join('/'));
      return hits.sort();
    };
    expect(await found(/new UpstreamExchange\(/)).toEqual(['broker/upstream-exchange.ts']);
    expect(await found(/\bcreateUpstreamExchange\(/)).toEqual(['broker/upstream-exchange.ts', 'cli/diagnose/server-probe.ts', 'daemon/assemble-daemon.ts']);
    // The daemon's services are wired in one place, which main.ts uses.
    expect(await found(/new (TokenService|SourceService|FetchService|DownloadService)\(/)).toEqual(['daemon/assemble-daemon.ts']);
    expect(await found(/\bassembleDaemon\(/)).toEqual(['daemon/assemble-daemon.ts', 'daemon/main.ts']);
  });

  it('src/client parses no Content-Range: resume decisions live in src/protocol/resume-decisions.ts, run by the one writer in src/node', async () => {
    const offences: string[] = [];
    for (const file of await sourceFiles(path.join(REPO_ROOT, 'src', 'client'))) {
      if (/content-range|bytes \(\\d\+\)-/i.test(await readFile(file, 'utf8'))) offences.push(path.relative(REPO_ROOT, file));
    }
    expect(offences).toEqual([]);
  });

  it('src/protocol imports no filesystem module (schemas, the error registry and pure helpers)', async () => {
    const offences: string[] = [];
    for (const file of await sourceFiles(path.join(REPO_ROOT, 'src', 'protocol'))) {
      for (const spec of importedModules(await readFile(file, 'utf8'))) {
        if (/^(node:)?fs(\/promises)?$/.test(spec)) offences.push(`${path.relative(REPO_ROOT, file)} imports ${spec}`);
      }
    }
    expect(offences).toEqual([]);
  });

  /** Every import of src/broker by a src/node file, and whether it is type-only from ports.ts. */
  function brokerImportsOfNode(file: string, source: string): string[] {
    const offences: string[] = [];
    for (const match of source.matchAll(/\b(import|export)\s+(type\s+)?[^'";]*?\bfrom\s+['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const spec = match[3] ?? match[4] ?? '';
      if (!spec.startsWith('.')) continue;
      const target = path.relative(SRC, path.resolve(SRC, path.dirname(file), spec)).split(path.sep).join('/');
      if (!target.startsWith('broker/')) continue;
      if (match[2] === undefined || target !== 'broker/ports.js') offences.push(`src/${file} imports ${spec}`);
    }
    return offences;
  }

  it('src/node imports only port types from src/broker (no domain objects)', async () => {
    const offences: string[] = [];
    for (const file of await sourceFiles(path.join(SRC, 'node'))) {
      offences.push(...brokerImportsOfNode(path.relative(SRC, file).split(path.sep).join('/'), await readFile(file, 'utf8')));
    }
    expect(offences).toEqual([]);
    // The check itself catches a value import, a type from another broker file, and a dynamic import.
    expect(brokerImportsOfNode('node/x.ts', "import { ResumeJob } from '../broker/ports.js';")).toHaveLength(1);
    expect(brokerImportsOfNode('node/x.ts', "import type { TokenUse } from '../broker/upstream-exchange.js';")).toHaveLength(1);
    expect(brokerImportsOfNode('node/x.ts', "const m = await import('../broker/ports.js');")).toHaveLength(1);
    expect(brokerImportsOfNode('node/x.ts', "import type { ResumeJob } from '../broker/ports.js';")).toEqual([]);
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
