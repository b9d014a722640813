/**
 * Absolute paths follow the daemon's platform (DESIGN section 5, download targets): `/…` on Unix,
 * a drive (`C:\…`, `C:/…`) or a UNC share (`\\server\share\…`) on Windows. A Windows path that is
 * only rooted (`\dir\file`, relative to the current drive) or drive-relative (`C:file`) is not
 * absolute, and neither is a device path (`\\.\…`, `\\?\…`): a download names a file on a disk.
 */
const WINDOWS_DRIVE = /^[A-Za-z]:[\\/]/;
const WINDOWS_UNC = /^[\\/]{2}(?![.?][\\/])[^\\/]+[\\/][^\\/]+/;

export function isAbsolutePlatformPath(candidate: string, platform: NodeJS.Platform = process.platform): boolean {
  if (candidate.includes('\0')) return false;
  if (platform === 'win32') return WINDOWS_DRIVE.test(candidate) || WINDOWS_UNC.test(candidate);
  return candidate.startsWith('/');
}

/** What the error message shows as an example on this platform. */
export function absolutePathExample(platform: NodeJS.Platform = process.platform): string {
  return platform === 'win32' ? 'C:\\Users\\me\\Downloads\\app.tgz' : '/home/me/Downloads/app.tgz';
}
