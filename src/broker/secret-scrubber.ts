import { scrubSecrets } from './scrub.js';

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
