import { describe, expect, it } from 'vitest';
import { resolveTarball, tarballFileName } from '../../src/broker/app-tarball.js';

describe('tarball file names (download destinations)', () => {
  it.each([
    ['https://h/artifactory/x/pc-nrfconnect-ble-4.0.4.tgz', 'pc-nrfconnect-ble-4.0.4.tgz'],
    ['https://h/artifactory/x/..', 'app-1.0.0.tgz'],
    ['https://h/artifactory/x/%2e%2e', 'app-1.0.0.tgz'],
    ['https://h/artifactory/x/..%2F..%2Fetc%2Fpasswd', 'app-1.0.0.tgz'],
    ['https://h/artifactory/x/a%5Cb.tgz', 'app-1.0.0.tgz'],
    ['https://h/artifactory/x/', 'app-1.0.0.tgz'],
    ['https://h/artifactory/x/.hidden.tgz', 'app-1.0.0.tgz'],
    ['https://h/artifactory/x/name%00.tgz', 'app-1.0.0.tgz'],
    ['not a url', 'app-1.0.0.tgz'],
    // The UI download API form is named after its canonical path, never "download".
    ['https://h/ui/api/v1/download?isNativeBrowsing=false&repoKey=swtools&path=external/ncd/apps/official/pc-nrfconnect-ppk-4.2.1.tgz', 'pc-nrfconnect-ppk-4.2.1.tgz'],
    ['https://h/ui/api/v1/download?repoKey=swtools&path=external%2Fa%2Fpc-nrfconnect-ppk-4.2.1.tgz', 'pc-nrfconnect-ppk-4.2.1.tgz'],
    ['https://h/ui/api/v1/download?repoKey=swtools&path=external/a/..', 'app-1.0.0.tgz'],
    ['https://h/ui/api/v1/download?repoKey=swtools&path=a&path=b.tgz', 'app-1.0.0.tgz'],
  ])('%s -> %s', (url, expected) => {
    expect(tarballFileName(url, 'app', '1.0.0')).toBe(expected);
  });

  it('a hostile app name or version never yields a path', () => {
    expect(tarballFileName('https://h/x/', '../../etc', '1/2')).toMatch(/^[A-Za-z0-9][A-Za-z0-9._+-]*$/);
  });

  it('an unknown version is BROKER_NOT_FOUND listing the known ones', () => {
    const app = { source: 'official', withdrawn: false, info: { name: 'app', displayName: 'App', description: '', iconUrl: '', releaseNotesUrl: '', latestVersion: '1.0.0', versions: { '1.0.0': { shasum: 'a'.repeat(40), tarballUrl: 'https://h/x/app-1.0.0.tgz' } } } };
    expect(resolveTarball(app).fileName).toBe('app-1.0.0.tgz');
    expect(() => resolveTarball(app, '__proto__')).toThrow(expect.objectContaining({ code: 'BROKER_NOT_FOUND', hint: expect.stringContaining('1.0.0') as string }) as Error);
  });
});
