import { lstat } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { isWindowsPipe } from '../protocol/paths.js';

/** Who holds a socket path: used by the daemon before it takes the path and by the CLI's autostart. */
export type ProbeResult =
  | { kind: 'absent' }
  | { kind: 'not-socket' }
  | { kind: 'daemon'; pid: number | undefined; activated?: boolean }
  /** Nobody accepts: a leftover from a crash. */
  | { kind: 'dead' }
  /** Somebody accepts but does not answer: e.g. a socket activator whose service is failing. */
  | { kind: 'unresponsive' };

export const PROBE_TIMEOUT_MS = 1_000;

/** Asks whoever holds the socket for its status, within a time limit. */
export async function probeSocket(socketPath: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<ProbeResult> {
  if (!isWindowsPipe(socketPath)) {
    try {
      const info = await lstat(socketPath);
      if (!info.isSocket()) return { kind: 'not-socket' };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
      throw err;
    }
  }
  return new Promise<ProbeResult>((resolve) => {
    let settled = false;
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ kind: 'unresponsive' }), timeoutMs);
    const request = httpGet({ socketPath, path: '/v1/status', headers: { host: 'localhost', connection: 'close' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (text.length < 65_536) text += chunk;
      });
      res.on('end', () => {
        let pid: number | undefined;
        let activated: boolean | undefined;
        try {
          const parsed = JSON.parse(text) as { pid?: unknown; socket?: { activated?: unknown } };
          if (typeof parsed.pid === 'number') pid = parsed.pid;
          if (typeof parsed.socket?.activated === 'boolean') activated = parsed.socket.activated;
        } catch {
          // Something answered HTTP but not our status: still somebody's live socket.
        }
        finish({ kind: 'daemon', pid, ...(activated === undefined ? {} : { activated }) });
      });
      res.on('error', () => finish({ kind: 'daemon', pid: undefined }));
    });
    request.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') finish({ kind: 'dead' });
      // A reset after connecting means someone accepted: treat as alive but unresponsive.
      else finish({ kind: 'unresponsive' });
    });
  });
}

