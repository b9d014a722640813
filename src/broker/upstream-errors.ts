import type { Readable } from 'node:stream';

/** Error bodies are read only this far: enough for Artifactory's JSON, bounded for anything else. */
const MAX_ERROR_BODY = 8 * 1024;

/** Redirect and error bodies worth keeping the connection for; larger ones cost a new connection. */
const SMALL_BODY = 64 * 1024;

/**
 * Throws away a body we will not use. Small ones are read to the end so the keep-alive connection
 * stays usable; others are destroyed (undici then reports an abort, which is expected here).
 */
export function discardBody(response: { headers: Record<string, string | string[] | undefined>; body: Readable }): void {
  const body = response.body;
  body.on('error', () => undefined);
  const length = Number(Array.isArray(response.headers['content-length']) ? response.headers['content-length'][0] : response.headers['content-length']);
  if (Number.isFinite(length) && length <= SMALL_BODY) body.resume();
  else body.destroy();
}

/** Reads at most MAX_ERROR_BODY bytes of an error body, then drops the rest. Never throws. */
export async function readErrorBody(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const buf = chunk as Buffer;
      chunks.push(buf);
      size += buf.length;
      if (size >= MAX_ERROR_BODY) break;
    }
  } catch {
    // A broken error body still leaves the status to report.
  } finally {
    body.on('error', () => undefined);
    body.destroy();
  }
  return Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY).toString('utf8');
}

/**
 * Artifactory's `{"errors":[{"status","message"}]}`, else the first line of the text, uncut: the
 * exchange redacts it and only then cuts it to MAX_UPSTREAM_MESSAGE (`scrubThenCut`).
 */
export function upstreamMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { errors?: { message?: unknown }[]; message?: unknown };
    const message = parsed.errors?.[0]?.message ?? parsed.message;
    if (typeof message === 'string') return clean(message);
  } catch {
    // Not JSON.
  }
  const xml = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
  if (xml !== undefined) return clean(xml);
  return clean(text.split('\n')[0] ?? '');
}

/** Upstream messages in answers, events, the ledger and state are at most this long (after redaction). */
export const MAX_UPSTREAM_MESSAGE = 200;

function clean(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, ' ').trim();
}

/**
 * `Retry-After` (RFC 9110 10.2.3) as milliseconds from `now`: delta-seconds or an HTTP date;
 * undefined when absent or unusable ("1.5", "-5", "soon").
 */
function retryAfterMs(value: string | string[] | undefined, now: number): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  if (/^\d{1,10}$/.test(trimmed)) return Number(trimmed) * 1000;
  // Date.parse accepts bare numbers like "1.5" as dates; an HTTP date always has a month name.
  const at = Date.parse(trimmed);
  if (Number.isNaN(at) || !/[A-Za-z]/.test(trimmed)) return undefined;
  return Math.max(0, at - now);
}

/** `Retry-After` as whole seconds from now, for error details and the Retry-After header. */
export function retryAfterSeconds(value: string | string[] | undefined, now: number): number | undefined {
  const ms = retryAfterMs(value, now);
  return ms === undefined ? undefined : Math.ceil(ms / 1000);
}
