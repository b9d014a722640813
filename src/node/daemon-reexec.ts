import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { DAEMON_NODE_FLAGS } from '../protocol/daemon-flags.js';

/**
 * The daemon's heap tuning (DAEMON_NODE_FLAGS) has to be on node's command line: V8 sizes the
 * young generation at start, and `v8.setFlagsFromString` later does not resize it. The shebang,
 * the service units and autostart pass the flags; `node bin/tokenbroker.js daemon` (how npm's
 * Windows shims and many users start it) does not. So `daemon` re-executes itself once with the
 * flags, and every way of starting it runs the same daemon.
 */

/** Set in the re-executed process: it never re-executes again, whatever its command line. */
export const REEXEC_MARKER = 'TOKENBROKER_DAEMON_REEXEC';

/** The flag's name without its value (`--max-semi-space-size=1` -> `--max-semi-space-size`). */
function flagName(flag: string): string {
  const name = flag.split('=', 1)[0] ?? flag;
  // V8 accepts both spellings; node passes them through as given.
  return name.replace(/_/g, '-');
}

/**
 * The daemon flags this process was not started with. A flag given on the command line or in
 * NODE_OPTIONS counts, whatever its value: a user who tuned it differently keeps their value.
 */
export function missingDaemonFlags(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = new Set([...execArgv, ...(nodeOptions ?? '').split(/\s+/)].filter((arg) => arg.startsWith('--')).map(flagName));
  return DAEMON_NODE_FLAGS.filter((flag) => !given.has(flagName(flag)));
}

/**
 * Started by a service manager: systemd sets INVOCATION_ID for every unit and LISTEN_FDS/LISTEN_PID
 * with socket activation (the inherited socket belongs to this pid: a child could not take it
 * over); launchd names the job in XPC_SERVICE_NAME (macOS Terminal sets it to "0"). The units
 * pass the flags; one edited without them still runs, untuned, rather than as a child the
 * manager does not know about.
 */
export function underServiceManager(env: NodeJS.ProcessEnv): boolean {
  if (env['INVOCATION_ID'] || env['LISTEN_FDS'] || env['LISTEN_PID']) return true;
  const launchdJob = env['XPC_SERVICE_NAME'];
  return launchdJob !== undefined && launchdJob !== '' && launchdJob !== '0';
}

export interface ReexecPlan {
  /** The node binary and the full argument list for it (flags first, then the script and its arguments). */
  execPath: string;
  args: string[];
}

/** What to re-execute, or null when this process runs the daemon itself. */
export function planDaemonReexec(proc: Pick<NodeJS.Process, 'execPath' | 'execArgv' | 'argv' | 'env'>): ReexecPlan | null {
  if (proc.env[REEXEC_MARKER] !== undefined) return null;
  if (underServiceManager(proc.env)) return null;
  const missing = missingDaemonFlags(proc.execArgv, proc.env['NODE_OPTIONS']);
  if (missing.length === 0) return null;
  return { execPath: proc.execPath, args: [...proc.execArgv, ...missing, ...proc.argv.slice(1)] };
}

/** Signals passed on to the child: stop (drain), reload, and the terminal's. */
const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'];

/**
 * Re-executes the daemon with its flags when they are missing (see above). Returns only when
 * this process should run the daemon itself; otherwise this process becomes the daemon
 * (`process.execve`, same pid, where Node has it: 22.15+) or runs it as a child and ends as the
 * child ends (same exit code or signal), passing signals on meanwhile.
 */
export async function reexecDaemonWithFlags(proc: NodeJS.Process = process): Promise<void> {
  const marker = proc.env[REEXEC_MARKER];
  if (marker !== undefined) {
    delete proc.env[REEXEC_MARKER]; // not inherited by what the daemon starts
    return;
  }
  const plan = planDaemonReexec(proc);
  if (plan === null) return;
  const env = { ...proc.env, [REEXEC_MARKER]: '1' };
  const execve = (proc as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
  if (typeof execve === 'function' && proc.platform !== 'win32') {
    execve.call(proc, plan.execPath, [plan.execPath, ...plan.args], env);
  }
  await runAsChild(proc, plan, env);
}

function runAsChild(proc: NodeJS.Process, plan: ReexecPlan, env: NodeJS.ProcessEnv): Promise<never> {
  const child = spawn(plan.execPath, plan.args, { env, stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals): void => {
    // A terminal's Ctrl-C reaches both processes; the daemon ignores a second stop signal.
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  // Windows has no signals to pass on: a console's Ctrl-C reaches every process attached to it.
  const forwarded = proc.platform === 'win32' ? [] : FORWARDED_SIGNALS;
  for (const signal of forwarded) proc.on(signal, forward);
  return new Promise<never>(() => {
    child.once('error', (err) => {
      proc.stderr.write(`tokenbroker: cannot start the daemon with its node flags (${err.message})\n`);
      proc.exit(1);
    });
    child.once('exit', (code, signal) => {
      for (const name of forwarded) proc.off(name, forward);
      if (signal !== null) {
        // End the way the daemon ended, so whoever waits for us sees the same signal.
        proc.kill(proc.pid, signal);
        proc.exit(128 + (osConstants.signals[signal] ?? 0));
      }
      proc.exit(code ?? 1);
    });
  });
}
