import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAbsolutePlatformPath } from '../../src/protocol/absolute-path.js';

/** Download targets and listeners[].downloadDirs follow the daemon's platform (issue 20). */
describe('absolute paths by platform', () => {
  const windowsAbsolute = ['C:\\Users\\me\\Downloads\\app.tgz', 'c:/Users/me/app.tgz', 'D:\\x', '\\\\server\\share\\dir\\app.tgz', '//server/share/app.tgz'];
  const windowsNot = ['\\Users\\me\\app.tgz', 'C:app.tgz', 'app.tgz', '..\\app.tgz', '\\\\.\\pipe\\tokenbroker-me', '\\\\?\\C:\\x', '\\\\server', '/home/me/app.tgz', 'C:\\x\0y'];

  it('Windows: drive and UNC paths are absolute; rooted, drive-relative and device paths are not', () => {
    for (const p of windowsAbsolute) expect(isAbsolutePlatformPath(p, 'win32'), p).toBe(true);
    for (const p of windowsNot) expect(isAbsolutePlatformPath(p, 'win32'), p).toBe(false);
  });

  it('agrees with path.win32 on what it accepts (never more lenient)', () => {
    for (const p of windowsAbsolute) expect(path.win32.isAbsolute(p), p).toBe(true);
    // path.win32 calls a rooted path absolute; a download target must name its drive.
    expect(path.win32.isAbsolute('\\Users\\me\\app.tgz')).toBe(true);
    expect(isAbsolutePlatformPath('\\Users\\me\\app.tgz', 'win32')).toBe(false);
    expect(path.win32.dirname('\\\\server\\share\\dir\\app.tgz')).toBe('\\\\server\\share\\dir');
  });

  it('Unix: a leading slash', () => {
    expect(isAbsolutePlatformPath('/home/me/app.tgz', 'linux')).toBe(true);
    expect(isAbsolutePlatformPath('/x', 'darwin')).toBe(true);
    for (const p of ['C:\\x', 'home/me', '\\\\server\\share\\x', '/a\0b']) expect(isAbsolutePlatformPath(p, 'linux'), p).toBe(false);
  });
});

describe('schemas follow the daemon platform', () => {
  /** process.platform as the daemon on Windows sees it, for the schema refinements only. */
  function asPlatform<T>(platform: NodeJS.Platform, fn: () => T): T {
    const original = Object.getOwnPropertyDescriptor(process, 'platform') as PropertyDescriptor;
    Object.defineProperty(process, 'platform', { value: platform });
    try {
      return fn();
    } finally {
      Object.defineProperty(process, 'platform', original);
    }
  }

  it('listeners[].downloadDirs and POST /v1/downloads path take C:\\ and UNC paths on Windows, / on Unix', async () => {
    const { ListenerSchema } = await import('../../src/protocol/config-schema.js');
    const { DownloadRequestSchema } = await import('../../src/protocol/downloads.js');
    const listener = (dir: string) => ListenerSchema.safeParse({ path: '\\\\.\\pipe\\tokenbroker-shared', downloadDirs: [dir] }).success;
    const download = (p: string) => DownloadRequestSchema.safeParse({ url: 'https://x.example/a', path: p }).success;
    asPlatform('win32', () => {
      expect(listener('C:\\Downloads')).toBe(true);
      expect(listener('\\\\nas\\share\\dl')).toBe(true);
      expect(listener('/srv/downloads')).toBe(false);
      expect(download('C:\\Users\\me\\app.tgz')).toBe(true);
      expect(download('\\\\nas\\share\\app.tgz')).toBe(true);
      expect(download('\\app.tgz')).toBe(false);
    });
    asPlatform('linux', () => {
      expect(listener('/srv/downloads')).toBe(true);
      expect(listener('C:\\Downloads')).toBe(false);
      expect(download('/home/me/app.tgz')).toBe(true);
      expect(download('C:\\Users\\me\\app.tgz')).toBe(false);
    });
  });
});
