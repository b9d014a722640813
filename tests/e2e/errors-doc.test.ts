import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_DETAILS, errorDetailsSchema } from '../../src/protocol/error-details.js';
import { CLIENT_ERRORS, CLIENT_ERROR_CODES, ClientError, ERRORS, ERROR_CODES, BrokerError, exitCodeOf } from '../../src/protocol/errors.js';
import { exitCodeFor, UsageError } from '../../src/cli/errors.js';
import { AutostartError, DaemonNotAnsweringError, DaemonUnavailableError, UnverifiedDaemonError, UntrustedSocketError } from '../../src/client/client-errors.js';
import { REPO_ROOT } from '../helpers/test-daemon.js';

/** Rows of the table in docs/errors.md: | `CODE` | status | exit | ... */
async function documentedCodes(): Promise<Map<string, { status: number; exit: number }>> {
  const text = await readFile(path.join(REPO_ROOT, 'docs', 'errors.md'), 'utf8');
  const rows = new Map<string, { status: number; exit: number }>();
  for (const match of text.matchAll(/^\|\s*`(BROKER_[A-Z_]+)`\s*\|\s*(\d{3})\s*\|\s*(\d)\s*\|/gm)) {
    rows.set(match[1] as string, { status: Number(match[2]), exit: Number(match[3]) });
  }
  return rows;
}

