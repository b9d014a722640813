import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { EventBus } from '../broker/event-bus.js';
import { applyMergePatch, RESTART_ONLY_KEYS, type ConfigView } from '../protocol/config-api.js';
import type { Config } from '../protocol/config-schema.js';
import { BrokerError } from '../protocol/errors.js';
import { ConfigError, parseConfig, parseConfigJson, readConfigText, writeConfigText } from '../node/config-file.js';

/**
 * The daemon's config at run time (DESIGN section 3): the one place that swaps it, for SIGHUP and
 * for `PATCH /v1/config` alike, and that answers `GET /v1/config`. A PATCH is a JSON merge patch
 * (RFC 7396) on the file's own content (not the defaults-filled view), guarded by `If-Match` with
 * the file's ETag, validated like the file, written atomically 0600, then applied as SIGHUP
 * applies a reload. Patches run one at a time, so two racing writers cannot both match one ETag.
 */

/** What the HTTP layer needs (faked nowhere: tests use the real one on a temp file). */
export interface ConfigApi {
  view(): Promise<ConfigView>;
  patch(ifMatch: string | undefined, patch: unknown): Promise<ConfigView>;
}

export interface ConfigControlOptions {
  file: string;
  /** The config the daemon started with (restart-only keys keep these values until a restart). */
  initial: Readonly<Config>;
  logger: Logger;
  events: EventBus;
  uid?: number | undefined;
}

export class ConfigControl implements ConfigApi {
  private applied: Readonly<Config>;
  private readonly started: Readonly<Config>;
  /** Serialises patches (and reloads) so an ETag check and its write are one step. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: ConfigControlOptions) {
    this.applied = options.initial;
    this.started = options.initial;
  }

  /** The config in force now. */
  current(): Readonly<Config> {
    return this.applied;
  }

