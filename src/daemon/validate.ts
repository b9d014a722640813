import type { z } from 'zod';
import { BrokerError } from '../protocol/errors.js';
import { describeIssue } from '../protocol/zod-issues.js';

/**
 * Validates one part of a request with its zod schema; a failure is a BROKER_BAD_REQUEST whose
 * message names the field and what is expected.
 */
export function parseRequestPart<S extends z.ZodType>(schema: S, value: unknown, part: 'body' | 'query' | 'params' | 'headers', hint?: string): z.output<S> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  return failBadRequest(`Invalid request ${part}: ${describeIssue(issue, part)}.`, hint, issue === undefined ? undefined : { field: [part, ...issue.path].join('.') });
}

function failBadRequest(message: string, hint: string | undefined, details: Record<string, unknown> | undefined): never {
  throw new BrokerError('BROKER_BAD_REQUEST', {
    message,
    ...(hint === undefined ? {} : { hint }),
    ...(details === undefined ? {} : { details }),
  });
}
