import type { z } from 'zod';

/**
 * One readable sentence from a zod issue: where (the key path), what is wrong, what is expected.
 * Used for config files, API bodies and queries, CLI arguments and upstream documents alike.
 */
export function describeIssue(issue: z.core.$ZodIssue | undefined, prefix = ''): string {
  if (issue === undefined) return 'is not valid';
  const where = joinPath(prefix, formatPath(issue.path));
  const subject = where === '' ? 'value' : `"${where}"`;
  switch (issue.code) {
    case 'unrecognized_keys': {
      const keys = issue.keys.map((k) => `"${joinPath(where, k)}"`).join(', ');
      return `unknown key ${keys}; remove it or check its spelling (keys are case-sensitive)`;
    }
    case 'invalid_type':
      return issue.message.startsWith('Invalid input: expected')
        ? `${subject} has the wrong type: ${issue.message.replace('Invalid input: ', '')}`
        : `${subject} ${issue.message}`;
    case 'invalid_value':
      return `${subject} must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return `${subject} ${lowerFirst(issue.message)}`;
  }
}

export function formatPath(pathParts: readonly PropertyKey[]): string {
  let out = '';
  for (const part of pathParts) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function joinPath(a: string, b: string): string {
  if (a === '') return b;
  if (b === '') return a;
  return b.startsWith('[') ? `${a}${b}` : `${a}.${b}`;
}

function lowerFirst(text: string): string {
  return text.length > 0 && /^[A-Z][a-z]/.test(text) ? text[0]!.toLowerCase() + text.slice(1) : text;
}