describe('error registry', () => {
  it('docs/errors.md lists every code with its HTTP status and exit code, and nothing else', async () => {
    const documented = await documentedCodes();
    expect([...documented.keys()].sort()).toEqual([...ERROR_CODES].sort());
    for (const code of ERROR_CODES) {
      expect(documented.get(code), code).toEqual({ status: ERRORS[code].status, exit: ERRORS[code].exit });
    }
  });

  it('matches the status table of the design contract', () => {
    const expected: Record<number, string[]> = {
      400: ['BROKER_BAD_REQUEST'],
      401: ['BROKER_UNAUTHORIZED'],
      403: ['BROKER_FORBIDDEN', 'BROKER_URL_NOT_ALLOWED', 'BROKER_UPSTREAM_FORBIDDEN'],
      404: ['BROKER_NOT_FOUND', 'BROKER_UPSTREAM_NOT_FOUND'],
      409: ['BROKER_TOKEN_MISSING', 'BROKER_TOKEN_INVALID', 'BROKER_TOKEN_EXPIRED', 'BROKER_SOURCE_EXISTS', 'BROKER_SOURCE_OFFICIAL'],
      412: ['BROKER_CONFIG_CHANGED'],
      422: ['BROKER_SOURCE_INVALID'],
      500: ['BROKER_INTERNAL'],
      502: ['BROKER_UPSTREAM_UNREACHABLE', 'BROKER_UPSTREAM_ERROR', 'BROKER_CHECKSUM_MISMATCH'],
      503: ['BROKER_SECRET_STORE_UNAVAILABLE'],
    };
    for (const [status, codes] of Object.entries(expected)) {
      for (const code of codes) expect(ERRORS[code as keyof typeof ERRORS].status, code).toBe(Number(status));
    }
    expect(ERROR_CODES).toHaveLength(Object.values(expected).flat().length);
  });

  it('every code has a message and an actionable hint', () => {
    for (const code of ERROR_CODES) {
      const error = new BrokerError(code);
      expect(error.message.length, code).toBeGreaterThan(10);
      expect(error.hint.length, code).toBeGreaterThan(10);
      expect(error.toEnvelope()).toEqual({ error: { code, message: error.message, hint: error.hint } });
    }
  });

  it('token errors exit 4, upstream errors 5, checksum 6', () => {
    expect(new BrokerError('BROKER_TOKEN_MISSING').exitCode).toBe(4);
    expect(new BrokerError('BROKER_TOKEN_EXPIRED').exitCode).toBe(4);
    expect(new BrokerError('BROKER_UPSTREAM_UNREACHABLE').exitCode).toBe(5);
    expect(new BrokerError('BROKER_CHECKSUM_MISMATCH').exitCode).toBe(6);
  });

  it('every code declares the shape of its details, and docs/errors.md lists exactly those fields', async () => {
    expect(Object.keys(ERROR_DETAILS).sort()).toEqual([...ERROR_CODES].sort());
    const text = await readFile(path.join(REPO_ROOT, 'docs', 'errors.md'), 'utf8');
    for (const code of ERROR_CODES) {
      const row = new RegExp(`^\\|\\s*\`${code}\`\\s*\\|\\s*([^|]+)\\|\\s*$`, 'm').exec(text);
      expect(row, code).not.toBeNull();
      // Field names are the backticked words outside parentheses (which explain values).
      const documented = [...(row?.[1] ?? '').replace(/\([^)]*\)/g, '').matchAll(/`(\w+)`/g)].map((m) => m[1]).sort();
      expect(documented, code).toEqual(Object.keys(ERROR_DETAILS[code].shape).sort());
    }
  });

  it('details schemas accept what the daemon sends and reject wrong types (retryAfter is whole seconds)', () => {
    const schema = errorDetailsSchema('BROKER_UPSTREAM_ERROR');
    expect(schema?.safeParse({ status: 429, retryAfter: 7, url: 'https://h/artifactory/r/a.tgz' }).success).toBe(true);
    expect(schema?.safeParse({ status: 429, retryAfter: '7' }).success).toBe(false);
    expect(schema?.safeParse({ status: 429, retryAfter: 1.5 }).success).toBe(false);
    expect(errorDetailsSchema('BROKER_NO_SUCH_CODE')).toBeUndefined();
  });

  it('client-side conditions are registered with their exit codes, and docs/errors.md lists exactly those', async () => {
    const text = await readFile(path.join(REPO_ROOT, 'docs', 'errors.md'), 'utf8');
    const documented = new Map([...text.matchAll(/^\|\s*`([A-Z_]+)`\s*\|[^|]*\|\s*(\d)\s*\|/gm)].filter((m) => !(m[1] as string).startsWith('BROKER_')).map((m) => [m[1] as string, Number(m[2])]));
    expect([...documented.keys()].sort()).toEqual([...CLIENT_ERROR_CODES].sort());
    for (const code of CLIENT_ERROR_CODES) {
      expect(documented.get(code), code).toBe(CLIENT_ERRORS[code].exit);
      const error = new ClientError(code);
      expect(error.hint.length, code).toBeGreaterThan(10);
      expect(exitCodeOf(code)).toBe(CLIENT_ERRORS[code].exit);
    }
  });

  it('the CLI exit code is one lookup of the error code, for daemon and client-side errors alike', () => {
    expect(exitCodeFor(new DaemonUnavailableError('/s'))).toBe(3);
    expect(exitCodeFor(new DaemonNotAnsweringError('/s', 7, 5_000))).toBe(3);
    expect(exitCodeFor(new AutostartError('/s', 'why', 'hint'))).toBe(3);
    expect(exitCodeFor(new UntrustedSocketError('/s', 'why', 'hint'))).toBe(1);
    expect(exitCodeFor(new UnverifiedDaemonError('/s', 'why'))).toBe(1);
    expect(exitCodeFor(new UsageError('bad'))).toBe(2);
    expect(exitCodeFor(new BrokerError('BROKER_TOKEN_EXPIRED'))).toBe(4);
    expect(exitCodeFor(new BrokerError('BROKER_CHECKSUM_MISMATCH'))).toBe(6);
    expect(exitCodeFor(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))).toBe(1);
    expect(exitCodeFor('not an error')).toBe(1);
    // The existing class names keep working for library users.
    expect(new DaemonNotAnsweringError('/s', 7, 5_000)).toBeInstanceOf(DaemonUnavailableError);
    expect(new UnverifiedDaemonError('/s', 'why')).toBeInstanceOf(UntrustedSocketError);
  });
});
