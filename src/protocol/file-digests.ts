import { createHash } from 'node:crypto';

/**
 * The digests of a whole downloaded file, shared by the daemon's download writer and the client's
 * streaming download: one pass of sha1 and sha256 over every byte (a resumed prefix included).
 */
export class FileDigests {
  private readonly sha1 = createHash('sha1');
  private readonly sha256 = createHash('sha256');

  update(chunk: Buffer): void {
    this.sha1.update(chunk);
    this.sha256.update(chunk);
  }

  digest(): { sha1: string; sha256: string } {
    return { sha1: this.sha1.digest('hex'), sha256: this.sha256.digest('hex') };
  }
}

const SHA1_SHAPED_ETAG = /^"?([0-9a-fA-F]{40})"?$/;
const SHA1 = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;

/**
 * The server's own checksums of a body (DESIGN section 6, `verifiedBy: server-checksum`):
 * `X-Checksum-Sha1`/`-Sha256`, else Artifactory's sha1-shaped `ETag`; lower-case, only well-formed
 * values.
 */
export function serverChecksums(headers: Readonly<Record<string, string | undefined>>): { sha1?: string; sha256?: string } {
  const sha1 = headers['x-checksum-sha1']?.trim().toLowerCase() || SHA1_SHAPED_ETAG.exec(headers.etag?.trim() ?? '')?.[1]?.toLowerCase();
  const sha256 = headers['x-checksum-sha256']?.trim().toLowerCase();
  return { ...(sha1 !== undefined && SHA1.test(sha1) ? { sha1 } : {}), ...(sha256 !== undefined && SHA256.test(sha256) ? { sha256 } : {}) };
}
