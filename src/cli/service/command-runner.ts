import { execFile } from 'node:child_process';

export interface CommandResult {
  /** Exit status; 127 when the program does not exist, like a shell. */
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs one external program (systemctl, launchctl) without a shell. Injected so that tests can
 * stand in for a service manager that is not running on the test machine.
 */
export type CommandRunner = (file: string, args: readonly string[]) => Promise<CommandResult>;

/** The real runner: the program's own environment is `env` (XDG_CONFIG_HOME decides where systemctl looks). */
export function systemCommandRunner(env: NodeJS.ProcessEnv, timeoutMs = 60_000): CommandRunner {
  return (file, args) =>
    new Promise<CommandResult>((resolve) => {
      execFile(file, [...args], { env, timeout: timeoutMs, encoding: 'utf8', maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
        if (err === null) {
          resolve({ code: 0, stdout, stderr });
          return;
        }
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          resolve({ code: 127, stdout: '', stderr: `${file}: command not found` });
          return;
        }
        const status = typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1;
        resolve({ code: status, stdout, stderr: stderr === '' ? err.message : stderr });
      });
    });
}

/** A command line as a user would type it, for --dry-run output and error messages. */
export function formatCommand(file: string, args: readonly string[]): string {
  return [file, ...args].map(shellQuote).join(' ');
}

/** POSIX shell quoting, only where needed, so the common case stays readable. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
