import { mkdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../node/atomic-file.js';
import { renderLaunchdPlist, renderSystemdUnits, TemplateError } from './unit-templates.js';
import { ServiceError, type ServiceHost, type ServiceLayout } from './service-host.js';

/** Unit files and plists hold no secrets; 0644 is what systemd and launchd expect. */
export const SERVICE_FILE_MODE = 0o644;

export interface RenderedFile {
  path: string;
  content: string;
}

export type FileChange = 'create' | 'update' | 'unchanged';

export interface PlannedFile extends RenderedFile {
  change: FileChange;
}

/** The service files with this install's absolute paths filled in. */
export async function renderServiceFiles(host: ServiceHost, layout: ServiceLayout): Promise<RenderedFile[]> {
  const template = async (relative: string): Promise<string> => {
    try {
      return await readFile(path.join(host.packageRoot, relative), 'utf8');
    } catch (err) {
      throw new ServiceError(`cannot read the template ${relative} in ${host.packageRoot} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'Reinstall tokenbroker: the package is incomplete.');
    }
  };
  try {
    if (layout.kind === 'systemd') {
      const [socketFile, serviceFile] = layout.files;
      if (socketFile === undefined || serviceFile === undefined) throw new Error('systemd layout without two units');
      const units = renderSystemdUnits({ node: host.node, entry: host.entry }, { socket: await template(socketFile.template), service: await template(serviceFile.template) });
      return [
        { path: socketFile.path, content: units.socket },
        { path: serviceFile.path, content: units.service },
      ];
    }
    const [plist] = layout.files;
    if (plist === undefined || layout.logDir === undefined) throw new Error('launchd layout without a plist');
    return [{ path: plist.path, content: renderLaunchdPlist({ node: host.node, entry: host.entry, logDir: layout.logDir }, await template(plist.template)) }];
  } catch (err) {
    if (err instanceof TemplateError) throw new ServiceError(`cannot write the service files: ${err.message}`);
    throw err;
  }
}

/** Compares each rendered file with what is on disk. */
export async function planFiles(files: RenderedFile[]): Promise<PlannedFile[]> {
  return Promise.all(
    files.map(async (file) => {
      const current = await readIfPresent(file.path);
      const change: FileChange = current === undefined ? 'create' : current === file.content ? 'unchanged' : 'update';
      return { ...file, change };
    }),
  );
}

/** Writes every file that is new or different (atomically: a half-written unit never loads). */
export async function writeFiles(files: PlannedFile[]): Promise<void> {
  for (const file of files) {
    if (file.change === 'unchanged') continue;
    await mkdir(path.dirname(file.path), { recursive: true });
    await writeFileAtomic(file.path, file.content, { mode: SERVICE_FILE_MODE });
  }
}

/** Paths of the layout's files that exist. */
export async function presentFiles(layout: ServiceLayout): Promise<string[]> {
  const present = await Promise.all(layout.files.map(async (file) => ((await readIfPresent(file.path)) === undefined ? undefined : file.path)));
  return present.filter((file): file is string => file !== undefined);
}

export async function removeFiles(paths: string[]): Promise<void> {
  for (const file of paths) {
    await unlink(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
}

export async function readIfPresent(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
}
