import { describe, expect, it } from 'vitest';
import { canonicalDocumentUrl, lastCanonicalSegment, sourceIdFor } from '../src/broker/source-documents.js';

/** Source ids (DESIGN section 6) and the canonical names of document URLs in both forms. */
describe('source ids from display names', () => {
  it.each([
    ['Release Test', 'release-test'],
    ['3.7 compatible apps', '3.7-compatible-apps'],
    ['Nordic  Internal / Beta!', 'nordic-internal-beta'],
    ['..', 'source'],
    ['-._Weird_.-', 'weird'],
    ['Ünïcode Äpps', 'n-code-pps'],
    ['x'.repeat(80), 'x'.repeat(64)],
    ['Official', 'official-2'],
  ])('%s -> %s', (name, id) => {
    expect(sourceIdFor(name, () => false)).toBe(id);
  });

  it('-2, -3 … when taken, still at most 64 characters', () => {
    const taken = new Set(['release-test', 'release-test-2']);
    expect(sourceIdFor('Release Test', (id) => taken.has(id))).toBe('release-test-3');
    const long = 'y'.repeat(64);
    expect(sourceIdFor(long, (id) => id === long)).toBe(`${'y'.repeat(62)}-2`);
  });
});

describe('canonical names of document URLs', () => {
  const api = (repoKey: string, path: string): string => `https://files.example/ui/api/v1/download?isNativeBrowsing=false&repoKey=${repoKey}&path=${encodeURIComponent(path)}`;

  it('the download-API form is named by its path parameter, the artifact form by its path', () => {
    expect(lastCanonicalSegment(api('swtools', 'external/ncd/apps/official/pc-nrfconnect-ppk.json'))).toBe('pc-nrfconnect-ppk.json');
    expect(canonicalDocumentUrl(api('swtools', 'external/ncd/apps/official/pc-nrfconnect-ppk.json'))).toBe('https://files.example/artifactory/swtools/external/ncd/apps/official/pc-nrfconnect-ppk.json');
    expect(lastCanonicalSegment('https://files.example/artifactory/swtools/external/a%20b.json')).toBe('a b.json');
    expect(canonicalDocumentUrl('https://files.example/artifactory/x/a.json?signature=secret')).toBe('https://files.example/artifactory/x/a.json');
  });

  it.each([
    'https://h/artifactory/x/..%2F..%2Fetc%2Fpasswd',
    'https://h/artifactory/x/a%5Cb.json',
    'https://h/artifactory/x/',
    'https://h/ui/api/v1/download?repoKey=r&path=a&path=b',
    'https://h/ui/api/v1/download?path=a.json',
    'not a url',
  ])('%s has no file name', (url) => {
    expect(lastCanonicalSegment(url)).toBeUndefined();
  });
});
