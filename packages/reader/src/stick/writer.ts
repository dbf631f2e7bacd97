import { type Piece, bundleFileName, writeBundle } from '@ddferry/protocol';

import { writeFileDurably } from '../durable-file.js';

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
