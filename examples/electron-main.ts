/**
 * The launcher side of tokenbroker in an Electron main process (nRF Connect for Desktop style):
 * what pc-nrfconnect-launcher's `src/main/net.ts`, `src/main/apps/` and its token storage do
 * today, done through `tokenbroker/client`. The renderer talks to this over IPC as it does now;
 * the raw token goes to the daemon once and is never stored or sent by the app again.
 *
 * Typechecked against Electron 32's types (the launcher's major) by `scripts/test.sh`:
 *   npx tsc -p examples/tsconfig.json
 * It is wiring, not a full launcher: untar and install of a downloaded app, the proxy login dialog
 * and the bundled offline app index stay the launcher's (see docs/client.md).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { app, BrowserWindow, ipcMain, Notification } from 'electron';
import { isBrokerError, isDaemonUnavailable, isDownloadCancelled, TokenBrokerClient, type AppView, type BrokerEvent, type SourceView, type TokenView } from 'tokenbroker/client';

/** What the launcher's renderer shows per app (its DownloadableApp: AppInfo + source, isWithdrawn, iconPath). */
interface LauncherApp extends AppView {
  isWithdrawn: boolean;
  iconPath: string | undefined;
}

// Inside Electron `process.execPath` is the app itself: autostart runs it with ELECTRON_RUN_AS_NODE=1
// (pass `autostart: { nodePath }` when the app's fuses disable run-as-node).
const client = new TokenBrokerClient({ autostart: true });

const appsDir = (): string => path.join(app.getPath('userData'), 'apps');
const iconsDir = (): string => path.join(app.getPath('userData'), 'icons');

/** Sends to every window (the launcher has one main window; apps open their own). */
function toRenderers(channel: string, payload: unknown): void {
  for (const window of BrowserWindow.getAllWindows()) window.webContents.send(channel, payload);
}

// --- Token: set or replace once; the daemon validates it and keeps it in the OS keychain.
ipcMain.handle('token:set', async (_event, token: string): Promise<TokenView> => client.setToken(token.trim()));
ipcMain.handle('token:get', async (): Promise<TokenView> => client.token());
ipcMain.handle('token:remove', async () => client.removeToken());

// --- Sources: the daemon keeps them (and their indexes, refreshed in the background).
ipcMain.handle('sources:list', async (): Promise<SourceView[]> => client.sources());
ipcMain.handle('sources:add', async (_event, url: string) => client.addSource(url));
ipcMain.handle('sources:remove', async (_event, id: string) => client.removeSource(id));
ipcMain.handle('sources:refresh', async () => client.refreshSources());

// --- App list: withdrawn flags come with the list; icons are served offline from the daemon's copies.
ipcMain.handle('apps:list', async (): Promise<LauncherApp[]> => {
  const apps = await client.apps();
  return Promise.all(apps.map(async (view) => ({ ...view, isWithdrawn: view.withdrawn, iconPath: await iconFile(view) })));
});

async function iconFile(view: AppView): Promise<string | undefined> {
  try {
    const icon = await client.appAsset(view.source, view.name, 'icon');
    const file = path.join(iconsDir(), view.source, `${view.name}${icon.contentType.includes('svg') ? '.svg' : '.png'}`);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, icon.bytes);
    return file;
  } catch (err) {
    // No icon kept for this app (BROKER_NOT_FOUND): the renderer shows its placeholder.
    if (isBrokerError(err, 'BROKER_NOT_FOUND')) return undefined;
    throw err;
  }
}

// --- Install: the daemon downloads and verifies the tarball (resumable); progress and cancel per app.
const installs = new Map<string, AbortController>();
const keyOf = (source: string, name: string): string => `${source}/${name}`;

ipcMain.handle('apps:install', async (_event, source: string, name: string, version?: string) => {
  const controller = new AbortController();
  installs.set(keyOf(source, name), controller);
  try {
    const dir = path.join(appsDir(), source, 'downloads');
    await mkdir(dir, { recursive: true });
    const result = await client.downloadApp(source, name, dir, {
      ...(version === undefined ? {} : { version }),
      signal: controller.signal,
      onProgress: ({ received, total }) => {
        if (total !== undefined && total > 0) toRenderers('app-install-progress', { app: { source, name }, progressFraction: Math.floor((received / total) * 100), fractionName: 'tarBall' });
      },
    });
    // Untar into the apps dir and write the app info: the launcher's own code from here on.
    return { tarball: result.path, version: result.app.tarball.version, verifiedBy: result.verifiedBy };
  } catch (err) {
    // A cancel keeps the `.part` file: installing again resumes where it stopped.
    if (isDownloadCancelled(err)) return { cancelled: true };
    throw err;
  } finally {
    installs.delete(keyOf(source, name));
  }
});

ipcMain.handle('apps:cancel-install', (_event, source: string, name: string) => {
  installs.get(keyOf(source, name))?.abort();
});

// --- Events: expiry warnings and refreshed lists; a daemon that stops (restart, upgrade) is
// followed: the stream ends after `daemon.stopping`, and the next connection (autostart) resumes it.
function notify(title: string, body: string): void {
  if (Notification.isSupported()) new Notification({ title, body }).show();
}

function onEvent(event: BrokerEvent): void {
  switch (event.type) {
    case 'token.expiring':
      notify('Your Nordic identity token expires soon', `It expires in ${String(event.daysLeft ?? 'a few')} days. Generate a new one and set it in Settings.`);
      break;
    case 'token.expired':
    case 'token.invalid':
      notify('Your Nordic identity token no longer works', 'Generate a new identity token and set it in Settings.');
      break;
    case 'sources.refreshed':
    case 'source.failed':
      toRenderers('sources-changed', event);
      break;
    default:
      break;
  }
}

async function followEvents(signal: AbortSignal): Promise<void> {
  let delayMs = 500;
  while (!signal.aborted) {
    try {
      for await (const event of client.events({ signal, onOpen: () => (delayMs = 500) })) {
        onEvent(event);
        if (event.type === 'daemon.stopping') toRenderers('daemon-restarting', event);
      }
    } catch (err) {
      // Not running right now (autostart failed, or an upgrade in progress): try again shortly.
      if (!isDaemonUnavailable(err)) console.error('tokenbroker events:', err);
    }
    if (signal.aborted) break;
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(delayMs * 2, 30_000);
  }
}

const stopEvents = new AbortController();
app.whenReady().then(() => {
  void followEvents(stopEvents.signal);
  const window = new BrowserWindow({ width: 1000, height: 700 });
  void window.loadFile('index.html');
});
app.on('will-quit', () => {
  stopEvents.abort();
  void client.close();
});
