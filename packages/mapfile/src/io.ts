/**
 * The only file I/O of this package: reading mapfiles, and saving them atomically
 * with GNU ddrescue's `.bak` rule.
 */
import { constants as fsConstants, readSync, writeSync } from 'node:fs';
import { type FileHandle, lstat, link, mkdir, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { MapfileError, isMapfileError } from './errors.js';
import { type Mapfile, type ParseOptions, createMapfileParser } from './parse.js';

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** Bytes `readMapfile` reads at a time. */
const READ_CHUNK = 131072;

function readError(path: string, err: unknown): MapfileError {
  if (isErrno(err, 'ENOENT')) {
    return new MapfileError('ERR_MAPFILE_NOT_FOUND', `${path}: Mapfile does not exist.`, { hint: 'Check the name, or start a new rescue without it.', file: path, cause: err });
  }
  return new MapfileError('ERR_MAPFILE_READ', `${path}: Mapfile is not readable (${(err as Error).message}).`, { hint: 'Check its permissions.', file: path, cause: err });
}

/**
 * Read a file's bytes.
 * @throws MapfileError `ERR_MAPFILE_NOT_FOUND` or `ERR_MAPFILE_READ`.
 */
export async function readMapfileBytes(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw readError(path, err);
  }
}

/**
 * Read and parse a mapfile, 128 KiB at a time: the text is never held whole, so a map
 * of a million blocks takes its few MiB of blocks and one buffer. Each piece is read
 * synchronously and parsed at once (a thread-pool round trip per piece costs more than
 * the read on a loaded machine); the event loop waits for one piece at a time.
 * @throws MapfileError: `ERR_MAPFILE_NOT_FOUND`, `ERR_MAPFILE_READ`, or a parse code naming the file and line.
 */
export async function readMapfile(path: string, options: ParseOptions = {}): Promise<Mapfile> {
  const parser = createMapfileParser({ file: path, ...options });
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw readError(path, err);
  }
  try {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    for (;;) {
      let n: number;
      try {
        n = readSync(fh.fd, buf, 0, READ_CHUNK, null);
      } catch (err) {
        throw readError(path, err);
      }
      if (n === 0) break;
      parser.write(buf.subarray(0, n));
    }
  } finally {
    await fh.close();
  }
  return parser.end();
}

/** True if `path` exists (any type). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

/** Delete a file. */
export async function removeFile(path: string): Promise<void> {
  await unlink(path);
}

/** Create a folder and its parents. */
export async function makeFolder(path: string): Promise<void> {
  await mkdir(path, { recursive: true });
}

async function syncFolder(folder: string): Promise<void> {
  const fh = await open(folder, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Options of `saveMapfile`. */
export interface SaveOptions {
  /**
   * Keep the previous version as `PATH.bak` (ddrescue does this when its previous save
   * was an fsync-save). Default false.
   */
  readonly backup?: boolean;
  /** Refuse to replace an existing file (for `-c` without `--force`). Default false. */
  readonly exclusive?: boolean;
}

/**
 * Save `data` to `path` atomically: write a temporary file in the same folder
 * (`'wx'`), fsync it, rename it over `path`, then fsync the folder. A crash at any
 * moment leaves either the old or the new complete file. With `backup`, the old
 * file is kept as `PATH.bak` (a hard link made before the rename, so there is no
 * moment without `PATH`).
 *
 * `data` may be pieces (`formatMapfileChunks`): they are taken and written one after
 * the other without yielding to the event loop, so a map being saved cannot change
 * half-way and one buffer serves for a map of any size.
 * @throws MapfileError `ERR_MAPFILE_WRITE` or `ERR_MAPFILE_BAK_NOT_REGULAR`.
 */
export async function saveMapfile(path: string, data: Uint8Array | string | Iterable<Uint8Array>, options: SaveOptions = {}): Promise<void> {
  const folder = dirname(path);
  const tmp = join(folder, `.${basename(path)}.${process.pid}.${temporarySuffix()}.tmp`);
  let renamed = false;
  try {
    const fh = await open(tmp, 'wx', 0o666);
    try {
      if (typeof data === 'string' || data instanceof Uint8Array) await fh.writeFile(data);
      else for (const piece of data) writeAll(fh.fd, piece);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (options.backup) await keepBackup(path);
    if (options.exclusive) {
      await link(tmp, path);
      await unlink(tmp);
    } else {
      await rename(tmp, path);
    }
    renamed = true;
    await syncFolder(folder);
  } catch (err) {
    if (isMapfileError(err)) throw err;
    if (isErrno(err, 'EEXIST')) throw new MapfileError('ERR_MAPFILE_WRITE', `${path}: Mapfile exists; use --force to overwrite it.`, { file: path, cause: err });
    throw new MapfileError('ERR_MAPFILE_WRITE', `${path}: Error writing mapfile (${(err as Error).message}).`, { hint: 'Check free space and permissions, then retry.', file: path, cause: err });
  } finally {
    if (!renamed) await rm(tmp, { force: true });
  }
}

let temporaries = 0;

/**
 * Hex digits that make a temporary name unique in this process (a serial number) and
 * unlikely to meet a dead process's leftover of the same pid (a random part). Not
 * `node:crypto`: loading it costs 2 MiB of memory, and `'wx'` refuses a clash anyway.
 */
function temporarySuffix(): string {
  return `${(++temporaries).toString(16)}${Math.floor(Math.random() * 0x10000).toString(16).padStart(4, '0')}`;
}

/** Write all of `bytes` at the file position of `fd`. */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done);
}

async function keepBackup(path: string): Promise<void> {
  const bak = `${path}.bak`;
  try {
    const st = await lstat(bak);
    if (!st.isFile()) throw new MapfileError('ERR_MAPFILE_BAK_NOT_REGULAR', `${bak}: Backup mapfile exists and is not a regular file.`, { hint: 'Move it away and retry.', file: bak });
    await unlink(bak);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  try {
    await link(path, bak);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}


/**
 * Remove the temporary files that `saveMapfile` left for `path` when a process was
 * killed during a save (`.NAME.PID.HEX.tmp` of processes no longer running). They were
 * never the mapfile; this only tidies the folder.
 * @returns the names removed.
 */
export async function removeStaleTemporaries(path: string): Promise<string[]> {
  const folder = dirname(path);
  const prefix = `.${basename(path)}.`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(folder);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const m = /^(\d+)\.[0-9a-f]+\.tmp$/.exec(name.slice(prefix.length));
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || isRunning(pid)) continue;
    await rm(join(folder, name), { force: true });
    removed.push(name);
  }
  return removed;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}
