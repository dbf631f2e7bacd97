import { closeSync, constants, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Stats } from 'node:fs';

import { ReaderError, errnoOf } from '../errors.js';
import { strerror } from '../strerror.js';
import type { ReadResult, Source, SourceIdentity } from './source.js';
import { blockDeviceFolders, readSysfs, splitDeviceNumber } from './sysfs.js';

export interface FileSourceOptions {
  /** Open with O_DIRECT (ddrescue's `-d`); reads must then be sector-aligned into aligned buffers. */
  readonly direct?: boolean;
}

/**
 * A regular file or a device, opened read-only. The size comes from fstat, or for a
 * block device from sysfs; a character device has an unknown size (0), as in ddrescue.
 */
export class FileSource implements Source {
  readonly name: string;
  readonly size: number;
  readonly identity: SourceIdentity;
  readonly #flags: number;
  #fd: number;

  /** @throws ReaderError `ERR_SOURCE_OPEN` or `ERR_SOURCE_NOT_SEEKABLE`. */
  constructor(name: string, options: FileSourceOptions = {}) {
    this.name = name;
    this.#flags = constants.O_RDONLY | (options.direct ? constants.O_DIRECT : 0);
    this.#fd = openSource(name, this.#flags);
    try {
      const st = fstatSync(this.#fd);
      if (st.isFIFO() || st.isSocket() || st.isDirectory()) {
        throw new ReaderError('ERR_SOURCE_NOT_SEEKABLE', name, `${name}: Input file is not seekable. Give a disk, a partition or a regular file.`);
      }
      this.identity = identify(st);
      this.size = this.identity.size;
    } catch (err) {
      closeSync(this.#fd);
      throw err;
    }
  }

  read(buf: Uint8Array, size: number, pos: number): ReadResult {
    let copied = 0;
    while (copied < size) {
      let n: number;
      try {
        n = readSync(this.#fd, buf, copied, size - copied, pos + copied);
      } catch (err) {
        const code = errnoOf(err) ?? 'EIO';
        if (code === 'EINTR' || code === 'EAGAIN') continue;
        return { copied, errno: code };
      }
      if (n === 0) break;
      copied += n;
    }
    return { copied, errno: null };
  }

  /**
   * ddrescue's `stat(infile)` after a failed read: only whether the name still leads
   * somewhere counts, so no `Stats` is made (`existsSync`; the scraping-heavy test mode
   * spent 8 % of its time making `Stats` and their four dates).
   */
  stillThere(): boolean {
    return existsSync(this.name);
  }

  reopen(): void {
    closeSync(this.#fd);
    this.#fd = openSource(this.name, this.#flags);
  }

  close(): void {
    closeSync(this.#fd);
  }
}

function openSource(name: string, flags: number): number {
  try {
    return openSync(name, flags);
  } catch (err) {
    const code = errnoOf(err);
    const hint = code === 'ENOENT' ? 'Check the name: list disks with `lsblk -o NAME,SIZE,MODEL,SERIAL`.'
      : code === 'EACCES' || code === 'EPERM' ? 'Run as root (sudo) to read a disk.'
      : code === 'EINVAL' ? 'This file system does not allow direct I/O; run without -d.'
      : 'Check that the device is connected.';
    throw new ReaderError('ERR_SOURCE_OPEN', name, `${name}: Can't open input file: ${strerror(code ?? 'EIO')}. ${hint}`, { cause: err });
  }
}

function identify(st: Stats): SourceIdentity {
  if (st.isBlockDevice()) {
    const { major, minor } = splitDeviceNumber(st.rdev);
    const dirs = blockDeviceFolders(major, minor);
    const sectors = dirs ? Number(readSysfs(`${dirs.dev}/size`) ?? '0') : 0;
    const logical = Number((dirs && readSysfs(`${dirs.disk}/queue/logical_block_size`)) ?? '512');
    const physical = Number((dirs && readSysfs(`${dirs.disk}/queue/physical_block_size`)) ?? String(logical));
    const attr = (name: string): string | undefined => dirs && (readSysfs(`${dirs.disk}/device/${name}`) ?? readSysfs(`${dirs.disk}/${name}`));
    return {
      kind: 'block-device',
      size: sectors * 512,
      logicalSectorSize: logical,
      physicalSectorSize: physical,
      model: attr('model'),
      serial: attr('serial'),
      wwn: attr('wwid') ?? attr('wwn'),
      deviceId: `${major}:${minor}`,
    };
  }
  if (st.isCharacterDevice()) {
    const { major, minor } = splitDeviceNumber(st.rdev);
    return { kind: 'character-device', size: 0, logicalSectorSize: 512, physicalSectorSize: 512, deviceId: `${major}:${minor}` };
  }
  return { kind: 'file', size: st.size, logicalSectorSize: 512, physicalSectorSize: 512, deviceId: `${st.dev}:${st.ino}` };
}
