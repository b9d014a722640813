import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TokenBrokerClient } from '../../src/client/client.js';
import { DAEMON_NODE_FLAGS } from '../../src/protocol/daemon-flags.js';
import { waitUntilAnswering } from './wait-for.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The installed entry point: compiled JS, as users and service managers run it. */
export const CLI_ENTRY = path.join(REPO_ROOT, 'bin', 'tokenbroker.js');

export interface TestDaemonOptions {
  /** Written to config.json; omitted = no config file (defaults). */
  config?: Record<string, unknown>;
  /** Raw config.json text, for malformed-config tests. */
  configText?: string;
  env?: Record<string, string | undefined>;
  /** Reuse a home (restart tests); a fresh temp dir otherwise. */
  home?: string;
  /** Extra arguments after `daemon`. */
  args?: string[];
}

export interface TestDaemon {
  home: string;
  socketPath: string;
  client: TokenBrokerClient;
  process: ChildProcess;
  pid: number;
  env: NodeJS.ProcessEnv;
  /** Everything the daemon wrote to stdout and stderr so far. */
  output(): string;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Stops the daemon (if running) and removes the temp home. */
  cleanup(): Promise<void>;
}

/** A short temp dir: Unix socket paths must stay under ~104 bytes. */
export async function makeTempHome(prefix = 'tb-'): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Environment for a daemon or CLI confined to `home`, without the developer's own settings. */
export function isolatedEnv(home: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TOKENBROKER_HOME: home, TOKENBROKER_NO_AUTOSTART: '1' };
  for (const key of ['TOKENBROKER_SOCKET', 'TOKENBROKER_CONFIG', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'NO_PROXY', 'no_proxy']) {
    delete env[key];
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** Runs the real daemon (compiled JS) in a temp TOKENBROKER_HOME and waits until it answers. */
export async function startTestDaemon(options: TestDaemonOptions = {}): Promise<TestDaemon> {
  const home = options.home ?? (await makeTempHome());
  if (options.configText !== undefined) await writeFile(path.join(home, 'config.json'), options.configText);
  else if (options.config !== undefined) await writeFile(path.join(home, 'config.json'), JSON.stringify(options.config, null, 2));
  const env = isolatedEnv(home, options.env);
  const socketPath = path.join(home, 'run', 'broker.sock');
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, CLI_ENTRY, 'daemon', ...(options.args ?? [])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // The daemon's state dir (its hello key) is TOKENBROKER_HOME's, whatever socket it is given.
  const client = new TokenBrokerClient({
    socketPath: options.args?.includes('--socket') ? String(options.args[options.args.indexOf('--socket') + 1]) : socketPath,
    stateDir: path.join(home, 'state'),
    onVersionMismatch: () => undefined,
  });

  try {
    await waitUntilAnswering(() => client.status(), child, () => output);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    await client.close();
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill(signal);
    return exited;
  };
  return {
    home,
    socketPath: client.socketPath,
    client,
    process: child,
    pid: child.pid as number,
    env,
    output: () => output,
    stop,
    cleanup: async () => {
      await stop('SIGKILL').catch(() => undefined);
      if (options.home === undefined) await rm(home, { recursive: true, force: true });
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  pid: number;
}

/** Runs the real CLI as a user would (compiled JS), with stdin from `input` (or closed). */
export async function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI_ENTRY, ...args], { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(options.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr, pid: child.pid as number };
}

/** How many debug "request" lines for GET /v1/status a daemon logged (they appear at logLevel debug only). */
export function statusRequestLines(output: string): number {
  return (output.match(/"level":20,[^\n]*"url":"\/v1\/status"[^\n]*"msg":"request"/g) ?? []).length;
}
