import { describe, expect, it } from 'vitest';
import { formatApps } from '../../src/cli/commands/apps-command.js';
import { tokenAdvice } from '../../src/cli/commands/status-command.js';
import { formatRefresh, formatSources } from '../../src/cli/commands/sources-command.js';
import type { SourceView } from '../../src/protocol/sources.js';

const base: SourceView = {
  id: 'official',
  name: 'Official',
  url: 'https://files.example/artifactory/swtools/external/ncd/apps/official/source.json',
  official: true,
  restricted: false,
  thirdParty: false,
  state: 'ok',
  appCount: 12,
  withdrawnCount: 0,
  lastRefreshAt: '2026-01-01T10:15:42.000Z',
  lastError: null,
  problems: [],
  errorCount: 0,
  nextRefreshAt: '2026-01-01T11:15:42.000Z',
};

describe('sources and apps output', () => {
  it('sources list: a table, then each source\'s problems with field paths and what happens next', () => {
    const problem = { code: 'BROKER_SOURCE_INVALID', message: 'https://x/a.json: app info is not valid: "versions.1.0.0.shasum" must be the 40-character hex sha1 of the tarball.', at: '2026-01-01T10:20:00.000Z', url: 'https://x/a.json', field: 'versions.1.0.0.shasum' };
    const failing: SourceView = { ...base, id: 'my-apps', name: 'My apps', official: false, url: 'https://x/source.json', state: 'failing', appCount: 3, withdrawnCount: 1, lastError: problem, problems: [problem], errorCount: 7, lastRefreshAt: null, nextRefreshAt: '2026-01-01T10:20:02.000Z' };
    expect(formatSources([base, failing])).toEqual([
      'ID          NAME      STATE    APPS              LAST REFRESH       URL',
      `official *  Official  ok       12                2026-01-01 10:15Z  ${base.url}`,
      'my-apps     My apps   failing  3 (+1 withdrawn)  never              https://x/source.json',
      '',
      'my-apps:',
      `  ! ${problem.message} [field: versions.1.0.0.shasum] (BROKER_SOURCE_INVALID)`,
      '  ... and 6 more problems',
      // Never refreshed whole: no claim of a "last good index" that never existed.
      '  Next attempt: 2026-01-01 10:20Z. The 3 apps read so far are still served.',
      '',
      '* the official source (always present)',
    ]);
  });

  it('sources refresh: one line per source, problems under the ones that failed', () => {
    const problem = { code: 'BROKER_TOKEN_MISSING', message: 'No identity token is set for "nordic".', at: '2026-01-01T10:20:00.000Z' };
    const lines = formatRefresh([
      { ...base, outcome: 'unchanged' },
      { ...base, id: 'restricted', name: 'Restricted', official: false, restricted: true, state: 'needs-token', appCount: 1, lastError: problem, problems: [problem], errorCount: 1, outcome: 'needs-token' },
    ]);
    expect(lines[0]).toBe('official: up to date (12 apps)');
    expect(lines[1]).toBe('restricted: needs a token (1 app from the last good index)');
    expect(lines[2]).toBe('  ! No identity token is set for "nordic". (BROKER_TOKEN_MISSING)');
    expect(lines[3]).toMatch(/tokenbroker token set`/);
  });

  it('a rejected token is replaced, not set (token set refuses while one is set)', () => {
    const problem = { code: 'BROKER_TOKEN_INVALID', message: 'The server rejected the identity token for "nordic".', at: '2026-01-01T10:20:00.000Z' };
    const lines = formatRefresh([{ ...base, id: 'restricted', name: 'Restricted', official: false, restricted: true, state: 'needs-token', appCount: 1, lastError: problem, problems: [problem], errorCount: 1, outcome: 'needs-token' }]);
    expect(lines[0]).toBe('restricted: needs a token (1 app from the last good index)');
    expect(lines.join('\n')).toMatch(/tokenbroker token replace`/);
    expect(lines.join('\n')).not.toMatch(/token set`/);
  });

  it('status: sources needing a token are told to set one, or to replace a rejected one', () => {
    expect(tokenAdvice([{ state: 'absent' }])).toBe('set one with `tokenbroker token set`');
    expect(tokenAdvice([{ state: 'invalid' }])).toMatch(/tokenbroker token replace`$/);
    expect(tokenAdvice([{ state: 'expired' }, { state: 'valid' }])).not.toMatch(/token set`/);
    expect(tokenAdvice([{ state: 'absent' }, { state: 'invalid' }])).toBe('`tokenbroker token set`, or `token replace` for a rejected one');
  });

  it('a source never fetched claims no last good index', () => {
    const problem = { code: 'BROKER_UPSTREAM_UNREACHABLE', message: 'The server cannot be reached.', at: '2026-01-01T10:20:00.000Z' };
    const never: SourceView = { ...base, id: 'mine', name: 'Mine', official: false, state: 'failing', appCount: 0, lastRefreshAt: null, lastError: problem, problems: [problem], errorCount: 1 };
    const listed = formatSources([never]).join('\n');
    expect(listed).toContain('No index has been fetched yet');
    expect(listed).not.toMatch(/last good index/);
    expect(formatRefresh([{ ...never, outcome: 'failed' }])[0]).toBe('mine: failed (no index fetched yet)');
    expect(formatRefresh([{ ...base, appCount: 1, outcome: 'updated' }])[0]).toBe('official: updated (1 app)');
  });

  it('apps list with no apps says how to get some', () => {
    expect(formatApps([])[0]).toMatch(/sources refresh/);
  });
});
