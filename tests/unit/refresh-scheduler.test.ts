import { describe, expect, it } from 'vitest';
import { backoffDelay, BACKOFF_MAX_MS, intervalDelay, RefreshScheduler } from '../../src/broker/refresh-scheduler.js';
import { retryAfterSeconds } from '../../src/broker/upstream-errors.js';
import { compareVersions } from '../../src/broker/app-views.js';
import { AppInfoSchema, appInfoNotes, parseDocument, SourceJsonSchema } from '../../src/broker/source-documents.js';
import { FakeClock } from '../helpers/fake-clock.js';

describe('backoff and jitter', () => {
  it('full jitter stays within [1 s, min(5 min, 2^(n-1) s)]', () => {
    expect(backoffDelay(1, () => 1)).toBe(1000);
    expect(backoffDelay(4, () => 1)).toBe(8000);
    expect(backoffDelay(4, () => 0.5)).toBe(4000);
    expect(backoffDelay(4, () => 0)).toBe(1000);
    expect(backoffDelay(30, () => 1)).toBe(BACKOFF_MAX_MS);
    expect(backoffDelay(10_000, () => 1)).toBe(BACKOFF_MAX_MS);
  });

  it('the interval moves by at most ± jitterPercent', () => {
    const timing = { intervalMinutes: 60, jitterPercent: 10 };
    expect(intervalDelay(timing, () => 0)).toBe(54 * 60_000);
    expect(intervalDelay(timing, () => 0.5)).toBe(60 * 60_000);
    expect(intervalDelay(timing, () => 1)).toBe(66 * 60_000);
    expect(intervalDelay({ intervalMinutes: 1, jitterPercent: 0 }, () => 0.9)).toBe(60_000);
  });

  it('Retry-After is read as whole seconds (delta or HTTP date, rounded up); nonsense is ignored', () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0) + 250;
    expect(retryAfterSeconds('120', now)).toBe(120);
    expect(retryAfterSeconds(' 0 ', now)).toBe(0);
    expect(retryAfterSeconds('Thu, 01 Jan 2026 12:01:30 GMT', now)).toBe(90);
    expect(retryAfterSeconds('Thu, 01 Jan 2026 11:00:00 GMT', now)).toBe(0);
    expect(retryAfterSeconds(['7', '9'], now)).toBe(7);
    expect(retryAfterSeconds('soon', now)).toBeUndefined();
    expect(retryAfterSeconds('-5', now)).toBeUndefined();
    expect(retryAfterSeconds('1.5', now)).toBeUndefined();
    expect(retryAfterSeconds(undefined, now)).toBeUndefined();
  });
});

describe('RefreshScheduler', () => {
  function scheduler() {
    const clock = new FakeClock();
    const runs: [string, number][] = [];
    const s = new RefreshScheduler({ clock, random: () => 1, timing: () => ({ intervalMinutes: 60, jitterPercent: 0 }), run: (key) => runs.push([key, clock.now()]) });
    return { clock, runs, s, t0: clock.now() };
  }

  it('runs every key at start, then after the interval, backoff or Retry-After it is told', () => {
    const { clock, runs, s, t0 } = scheduler();
    s.start(['a', 'b']);
    clock.advance(0);
    expect(runs).toEqual([
      ['a', t0],
      ['b', t0],
    ]);
    s.succeeded('a');
    s.failed('b');
    expect(s.nextAt('a')).toBe(t0 + 3_600_000);
    expect(s.nextAt('b')).toBe(t0 + 1000);
    clock.advance(1000);
    s.failed('b', 30_000);
    expect(s.nextAt('b')).toBe(t0 + 1000 + 30_000);
    expect(s.failures('b')).toBe(2);
    clock.advance(30_000);
    s.succeeded('b');
    expect(s.failures('b')).toBe(0);
    expect(runs.map(([key]) => key)).toEqual(['a', 'b', 'b', 'b']);
  });

  it('records but schedules nothing before start() and after stop(); stop cancels every timer', () => {
    const { clock, runs, s } = scheduler();
    s.failed('a');
    expect(s.nextAt('a')).toBeUndefined();
    expect(clock.pendingTimers()).toBe(0);
    s.start(['a']);
    s.succeeded('a');
    expect(clock.pendingTimers()).toBe(1);
    s.stop();
    expect(clock.pendingTimers()).toBe(0);
    s.runNow('a');
    clock.advance(10 * 3_600_000);
    expect(runs).toEqual([]);
  });

  it('a removed key never runs', () => {
    const { clock, runs, s } = scheduler();
    s.start(['a']);
    s.remove('a');
    clock.advance(1);
    expect(runs).toEqual([]);
  });
});

describe('upstream documents', () => {
  it('source.json: the name is a display string of 1-100 printable characters', () => {
    for (const name of ['', '   ', 'a\nb', 'tab\there', 'x'.repeat(101)]) {
      const result = parseDocument(JSON.stringify({ name, apps: [] }), SourceJsonSchema, 'source.json');
      expect(result).toMatchObject({ ok: false, field: 'name' });
    }
    for (const name of ['Release Test', '3.7 compatible apps', 'Mesh-1.0', '..', 'a/b']) {
      expect(parseDocument(JSON.stringify({ name, apps: [], extra: true }), SourceJsonSchema, 'source.json')).toEqual({ ok: true, value: { name, apps: [] } });
    }
  });

  it('app info: read as the launcher reads it (latestVersion outside versions kept, noted); messages name the field', () => {
    const info = {
      name: 'app',
      displayName: 'App',
      description: 'd',
      iconUrl: 'i',
      releaseNotesUrl: 'r',
      latestVersion: '2.0.0',
      versions: { '1.0.0': { shasum: 'A'.repeat(40), tarballUrl: 't' } },
    };
    const result = parseDocument(JSON.stringify(info), AppInfoSchema, 'app info');
    expect(result).toMatchObject({ ok: true });
    expect(result.ok ? appInfoNotes(result.value) : []).toEqual([{ field: 'latestVersion', message: expect.stringMatching(/latestVersion "2.0.0" is not in "versions" \(known: 1.0.0\)/) as string }]);
    expect(parseDocument(JSON.stringify({ ...info, versions: { '1.0.0': { shasum: 'nope', tarballUrl: 't' } } }), AppInfoSchema, 'app info')).toMatchObject({ ok: false, field: 'versions.1.0.0.shasum' });
    const fixed = parseDocument(JSON.stringify({ ...info, latestVersion: '1.0.0' }), AppInfoSchema, 'app info');
    expect(fixed.ok && fixed.value.versions['1.0.0']?.shasum).toBe('a'.repeat(40));
    expect(parseDocument('{"name":', AppInfoSchema, 'app info')).toMatchObject({ ok: false, message: expect.stringMatching(/^app info is not valid JSON/) });
  });

  it('versions sort newest first, pre-releases before their release', () => {
    const sorted = ['1.0.0', '1.10.0', '1.2.0', '2.0.0-beta.2', '2.0.0', '2.0.0-beta.10', '0.9'].sort((a, b) => compareVersions(b, a));
    expect(sorted).toEqual(['2.0.0', '2.0.0-beta.10', '2.0.0-beta.2', '1.10.0', '1.2.0', '1.0.0', '0.9']);
  });
});
