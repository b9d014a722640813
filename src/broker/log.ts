import type { DomainLog } from './ports.js';

/** A DomainLog that drops everything, for tests and tools that do not log. */
export const silentLog: DomainLog = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
