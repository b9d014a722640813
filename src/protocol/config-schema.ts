import { z } from 'zod';
import { isAbsolutePlatformPath } from './absolute-path.js';

/**
 * config.json (DESIGN section 3). Every key is optional; unknown keys are an error naming the key.
 * The defaults are the real Nordic server.
 */

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname.toLowerCase()) || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** zod keeps running refinements after a failed check, so parse defensively there. */
function safeUrl(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

const prefix = z
  .string()
  .regex(/^\/.*\/$/, 'must start and end with "/" (e.g. "/artifactory/")')
  .refine((p) => !p.split('/').some((seg) => seg === '..' || seg === '.'), 'must not contain "." or ".." segments');

const originString = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be an absolute URL such as "https://files.nordicsemi.com"' });
    return;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    ctx.addIssue({ code: 'custom', message: 'must be an https:// URL' });
    return;
  }
  if (url.origin !== value.replace(/\/$/, '') || url.username || url.password) {
    ctx.addIssue({ code: 'custom', message: `must be an origin only (scheme://host[:port]), e.g. "${url.origin}"` });
  }
});

export const ServerSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'must be 1-64 characters of a-z, 0-9, ".", "_", "-"'),
  origin: originString.transform((value) => safeUrl(value)?.origin ?? value),
  tokenInfoPath: z.string().startsWith('/', 'must start with "/"').default('/access/api/v1/tokens/me'),
  pingPath: z.string().startsWith('/', 'must start with "/"').default('/artifactory/api/system/ping'),
  authenticatedPrefixes: z.array(prefix).default(['/artifactory/']),
  publicPrefixes: z.array(prefix).default(['/artifactory/swtools/external/']),
  /**
   * How artifact URLs go upstream: "as-given" (the form the caller used) or "download-api" (short
   * `/artifactory/R/P` URLs are requested as `/ui/api/v1/download?isNativeBrowsing=false&repoKey=R&path=P`,
   * as the launcher does). The default server uses "download-api"; a configured one "as-given".
   */
  requestForm: z.enum(['download-api', 'as-given']).default('as-given'),
  /** Public canonical paths are fetched from this origin instead (same path and query), never with the token. */
  publicMirrorOrigin: originString
    .transform((value) => safeUrl(value)?.origin ?? value)
    .nullable()
    .default(null),
});
export type ServerConfig = z.output<typeof ServerSchema>;

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });

export const ProxySchema = z.strictObject({
  http: httpUrl.optional(),
  https: httpUrl.optional(),
  noProxy: z.string().optional(),
});

export const ListenerSchema = z.strictObject({
  // Absolute: a service manager starts the daemon in an arbitrary working directory.
  path: z
    .string()
    .min(1, 'must be a socket path')
    .refine((p) => p.startsWith('/') || p.startsWith('\\\\.\\pipe\\'), 'must be an absolute socket path such as "/srv/tokenbroker/shared.sock" (or a \\\\.\\pipe\\ name on Windows)'),
  mode: z
    .string()
    .regex(/^0?[0-7]{3}$/, 'must be an octal file mode such as "0660"')
    .default('0600'),
  /**
   * Directories a client of this listener may have the daemon write downloads into
   * (`POST /v1/downloads`, scope `download`). Default none: no daemon-written downloads here.
   */
  downloadDirs: z
    .array(z.string().refine((p) => isAbsolutePlatformPath(p), 'must be an absolute directory path ("/srv/downloads"; "C:\\Downloads" or a UNC share on Windows)'))
    .max(64)
    .default([]),
});

export const DEFAULT_SERVER = {
  name: 'nordic',
  origin: 'https://files.nordicsemi.com',
  tokenInfoPath: '/access/api/v1/tokens/me',
  pingPath: '/artifactory/api/system/ping',
  authenticatedPrefixes: ['/artifactory/'],
  publicPrefixes: ['/artifactory/swtools/external/'],
  requestForm: 'download-api',
  publicMirrorOrigin: null,
} as const;

export const DEFAULT_OFFICIAL_SOURCE =
  'https://files.nordicsemi.com/artifactory/swtools/external/ncd/apps/official/source.json';

export const ConfigSchema = z
  .strictObject({
    servers: z.array(ServerSchema).min(1, 'must list at least one server').default([{ ...DEFAULT_SERVER, authenticatedPrefixes: [...DEFAULT_SERVER.authenticatedPrefixes], publicPrefixes: [...DEFAULT_SERVER.publicPrefixes] }]),
    officialSource: z.url({ protocol: /^https?$/, error: 'must be the URL of a source.json' }).default(DEFAULT_OFFICIAL_SOURCE),
    refresh: z
      .strictObject({
        intervalMinutes: z.number().int().min(1).max(10080).default(60),
        jitterPercent: z.number().min(0).max(50).default(10),
        concurrency: z.number().int().min(1).max(64).default(8),
      })
      .default({ intervalMinutes: 60, jitterPercent: 10, concurrency: 8 }),
    secretStore: z.enum(['auto', 'keychain', 'memory', 'file']).default('auto'),
    proxy: ProxySchema.nullable().default(null),
    caFile: z.string().min(1).nullable().default(null),
    expiryWarningDays: z.array(z.number().int().min(0).max(365)).default([14, 3, 1]),
    allowInsecureLoopback: z.boolean().default(false),
    listeners: z.array(ListenerSchema).default([]),
    shutdownGraceSeconds: z.number().min(0).max(600).default(10),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    timeouts: z
      .strictObject({
        connectMs: z.number().int().min(100).max(600_000).default(10_000),
        headersMs: z.number().int().min(100).max(600_000).default(30_000),
        bodyIdleMs: z.number().int().min(100).max(600_000).default(30_000),
      })
      .default({ connectMs: 10_000, headersMs: 30_000, bodyIdleMs: 30_000 }),
    /** Size cap of the verified-download cache (least recently used bodies go first); 0 turns it off. */
    cacheMaxMegabytes: z.number().int().min(0).max(1_048_576).default(2048),
  })
  .superRefine((config, ctx) => {
    const names = new Set<string>();
    config.servers.forEach((server, index) => {
      if (names.has(server.name)) {
        ctx.addIssue({ code: 'custom', path: ['servers', index, 'name'], message: `duplicate server name "${server.name}"` });
      }
      names.add(server.name);
      const url = safeUrl(server.origin);
      if (url === undefined) return;
      const mirror = server.publicMirrorOrigin === null ? undefined : safeUrl(server.publicMirrorOrigin);
      if (mirror !== undefined && mirror.protocol === 'http:' && !(config.allowInsecureLoopback && isLoopbackHost(mirror.hostname))) {
        ctx.addIssue({ code: 'custom', path: ['servers', index, 'publicMirrorOrigin'], message: 'must be https:// (http:// only on loopback with "allowInsecureLoopback": true)' });
      }
      if (url.protocol === 'http:' && !(config.allowInsecureLoopback && isLoopbackHost(url.hostname))) {
        ctx.addIssue({
          code: 'custom',
          path: ['servers', index, 'origin'],
          message: config.allowInsecureLoopback
            ? 'must be https:// (http:// is only allowed for 127.0.0.1, ::1 or localhost)'
            : 'must be https:// (set "allowInsecureLoopback": true to allow http:// on 127.0.0.1, ::1 or localhost)',
        });
      }
    });
    const official = safeUrl(config.officialSource);
    if (official !== undefined && official.protocol === 'http:' && !(config.allowInsecureLoopback && isLoopbackHost(official.hostname))) {
      ctx.addIssue({ code: 'custom', path: ['officialSource'], message: 'must be an https:// URL' });
    }
  });

export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
