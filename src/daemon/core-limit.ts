import { readFileSync } from 'node:fs';
import type { CoreDumpsStatus } from '../protocol/status.js';

/**
 * The running daemon's core-file limit (soft: the one the kernel applies), for status and
 * diagnose. A core file of the daemon holds the token in plain text. Read from /proc on Linux;
 * other platforms report `null` (unknown) rather than guess. Read synchronously: a procfs file is
 * generated in memory (~0.03 ms), where fs/promises' readFile costs ~0.7 ms of event-loop turns
 * on every `GET /v1/status` (the limit can change under us, via prlimit, so it is not cached).
 */
export async function coreDumpsStatus(limitsFile = '/proc/self/limits'): Promise<CoreDumpsStatus> {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return { limit: null };
  }
  const line = text.split('\n').find((l) => l.startsWith('Max core file size'));
  const soft = line?.slice('Max core file size'.length).trim().split(/\s+/)[0];
  if (soft === undefined) return { limit: null };
  const limit = soft === 'unlimited' ? 'unlimited' : Number(soft);
  if (limit === 0) return { limit };
  if (typeof limit === 'number' && !Number.isFinite(limit)) return { limit: null };
  return {
    limit,
    warning: `The daemon may write core files (core limit ${limit}); a core file would hold the token. Start it as a service (LimitCORE=0), let the CLI autostart it, or run \`ulimit -c 0\` before \`tokenbroker daemon\`.`,
  };
}
