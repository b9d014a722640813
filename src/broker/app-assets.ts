import { createHash } from 'node:crypto';
import { z } from 'zod';
import { BrokerError } from '../protocol/errors.js';
import type { StateStore } from './ports.js';
import { lastArtifactSegment } from '../protocol/artifact-url.js';
import type { AppInfo } from './source-documents.js';

/**
 * An app's icon and release notes, kept beside the index (DESIGN section 6) so they are served
 * offline. One state document per source, app and kind (written atomically through the state
 * store); the file name is a hash, because app names are case-sensitive and state names are not.
 */

export const APP_ASSET_KINDS = ['icon', 'release-notes'] as const;
export type AppAssetKind = (typeof APP_ASSET_KINDS)[number];

const StoredAssetSchema = z.object({
  version: z.literal(1),
  url: z.string(),
  contentType: z.string(),
  data: z.string(),
});

export interface AppAsset {
  contentType: string;
  bytes: Buffer;
}

export function assetDocumentName(sourceId: string, appName: string, kind: AppAssetKind): string {
  return `assets/${createHash('sha1').update(`${sourceId}\0${appName}\0${kind}`).digest('hex')}.json`;
}

/** Which app info the stored assets belong to: any change to the app info fetches them again. */
export function assetsKey(info: AppInfo): string {
  return createHash('sha1').update(JSON.stringify(info)).digest('hex');
}

export function assetUrl(info: AppInfo, kind: AppAssetKind): string {
  return kind === 'icon' ? info.iconUrl : info.releaseNotesUrl;
}

export async function saveAsset(state: StateStore, sourceId: string, appName: string, kind: AppAssetKind, url: string, asset: AppAsset): Promise<void> {
  await state.write(assetDocumentName(sourceId, appName, kind), { version: 1, url, contentType: asset.contentType, data: asset.bytes.toString('base64') });
}

export async function dropAsset(state: StateStore, sourceId: string, appName: string, kind: AppAssetKind): Promise<void> {
  await state.remove(assetDocumentName(sourceId, appName, kind));
}

export async function loadAsset(state: StateStore, sourceId: string, appName: string, kind: AppAssetKind): Promise<AppAsset> {
  const raw = await state.read(assetDocumentName(sourceId, appName, kind)).catch(() => undefined);
  const parsed = StoredAssetSchema.safeParse(raw);
  if (!parsed.success) {
    throw new BrokerError('BROKER_NOT_FOUND', {
      message: `No ${kind === 'icon' ? 'icon' : 'release notes'} of ${sourceId}/${appName} is kept.`,
      hint: 'They are fetched when the app info changes; refresh with `tokenbroker sources refresh`.',
    });
  }
  return { contentType: parsed.data.contentType, bytes: Buffer.from(parsed.data.data, 'base64') };
}

const ICON_TYPES: Readonly<Record<string, string>> = {
  svg: 'image/svg+xml',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  ico: 'image/x-icon',
  webp: 'image/webp',
};

/**
 * The Content-Type to serve: the upstream's when it is specific (Artifactory often says
 * application/octet-stream), else from the canonical file name's extension.
 */
export function assetContentType(kind: AppAssetKind, url: string, upstreamType: string | undefined): string {
  const upstream = upstreamType?.split(';')[0]?.trim().toLowerCase();
  if (kind === 'icon' && upstream?.startsWith('image/') === true) return upstream;
  if (kind === 'release-notes' && upstream?.startsWith('text/') === true && upstream !== 'text/plain') return `${upstream}; charset=utf-8`;
  const extension = lastArtifactSegment(url)?.split('.').pop()?.toLowerCase() ?? '';
  if (kind === 'icon') return ICON_TYPES[extension] ?? 'application/octet-stream';
  if (extension === 'txt') return 'text/plain; charset=utf-8';
  if (extension === 'html' || extension === 'htm') return 'text/html; charset=utf-8';
  return 'text/markdown; charset=utf-8';
}
