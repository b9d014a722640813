import { describe, expect, it } from 'vitest';
import { formatClientTokenTable, parseCreateOptions } from '../../src/cli/commands/client-token-command.js';
import { bufferIO } from '../helpers/buffer-io.js';
import { main } from '../../src/cli/main.js';
import { UsageError } from '../../src/cli/errors.js';


describe('client-token CLI', () => {
  it('turns flags into the API body: default scope user, repeatable and comma-separated scopes', () => {
    expect(parseCreateOptions({ description: 'ci', scope: [], json: false })).toEqual({ description: 'ci', scope: 'user' });
    expect(parseCreateOptions({ description: 'ci', scope: ['fetch,status:read', 'fetch'], expiresInDays: '30', json: false })).toEqual({ description: 'ci', scope: ['fetch', 'status:read'], expiresInDays: 30 });
    expect(parseCreateOptions({ description: 'ci', scope: ['user'], json: false }).scope).toBe('user');
  });

  it.each([
    [['--description', 'x', '--scope', 'admin'], /--scope must be "user" or a list of scopes/],
    [['--description', 'x', '--scope', 'user,fetch'], /--scope user already includes every scope/],
    [['--description', 'x', '--expires-in-days', '1.5'], /--expires-in-days must be a whole number of days/],
    [['--description', 'x', '--expires-in-days', '4000'], /--expires-in-days must be at most 3650 days/],
    [['--description', ''], /--description must not be empty/],
    [['--description', 'a\tb'], /--description must be printable text/],
    [[], /required option '--description <text>'/],
  ])('create %j is a usage error (exit 2) before any request', async (args, message) => {
    const io = bufferIO();
    // No daemon at this socket: a request would fail with exit 3, not 2.
    expect(await main(['--socket', '/nonexistent/tb.sock', 'client-token', 'create', ...args], { io })).toBe(2);
    expect(io.err()).toMatch(message);
  });

  it('revoke needs an ID', async () => {
    const io = bufferIO();
    expect(await main(['client-token', 'revoke'], { io })).toBe(2);
    expect(io.err()).toMatch(/missing required argument 'id'/);
  });

  it('the table has the seed columns, marks expired tokens and never-used ones', () => {
    const now = Date.UTC(2026, 5, 1);
    const lines = formatClientTokenTable(
      [
        { id: 'a1', description: 'ci-runner', subject: 'ada (ci-runner)', issuedAt: '2026-01-01T10:00:00.000Z', expiresAt: '2026-04-01T10:00:00.000Z', scope: ['status:read', 'fetch'], lastUsedAt: '2026-03-01T08:30:00.000Z' },
        { id: 'b2', description: 'container', subject: 'ada (container)', issuedAt: '2026-05-01T00:00:00.000Z', expiresAt: '2026-08-01T00:00:00.000Z', scope: 'user', lastUsedAt: null },
      ],
      now,
    );
    expect(lines[0]).toMatch(/^Description\s+Subject\s+Token ID\s+Issued\s+Expires\s+Scope\s+Last used$/);
    expect(lines[1]).toMatch(/^ci-runner\s+ada \(ci-runner\)\s+a1\s+2026-01-01 10:00 UTC\s+2026-04-01 10:00 UTC \(expired\)\s+status:read,fetch\s+2026-03-01 08:30 UTC$/);
    expect(lines[2]).toMatch(/^container\s+ada \(container\)\s+b2\s+2026-05-01 00:00 UTC\s+2026-08-01 00:00 UTC\s+user\s+never$/);
    // Columns line up.
    expect(lines[1]?.indexOf('ada (ci-runner)')).toBe(lines[0]?.indexOf('Subject'));
  });

  it('UsageError is what flag problems throw', () => {
    expect(() => parseCreateOptions({ description: 'x', scope: ['nope'], json: false })).toThrow(UsageError);
  });
});
