import type { DownloadFiles, DownloadTarget } from '../broker/ports.js';
import { CheckedTarget, openDownloadTarget, type DaemonOwnedPaths } from './download-target.js';
import { resumeToFile } from './resume-to-file.js';
import { onThreadDigests, type StreamDigestsFactory } from './stream-digests.js';

export interface DownloadFilesOptions {
  /** The daemon's own files and directories: refused as targets (`daemon-owned`). */
  daemonOwned?: DaemonOwnedPaths | undefined;
  /** The digests of each download (default: on this thread; the daemon passes its hash worker's). */
  digests?: StreamDigestsFactory | undefined;
}

/** The DownloadFiles port on node:fs: the target checks of download-target.ts and the one writer. */
export function createDownloadFiles(options: DownloadFilesOptions = {}): DownloadFiles {
  const digests = options.digests ?? onThreadDigests;
  return {
    target: (path, rules) => openDownloadTarget(path, { allowedDirs: rules.allowedDirs, daemonOwned: options.daemonOwned }),
    resumeToFile: (target, job) => resumeToFile(checked(target), job, digests),
  };
}

function checked(target: DownloadTarget): CheckedTarget {
  if (!(target instanceof CheckedTarget)) throw new TypeError('resumeToFile() takes a target from target()');
  return target;
}
