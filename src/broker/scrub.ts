/**
 * Text that came from an upstream (error messages, headers, `Location`) may echo the token back:
 * a misconfigured proxy that reflects the request, an error page quoting the Authorization header.
 * Every such text is scrubbed before it reaches an answer, event, ledger, state file or log line.
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
