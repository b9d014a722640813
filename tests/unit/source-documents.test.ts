import { describe, expect, it } from 'vitest';
import { sourceIdFor } from '../../src/broker/source-documents.js';
import { artifactFileName, describeArtifactUrl, lastArtifactSegment } from '../../src/protocol/artifact-url.js';

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
    expect(lastArtifactSegment(api('swtools', 'external/ncd/apps/official/pc-nrfconnect-ppk.json'))).toBe('pc-nrfconnect-ppk.json');
    expect(describeArtifactUrl(api('swtools', 'external/ncd/apps/official/pc-nrfconnect-ppk.json'))).toBe('https://files.example/artifactory/swtools/external/ncd/apps/official/pc-nrfconnect-ppk.json');
    expect(lastArtifactSegment('https://files.example/artifactory/swtools/external/a%20b.json')).toBe('a b.json');
    expect(describeArtifactUrl('https://files.example/artifactory/x/a.json?signature=secret')).toBe('https://files.example/artifactory/x/a.json');
  });

  it.each([
    'https://h/artifactory/x/..%2F..%2Fetc%2Fpasswd',
    'https://h/artifactory/x/a%5Cb.json',
    'https://h/artifactory/x/',
    'https://h/ui/api/v1/download?repoKey=r&path=a&path=b',
    'https://h/ui/api/v1/download?path=a.json',
    'not a url',
  ])('%s has no file name', (url) => {
    expect(lastArtifactSegment(url)).toBeUndefined();
    expect(artifactFileName(url)).toBeUndefined();
  });

  it('a saved file takes the canonical name only when it is a plain file name', () => {
    expect(artifactFileName(api('swtools', 'internal/apps/pc-nrfconnect-ppk-4.2.0.tgz'))).toBe('pc-nrfconnect-ppk-4.2.0.tgz');
    expect(artifactFileName('https://files.example/artifactory/x/a%20b.json')).toBeUndefined();
    expect(artifactFileName('https://files.example/artifactory/x/.hidden')).toBeUndefined();
    expect(describeArtifactUrl('not a url')).toBe('(invalid URL)');
  });
});
