/** One line of `tokenbroker diagnose`: what was checked, how it went, and what to do about it. */
export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  /** Stable name of the check: socket-dir, socket, daemon, version, secret-store, core-dumps, config, token, proxy, dns, tcp, tls, ping, clock. */
  id: string;
  /** The configured server a check belongs to. */
  server?: string;
  status: CheckStatus;
  /** What was found, one line. */
  message: string;
  /** What to do about it (always present for warn and fail). */
  hint?: string;
}

export function check(id: string, status: CheckStatus, message: string, hint?: string): Check {
  return { id, status, message, ...(hint === undefined ? {} : { hint }) };
}

export interface DiagnoseReport {
  /** No check failed (warnings allowed). */
  ok: boolean;
  /** The CLI's version. */
  version: string;
  socket: string;
  config: string;
  checks: Check[];
  summary: Record<CheckStatus, number>;
}

export function summarise(checks: Check[]): Record<CheckStatus, number> {
  const summary: Record<CheckStatus, number> = { ok: 0, warn: 0, fail: 0 };
  for (const c of checks) summary[c.status] += 1;
  return summary;
}

/** The same check, attributed to a server (key order kept stable for --json). */
export function forServer(c: Check, server: string): Check {
  return { id: c.id, server, status: c.status, message: c.message, ...(c.hint === undefined ? {} : { hint: c.hint }) };
}
