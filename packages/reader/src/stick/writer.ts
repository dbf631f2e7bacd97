import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { type Piece, bundleFileName, writeBundle } from '@ddferry/protocol';

import { errnoOf } from '../errors.js';

/**
 * How a sealed piece becomes files on a stick. The stick spool (`stick-spool.ts`) calls
 * it once per piece, after the piece's ledger entry is durable in JOBDIR, and before
 * `common.map` may say `+` for the piece's data.
 *
 * | member | contract |
 * |---|---|
 * | `names(piece)` | optional: the file names `write` will make, known before writing, so the ledger records them first; without it the ledger entry is rewritten with the names `write` returns |
 * | `write(piece, folder)` | writes every file under a temporary name, fsyncs it, renames it into place and fsyncs `folder`; on any failure removes its temporaries (no partial file visible under a final name) and rethrows the error unchanged (ENOSPC and EFBIG must keep their `code`: the spool turns them into a clean "stick full" stop) |
 * | `estimate(dataBytes, ranges)` | bytes the files of a piece of `dataBytes` data and `ranges` extents plus delta ranges take at most, before rounding to the file system's block (the spool adds one block per file) |
 * | `filesPerPiece` | most files one piece makes (for the free-space check's rounding and the folder's entry count) |
 * | `refreshCommands(folder)` | optional: rewrite the writer's index files (the commands for PC_B) after the spool deleted merged or reclaimed files |
 *
 * The default, `BUNDLE_WRITER`, writes one tar bundle per piece (`piece-000123.tar`,
 * `writeBundle`), which `ddferry-assembler import` merges. `chunk-files.ts` writes the
 * other format (`--format ddrescue-chunks`, files GNU ddrescue can merge).
 */
export interface StickWriter {
  names?(piece: Piece): string[];
  write(piece: Piece, folder: string): Promise<{ files: string[]; bytes: number }>;
  estimate(dataBytes: number, ranges?: number): number;
  readonly filesPerPiece?: number;
  refreshCommands?(folder: string): Promise<void>;
}

const TAR_BLOCK = 512;
/** A manifest's fixed part, and the most one extent or delta range adds to it (JSON with 15-digit numbers). */
const MANIFEST_BASE = 512;
const MANIFEST_PER_RANGE = 96;

/** Write `name` in `folder` through `.NAME.tmp`: write, fsync, rename, fsync the folder. */
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

/** One tar bundle per piece: `piece-000123.tar`, written through `.piece-000123.tar.tmp`. */
export const BUNDLE_WRITER: StickWriter = Object.freeze({
  filesPerPiece: 1,
  names(piece: Piece): string[] {
    return [bundleFileName(piece.seq)];
  },
  async write(piece: Piece, folder: string): Promise<{ files: string[]; bytes: number }> {
    const name = bundleFileName(piece.seq);
    const bytes = await writeFileDurably(folder, name, (out) => writeBundle(piece, out, { end: false }));
    return { files: [name], bytes };
  },
  estimate(dataBytes: number, ranges = 0): number {
    // header + manifest, header + data, end of archive (writeBundle's own sum, with the manifest bounded)
    const manifest = MANIFEST_BASE + ranges * MANIFEST_PER_RANGE;
    return TAR_BLOCK + Math.ceil(manifest / TAR_BLOCK) * TAR_BLOCK + TAR_BLOCK + Math.ceil(dataBytes / TAR_BLOCK) * TAR_BLOCK + 2 * TAR_BLOCK;
  },
});
