import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

import { blockDeviceFolders, splitDeviceNumber } from './sysfs.js';

/**
 * The whole disk a path lives on or is: for a block device its disk (a partition's
 * parent), for a file or folder the disk holding its file system. Undefined when the
 * system does not tell (no sysfs entry, a network or virtual file system).
 */
export function diskOf(path: string): string | undefined {
  let p = resolve(path);
  for (;;) {
    try {
      const st = statSync(p);
      const { major, minor } = splitDeviceNumber(st.isBlockDevice() ? st.rdev : st.dev);
      return blockDeviceFolders(major, minor)?.disk;
    } catch {
      const up = dirname(p);
      if (up === p) return undefined;
      p = up; // a file to be created: look at its folder
    }
  }
}

/** Device and inode of a path, or undefined if it does not exist. */
export function inodeOf(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Why writing `target` could write to the source: the same file, the same device, a
 * partition of the source disk, or a file system on it. Null if it is safe.
 */
export function writesToSource(source: string, sourceIsBlockDevice: boolean, target: string): string | null {
  const si = inodeOf(source);
  if (resolve(source) === resolve(target) || (si !== undefined && si === inodeOf(target))) return 'it is the source itself';
  if (!sourceIsBlockDevice) return null;
  const sourceDisk = diskOf(source);
  if (sourceDisk !== undefined && sourceDisk === diskOf(target)) return 'it is on the source disk (the same disk, a partition of it, or a file system on it)';
  return null;
}