  /** SIGHUP: reads the file again; an invalid file is logged and the running config kept. */
  reload(): Promise<void> {
    return this.serialised(async () => {
      try {
        const text = await readConfigText(this.options.file, this.uid);
        const next = parseConfig(text === undefined ? {} : parseConfigJson(text, this.options.file), this.options.file);
        this.apply(next, 'reload');
      } catch (err) {
        this.options.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'config reload failed; keeping the previous config');
      }
    });
  }

  async view(): Promise<ConfigView> {
    const text = await this.readText();
    let file: Record<string, unknown> | null = {};
    let fileError: string | undefined;
    if (text !== undefined) {
      try {
        const json = parseConfigJson(text, this.options.file);
        file = isObject(json) ? json : null;
        if (file === null) fileError = `config ${this.options.file}: must be a JSON object`;
      } catch (err) {
        file = null;
        fileError = err instanceof Error ? err.message : String(err);
      }
    }
    return this.toView(text, file, fileError);
  }

  patch(ifMatch: string | undefined, patch: unknown): Promise<ConfigView> {
    return this.serialised(async () => {
      if (ifMatch === undefined || ifMatch.trim() === '' || ifMatch.trim() === '*') {
        throw new BrokerError('BROKER_BAD_REQUEST', {
          message: 'PATCH /v1/config needs If-Match with the config\'s ETag.',
          hint: 'Read the config first (GET /v1/config answers its ETag) and send that ETag in If-Match, so a change made meanwhile is not lost.',
          details: { field: 'If-Match' },
        });
      }
      if (!isObject(patch)) {
        throw new BrokerError('BROKER_BAD_REQUEST', { message: 'The body must be a JSON merge patch: an object such as {"logLevel": "debug"}.', details: { field: 'body' } });
      }
      const text = await this.readText();
      const etag = etagOf(text);
      if (!matches(ifMatch, etag)) {
        throw new BrokerError('BROKER_CONFIG_CHANGED', {
          message: `The config file changed since it was read (its ETag is now ${etag}); nothing was written.`,
          details: { etag },
        });
      }
      let current: unknown = {};
      if (text !== undefined) {
        try {
          current = parseConfigJson(text, this.options.file);
        } catch (err) {
          throw new BrokerError('BROKER_BAD_REQUEST', {
            message: `${err instanceof Error ? err.message : String(err)}; a patch cannot be applied to it.`,
            hint: `Fix ${this.options.file} by hand (or remove it to use the defaults), then patch again.`,
            details: { reason: 'config-file-invalid' },
          });
        }
      }
      const merged = applyMergePatch(isObject(current) ? current : {}, patch);
      let next: Readonly<Config>;
      try {
        next = parseConfig(merged, this.options.file);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        // Validated like the file: the same one-line message naming the key.
        throw new BrokerError('BROKER_BAD_REQUEST', { message: `The patched config is not valid, nothing was written: ${err.message}`, hint: 'Fix the patch; keys and values are those of config.json (see the README).', details: { reason: 'config-invalid' } });
      }
      const written = `${JSON.stringify(merged, null, 2)}\n`;
      try {
        await writeConfigText(this.options.file, written, this.uid);
      } catch (err) {
        if (err instanceof ConfigError) throw new BrokerError('BROKER_BAD_REQUEST', { message: err.message, ...(err.hint === undefined ? {} : { hint: err.hint }), details: { reason: 'config-file-unsafe' } });
        throw err;
      }
      this.options.logger.info({ config: this.options.file, keys: Object.keys(patch) }, 'config changed through the API');
      this.apply(next, 'patch');
      return this.toView(written, merged as Record<string, unknown>);
    });
  }

  /** What SIGHUP did in main.ts, now for both ways in: swap, log level, warnings, event. */
  private apply(next: Readonly<Config>, via: 'reload' | 'patch'): void {
    const before = this.applied;
    this.applied = next;
    this.options.logger.level = next.logLevel;
    const changed = Object.keys(next).filter((key) => JSON.stringify(next[key as keyof Config]) !== JSON.stringify(before[key as keyof Config]));
    const restartRequired = this.restartRequired();
    if (via === 'reload') this.options.logger.info({ config: this.options.file }, 'config reloaded');
    if (restartRequired.length > 0) {
      this.options.logger.warn({ keys: restartRequired }, `${restartRequired.map((key) => `"${key}"`).join(', ')} changed; ${restartRequired.length === 1 ? 'it is' : 'they are'} read at start only: restart the daemon to apply them`);
    }
    if (changed.length > 0) this.options.events.emit('config.changed', { via, changed, restartRequired });
  }

  /** Restart-only keys whose applied value differs from the one the daemon started with. */
  private restartRequired(): string[] {
    return RESTART_ONLY_KEYS.filter((key) => JSON.stringify(this.applied[key]) !== JSON.stringify(this.started[key]));
  }

  private toView(text: string | undefined, file: Record<string, unknown> | null, fileError?: string): ConfigView {
    return {
      path: this.options.file,
      exists: text !== undefined,
      file,
      ...(fileError === undefined ? {} : { fileError }),
      effective: this.applied as unknown as Record<string, unknown>,
      etag: etagOf(text),
      restartRequired: this.restartRequired(),
    };
  }

  private async readText(): Promise<string | undefined> {
    try {
      return await readConfigText(this.options.file, this.uid);
    } catch (err) {
      if (err instanceof ConfigError) throw new BrokerError('BROKER_BAD_REQUEST', { message: err.message, ...(err.hint === undefined ? {} : { hint: err.hint }), details: { reason: 'config-file-unsafe' } });
      throw err;
    }
  }

  private get uid(): number | undefined {
    return 'uid' in this.options ? this.options.uid : process.getuid?.();
  }

  private serialised<T>(run: () => Promise<T>): Promise<T> {
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A strong ETag of the file's bytes (a missing file has its own). */
export function etagOf(text: string | undefined): string {
  const digest = createHash('sha256').update(text === undefined ? '\0no config file' : `\u0001${text}`).digest('base64url');
  return `"${digest.slice(0, 27)}"`;
}

/** If-Match: a list of entity tags, compared strongly (a weak tag never matches). */
function matches(ifMatch: string, etag: string): boolean {
  return ifMatch.split(',').some((candidate) => candidate.trim() === etag);
}
