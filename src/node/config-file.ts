import { readFile } from 'node:fs/promises';
import { ConfigSchema, type Config } from '../protocol/config-schema.js';
import { describeIssue } from '../protocol/zod-issues.js';

/** A config file that cannot be used; the message is one line naming the file, the key and what is expected. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Missing file = defaults (the real Nordic server). Anything else wrong is a ConfigError. */
export async function loadConfig(file: string): Promise<Readonly<Config>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return parseConfig({}, file);
    throw new ConfigError(`config ${file}: cannot be read (${(err as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config ${file}: not valid JSON (${(err as Error).message}); fix the syntax or delete the file to use the defaults`);
  }
  return parseConfig(json, file);
}

export function parseConfig(json: unknown, file: string): Readonly<Config> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(`config ${file}: must be a JSON object such as {"logLevel": "info"}`);
  }
  const result = ConfigSchema.safeParse(json);
  if (!result.success) throw new ConfigError(`config ${file}: ${describeIssue(result.error.issues[0])}`);
  return deepFreeze(result.data);
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
