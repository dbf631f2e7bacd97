import { readFileSync, realpathSync } from 'node:fs';

/** Read a short sysfs attribute, trimmed; undefined if absent. */
export function readSysfs(path: string): string | undefined {
  try {
    const text = readFileSync(path, 'latin1').trim();
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
}

/** `/sys/dev/block/MAJ:MIN`, resolved; for a partition, also its disk's folder. */
export function blockDeviceFolders(major: number, minor: number): { dev: string; disk: string } | undefined {
  try {
    const dev = realpathSync(`/sys/dev/block/${major}:${minor}`);
    const isPartition = readSysfs(`${dev}/partition`) !== undefined;
    return { dev, disk: isPartition ? realpathSync(`${dev}/..`) : dev };
  } catch {
    return undefined;
  }
}

/** Linux device numbers of a `st_rdev`. */
export function splitDeviceNumber(rdev: number): { major: number; minor: number } {
  // glibc's gnu_dev_major/minor on the 64-bit encoding
  const major = ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >>> 12) & ~0xff);
  return { major, minor };
}
