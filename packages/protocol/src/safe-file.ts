import { constants as fsConstants } from 'node:fs';
import type { Stats } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

import { ProtocolError } from './errors.js';

/**
 * Opening files that came from elsewhere (a stick, a token file, a chunk file
 * carried from PC_A) so that they are what they claim (invariant S4):
 *
 * | the path names | outcome |
 * |---|---|
 * | a regular file (or a block device, where allowed) within the size limit | opened read-only |
 * | a symbolic link (last component) | `ERR_FILE_SYMLINK`, at once: never followed |
 * | a FIFO, socket, folder or character device | `ERR_FILE_NOT_REGULAR`, at once: the open never blocks |
 * | a file over the size limit | `ERR_FILE_TOO_LARGE` |
 * | nothing, or a file the system refuses (ENOENT, EACCES, EIO) | the system error, unchanged, for the caller to name |
 *
 * The open uses `O_NOFOLLOW | O_NONBLOCK` and the checks use `fstat` of what
 * was opened, so nothing can be swapped between a check and the open. A FIFO
 * opened with `O_NONBLOCK` returns at once even without a writer, and is then
 * refused. `O_NONBLOCK` has no effect on reads of regular files and block
 * devices. Folders above the last component are the caller's (see
 * `checkRealFolder`).
 */

/** Flags of every open here (0 where the platform lacks one). */
const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0) | (fsConstants.O_NONBLOCK ?? 0);

export interface SafeOpenOptions {
  /** Largest size accepted, in bytes. Default: no limit. */
  readonly maxBytes?: number | undefined;
  /** Accept a block device too (a chunk file written straight onto a disk). Default false. */
  readonly allowBlockDevice?: boolean | undefined;
  /** What the file is, for messages ("the token file", "the bundle"). Default "the file". */
  readonly what?: string | undefined;
}

/** A word for the kind of a non-regular file. */
export function describeFileType(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a folder';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/**
 * Open `path` read-only without following a symbolic link and without
 * blocking, and check what was opened (see the module comment). The caller
 * closes the handle.
 * @throws ProtocolError `ERR_FILE_SYMLINK`, `ERR_FILE_NOT_REGULAR`,
 *   `ERR_FILE_TOO_LARGE` (naming `path`); system errors of `open` unchanged.
 */
export async function openSafeFile(path: string, options: SafeOpenOptions = {}): Promise<FileHandle> {
  const what = options.what ?? 'the file';
  let handle: FileHandle;
  try {
    handle = await open(path, OPEN_FLAGS);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new ProtocolError('ERR_FILE_SYMLINK', `${capital(what)} is a symbolic link; links are never followed here.`, { file: path, cause: err });
    }
    throw err;
  }
  try {
    const st = await handle.stat();
    const regular = st.isFile() || (options.allowBlockDevice === true && st.isBlockDevice());
    if (!regular) {
      throw new ProtocolError('ERR_FILE_NOT_REGULAR', `${capital(what)} is ${describeFileType(st)}, not a regular file.`, { file: path });
    }
    if (options.maxBytes !== undefined && st.isFile() && st.size > options.maxBytes) {
      throw new ProtocolError('ERR_FILE_TOO_LARGE', `${capital(what)} has ${st.size} bytes; at most ${options.maxBytes} are read.`, { file: path, limit: options.maxBytes });
    }
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/**
 * The whole content of a small file opened by `openSafeFile`, at most
 * `maxBytes` (a file that grows past it while read is refused too).
 * @throws ProtocolError `ERR_FILE_SYMLINK`, `ERR_FILE_NOT_REGULAR`,
 *   `ERR_FILE_TOO_LARGE`; system errors of `open` and `read` unchanged.
 */
export async function readSafeFile(path: string, options: SafeOpenOptions & { readonly maxBytes: number }): Promise<Buffer> {
  const handle = await openSafeFile(path, options);
  try {
    const st = await handle.stat();
    const buf = Buffer.allocUnsafe(Math.min(st.size, options.maxBytes) + 1);
    let at = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, at, buf.length - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
      if (at === buf.length) {
        if (at > options.maxBytes) {
          throw new ProtocolError('ERR_FILE_TOO_LARGE', `${capital(options.what ?? 'the file')} grew past ${options.maxBytes} bytes while read.`, { file: path, limit: options.maxBytes });
        }
        break;
      }
    }
    return buf.subarray(0, at);
  } finally {
    await handle.close();
  }
}

/**
 * The first `buf.length` bytes of the file `path` (opened by `openSafeFile`),
 * read into `buf` slice by slice: each slice is yielded once read (a view of
 * `buf`, never reused while the caller uses it), and the next slice is read
 * while the caller works on this one, so reading and the caller's work overlap.
 * A consumer that stops early stops the reading (the read ahead lands before
 * the file is closed). A file shorter than `buf` ends early. The first slice is
 * `firstBytes` (default 256 KiB: a consumer may refuse the file from its first
 * bytes), the others `chunkBytes` (default 4 MiB).
 * @throws as `openSafeFile`; system errors of `read` unchanged.
 */
export async function* readSafeFileInto(path: string, buf: Uint8Array, options: SafeOpenOptions & { readonly firstBytes?: number; readonly chunkBytes?: number } = {}): AsyncGenerator<Uint8Array, void, undefined> {
  const first = options.firstBytes ?? 256 * 1024;
  const chunk = options.chunkBytes ?? 4 * 1024 * 1024;
  const handle = await openSafeFile(path, options);
  const readAt = (at: number): Promise<number> | undefined => {
    if (at >= buf.length) return undefined;
    const want = Math.min(at === 0 ? first : chunk, buf.length - at);
    return handle.read(buf, at, want, at).then((r) => r.bytesRead);
  };
  let ahead = readAt(0);
  try {
    for (let at = 0; ahead !== undefined;) {
      const bytesRead = await ahead;
      ahead = undefined;
      if (bytesRead === 0) return;
      const slice = buf.subarray(at, at + bytesRead);
      at += bytesRead;
      ahead = readAt(at);
      yield slice;
    }
  } finally {
    // a read still in flight lands (its error is of no use any more) before the close
    if (ahead !== undefined) await ahead.catch(() => undefined);
    await handle.close();
  }
}

/**
 * Check that `path` is a real folder: not a symbolic link (never followed),
 * not a file. Resolves to false when nothing is there.
 * @throws ProtocolError `ERR_FILE_SYMLINK`, `ERR_FILE_NOT_FOLDER`; other system errors unchanged.
 */
export async function checkRealFolder(path: string, what = 'the folder'): Promise<boolean> {
  let st: Stats;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  if (st.isSymbolicLink()) throw new ProtocolError('ERR_FILE_SYMLINK', `${capital(what)} is a symbolic link; links are never followed here.`, { file: path });
  if (!st.isDirectory()) throw new ProtocolError('ERR_FILE_NOT_FOLDER', `${capital(what)} is ${describeFileType(st)}, not a folder.`, { file: path });
  return true;
}

function capital(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
