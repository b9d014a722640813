/**
 * The one scrubbing mechanism. Text that came from an upstream (error messages, headers,
 * `Location`) may echo the token back: a misconfigured proxy that reflects the request, an error
 * page quoting the Authorization header. The upstream exchange scrubs what it knows with
 * `scrubSecrets` (the request's own tokens); every sink then goes through a `SecretScrubber`
 * (every token of this run) built on the same function, so both replace the same forms.
 */

export const REDACTED = '[redacted]';

/** Secrets shorter than this are not scrubbed: replacing a few characters everywhere would garble text without protecting anything. */
const MIN_SECRET_LENGTH = 8;

/**
 * Replaces every occurrence of each secret, and of its base64 (standard and URL-safe, as in a
 * Basic header or a JWT segment) and percent-encoded forms, with `[redacted]`.
 */
export function scrubSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let result = text;
  for (const secret of secrets) {
    if (secret === undefined || secret.length < MIN_SECRET_LENGTH) continue;
    for (const form of encodedForms(secret)) {
      if (result.includes(form)) result = result.split(form).join(REDACTED);
      result = scrubEdgeFragments(result, form);
    }
  }
  return result;
}

/**
 * Redact first, then cut (DESIGN section 5): text from an upstream is cut to `max` characters
 * only after every form of every secret in it was replaced. Cut first, a reflected token whose
 * position the client chose (by its URL's length) survived all but its last character, and no
 * scrubber downstream recognises a partial token. The cut never splits `[redacted]` either.
 */
export function scrubThenCut(text: string, secrets: readonly (string | undefined)[], max: number): string {
  const scrubbed = scrubSecrets(text, secrets);
  if (scrubbed.length <= max) return scrubbed;
  let cut = scrubbed.slice(0, max);
  const open = cut.lastIndexOf('[');
  if (open !== -1 && REDACTED.startsWith(cut.slice(open)) && scrubbed.startsWith(REDACTED, open)) cut = cut.slice(0, open);
  return `${cut}…`;
}

/**
 * A text that an upstream (or a bounded read) already cut can begin with the end of a token, or
 * end with its start: fragments of MIN_SECRET_LENGTH or more characters at either edge go too.
 */
function scrubEdgeFragments(text: string, form: string): string {
  let result = text;
  for (let length = Math.min(form.length - 1, result.length); length >= MIN_SECRET_LENGTH; length--) {
    if (result.endsWith(form.slice(0, length))) {
      result = `${result.slice(0, result.length - length)}${REDACTED}`;
      break;
    }
  }
  for (let length = Math.min(form.length - 1, result.length); length >= MIN_SECRET_LENGTH; length--) {
    if (result.startsWith(form.slice(form.length - length))) {
      result = `${REDACTED}${result.slice(length)}`;
      break;
    }
  }
  return result;
}

function encodedForms(secret: string): string[] {
  const base64 = Buffer.from(secret, 'utf8').toString('base64');
  const forms = new Set([secret, encodeURIComponent(secret), base64, base64.replace(/=+$/, ''), Buffer.from(secret, 'utf8').toString('base64url')]);
  // Longest first, so a form that contains another is replaced whole.
  return [...forms].filter((form) => form.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
}

/** Enough for every server's current token plus the candidates recently sent to `PUT /v1/token`. */
const MAX_REMEMBERED = 64;

/**
 * The last line of defence for "the raw token never leaves the daemon": every token the daemon
 * has held or been handed in this run, so that each sink (API answers and their headers, events,
 * log lines, state files) can replace it with `[redacted]` whatever path the text took: an
 * upstream error page, a reflected header, a `Location`, a message built from any of them.
 * The upstream exchange scrubs what it knows first; this catches whatever it did not.
 */
export class SecretScrubber {
  private readonly secrets: string[] = [];

  /** Remembers a token (most recent kept when the list is full). */
  remember(secret: string | undefined | null): void {
    if (typeof secret !== 'string' || secret === '') return;
    const at = this.secrets.indexOf(secret);
    if (at !== -1) this.secrets.splice(at, 1);
    this.secrets.push(secret);
    if (this.secrets.length > MAX_REMEMBERED) this.secrets.shift();
  }

  scrub(text: string): string {
    return this.secrets.length === 0 ? text : scrubSecrets(text, this.secrets);
  }

  /** True when the text holds a remembered token in any form scrub() replaces. */
  leaks(text: string): boolean {
    return this.scrub(text) !== text;
  }
}
