import { describe, expect, it } from 'vitest';
import { BrokerError } from '../../src/protocol/errors.js';
import { firstMismatch, firstRequest, isShort, parseContentRange, partInfoFor, partKey, planResponse, restartsAfter, verificationOf } from '../../src/protocol/resume-decisions.js';

/** The resume decisions of the one writer, without a file or a socket (issue 19). */
describe('resume decisions', () => {
  const key = partKey('https://files.example/artifactory/a/b.tgz');
  const part = (size: number, info: Partial<{ url: string; etag: string; lastModified: string }> = {}) => ({ size, info: { url: key, etag: 'abc', ...info } });

  it('continues a .part of the same URL with Range + If-Range (ETag first, else Last-Modified)', () => {
    expect(firstRequest(part(100), key)).toEqual({ discardExisting: false, resumeFrom: 100, range: 'bytes=100-', ifRange: 'abc' });
    expect(firstRequest({ size: 5, info: { url: key, lastModified: 'Tue, 01 Dec 2026 10:00:00 GMT' } }, key)).toMatchObject({ resumeFrom: 5, ifRange: 'Tue, 01 Dec 2026 10:00:00 GMT' });
  });

  it('starts over (and removes the .part) for another URL, no validator, or an empty .part', () => {
    expect(firstRequest(undefined, key)).toEqual({ discardExisting: false, resumeFrom: 0 });
    expect(firstRequest(part(100, { url: 'https://elsewhere/x' }), key)).toEqual({ discardExisting: true, resumeFrom: 0 });
    expect(firstRequest({ size: 100, info: { url: key } }, key)).toEqual({ discardExisting: true, resumeFrom: 0 });
    expect(firstRequest(part(0), key)).toEqual({ discardExisting: true, resumeFrom: 0 });
  });

  it('one key for both writers: the parsed href, whichever form the URL was given in', () => {
    expect(partKey('HTTPS://Files.Example/artifactory/a/b.tgz')).toBe(key);
    expect(partKey('not a url')).toBe('not a url');
  });

  it('restarts after a 416 of a resume only', () => {
    const e416 = new BrokerError('BROKER_UPSTREAM_ERROR', { details: { status: 416 } });
    expect(restartsAfter(e416, 100)).toBe(true);
    expect(restartsAfter(e416, 0)).toBe(false);
    expect(restartsAfter(new BrokerError('BROKER_UPSTREAM_ERROR', { details: { status: 500 } }), 100)).toBe(false);
    expect(restartsAfter(new Error('x'), 100)).toBe(false);
  });

  it('a 206 at the asked place appends; elsewhere it is refused; a 200 is a fresh whole file', () => {
    expect(planResponse(206, { 'content-range': 'bytes 100-199/200' }, 100)).toEqual({ kind: 'append', resumeFrom: 100, total: 200 });
    expect(planResponse(206, { 'content-range': 'bytes 100-199/*' }, 100)).toEqual({ kind: 'append', resumeFrom: 100, total: undefined });
    expect(planResponse(206, { 'content-range': 'bytes 0-199/200' }, 100)).toEqual({ kind: 'wrong-range', contentRange: 'bytes 0-199/200' });
    expect(planResponse(206, {}, 100)).toEqual({ kind: 'wrong-range', contentRange: undefined });
    // If-Range said the file changed: a 200 means the .part is worthless, whatever was asked.
    expect(planResponse(200, { 'content-length': '300' }, 100)).toEqual({ kind: 'fresh', resumeFrom: 0, total: 300 });
    expect(planResponse(200, {}, 0)).toEqual({ kind: 'fresh', resumeFrom: 0, total: undefined });
    expect(planResponse(206, { 'content-range': 'bytes 0-9/10' }, 0)).toEqual({ kind: 'unexpected', status: 206 });
    expect(planResponse(304, {}, 0)).toEqual({ kind: 'unexpected', status: 304 });
  });

  it('parses Content-Range strictly', () => {
    expect(parseContentRange('bytes 0-9/10')).toEqual({ start: 0, end: 9, total: 10 });
    expect(parseContentRange('bytes */10')).toBeUndefined();
    expect(parseContentRange('items 0-9/10')).toBeUndefined();
    expect(parseContentRange(undefined)).toBeUndefined();
  });

  it('records the validators of the answer in .part.json', () => {
    expect(partInfoFor(key, { etag: 'e1', 'last-modified': 'lm' }, 10)).toEqual({ url: key, etag: 'e1', lastModified: 'lm', total: 10 });
    expect(partInfoFor(key, {}, undefined)).toEqual({ url: key });
  });

  it('verifies against the caller\'s digest, else the server\'s, else nothing; a short body is short', () => {
    expect(verificationOf({ sha1: 'a' }, { sha256: 'b' })).toEqual({ verifiedBy: 'shasum', against: { sha1: 'a' } });
    expect(verificationOf({}, { sha256: 'b' })).toEqual({ verifiedBy: 'server-checksum', against: { sha256: 'b' } });
    expect(verificationOf({}, {})).toEqual({ verifiedBy: 'none', against: {} });
    expect(firstMismatch({ sha1: 'AA', sha256: 'bb' }, { sha1: 'aa', sha256: 'cc' })).toEqual({ algorithm: 'sha256', expected: 'bb', actual: 'cc' });
    expect(firstMismatch({ sha1: 'aa' }, { sha1: 'aa', sha256: 'cc' })).toBeUndefined();
    expect(isShort(5, 10)).toBe(true);
    expect(isShort(10, 10)).toBe(false);
    expect(isShort(5, undefined)).toBe(false);
  });
});
