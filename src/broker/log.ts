/** The slice of a pino logger the domain uses; pino's Logger satisfies it. Never log a secret. */
export interface DomainLog {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
  debug(obj: Record<string, unknown>, msg: string): void;
}

export const silentLog: DomainLog = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
