/**
 * The one way the reader makes a file durable: every writer (maps, the spool, the
 * ledger, the stick's bundles and chunk files, `rescue.json`, counters) goes through it.
 *
 * | function | what it guarantees |
 * |---|---|
 * | `saveFileAtomic(path, data)` | a whole new `path` or the old one, whatever happens: temporary file, fsync, rename, fsync of the folder (`.bak` kept on request) |
 * | `writeFileDurably(folder, name, fill)` | the same for a streamed file: `.NAME.tmp` filled, fsynced, renamed, folder fsynced; on failure the temporary is removed and the error rethrown unchanged (ENOSPC keeps its code) |
 * | `writeFileUnsynced(path, fill)` | nothing: `path` filled and closed, no fsync (the spool's pieces on their way while the link keeps up; whoever reads it back checks it) |
 * | `syncFolder(folder)` | a rename or unlink in `folder` is durable |
 */
import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { saveMapfile } from '@ddferry/mapfile/io';

import { errnoOf } from './errors.js';

/** Save `data` at `path` atomically and durably (`backup`: keep the previous file as `PATH.bak`). */
export async function saveFileAtomic(path: string, data: Uint8Array | string, options: { backup?: boolean } = {}): Promise<void> {
  await saveMapfile(path, data, options);
}

/** Write `name` in `folder` through `.NAME.tmp`: filled by `fill`, fsynced, renamed, folder fsynced. @returns the bytes written. */
export async function writeFileDurably(folder: string, name: string, fill: (out: NodeJS.WritableStream) => Promise<unknown>): Promise<number> {
  const tmp = join(folder, `.${name}.tmp`);
  let renamed = false;
  try {
    const fh = await open(tmp, 'w');
    let bytes = 0;
    try {
      const out = createWriteStream('', { fd: fh.fd, autoClose: false });
      // a failed write (ENOSPC) rejects here rather than as an unhandled 'error' event
      const failed = new Promise<never>((_, reject) => out.once('error', reject));
      failed.catch(() => undefined);
      await Promise.race([fill(out), failed]);
      await Promise.race([new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve()))), failed]);
      bytes = out.bytesWritten;
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(folder, name));
    renamed = true;
    await syncFolder(folder);
    return bytes;
  } finally {
    if (!renamed) await rm(tmp, { force: true });
  }
}

/** Fill `path` (created or truncated) and close it, without fsync; on failure it is removed and the error rethrown. @returns the bytes written. */
export async function writeFileUnsynced(path: string, fill: (out: NodeJS.WritableStream) => Promise<unknown>): Promise<number> {
  let ok = false;
  try {
    const fh = await open(path, 'w');
    try {
      const out = createWriteStream('', { fd: fh.fd, autoClose: false, highWaterMark: 1 << 20 });
      const failed = new Promise<never>((_, reject) => out.once('error', reject));
      failed.catch(() => undefined);
      await Promise.race([fill(out), failed]);
      await Promise.race([new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve()))), failed]);
      ok = true;
      return out.bytesWritten;
    } finally {
      await fh.close();
    }
  } finally {
    if (!ok) await rm(path, { force: true });
  }
}

/**
 * fsync a folder, so a rename in it is durable. FUSE file systems that cannot sync a
 * folder (fusefat, exfat-fuse answer EINVAL, ENOTSUP or ENOSYS) are accepted: their
 * renames reach the device with the next file fsync or the unmount.
 */
export async function syncFolder(folder: string): Promise<void> {
  let fh;
  try {
    fh = await open(folder, 'r');
    await fh.sync();
  } catch (err) {
    const code = errnoOf(err);
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EISDIR' && code !== 'EPERM') throw err;
  } finally {
    await fh?.close();
  }
}
