import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Client } from 'undici';
import { DAEMON_NODE_FLAGS } from '../src/protocol/daemon-flags.js';
import { CLI_ENTRY, isolatedEnv, makeTempHome } from '../tests/helpers/test-daemon.js';

export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  /** Human-readable target, e.g. "<= 0.3 ms". */
  target?: string;
  ok?: boolean;
}

export interface BenchDaemon {
  home: string;
  socketPath: string;
  child: ChildProcess;
  readyMs: number;
  stop(): Promise<void>;
}

/** Starts the compiled daemon and measures spawn -> first answered status request. */
export async function startBenchDaemon(config: Record<string, unknown> = {}, nodeFlags: readonly string[] = DAEMON_NODE_FLAGS): Promise<BenchDaemon> {
  const home = await makeTempHome('tbb-');
  await writeFile(path.join(home, 'config.json'), JSON.stringify({ logLevel: 'warn', ...config }));
  const socketPath = path.join(home, 'run', 'broker.sock');
  const t0 = performance.now();
  const child = spawn(process.execPath, [...nodeFlags, CLI_ENTRY, 'daemon'], { env: isolatedEnv(home), stdio: ['ignore', 'ignore', 'inherit'] });
  for (;;) {
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}`);
    const client = new Client('http://localhost', { socketPath });
    try {
      const res = await client.request({ method: 'GET', path: '/v1/status', headers: { host: 'localhost' } });
      await res.body.dump();
      if (res.statusCode === 200) break;
    } catch {
      await new Promise((r) => setTimeout(r, 2));
    } finally {
      await client.close().catch(() => undefined);
    }
  }
  const readyMs = performance.now() - t0;
  return {
    home,
    socketPath,
    child,
    readyMs,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** Resident set size and its peak, from /proc (Linux). */
export async function rssOf(pid: number): Promise<{ rssMb: number; peakMb: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

export function printRows(title: string, rows: BenchRow[]): void {
  console.log(`\n## ${title}`);
  const width = Math.max(...rows.map((r) => r.name.length));
  for (const row of rows) {
    const value = row.value >= 100 ? row.value.toFixed(0) : row.value >= 1 ? row.value.toFixed(2) : row.value.toFixed(3);
    const verdict = row.ok === undefined ? '' : row.ok ? '  ok' : '  MISSED';
    console.log(`${row.name.padEnd(width)}  ${value.padStart(10)} ${row.unit.padEnd(6)}${row.target ? ` target ${row.target}` : ''}${verdict}`);
  }
}
