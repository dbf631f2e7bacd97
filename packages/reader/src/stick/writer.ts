import { type Piece, type SealedPiece, TAG_BYTES, bundleFileName, writeBundle } from '@ddferry/protocol';

import { writeFileDurably } from '../durable-file.js';

/**
 * How a sealed piece becomes files on a stick. The stick spool (`stick-spool.ts`) calls
 * it once per piece, after the piece's ledger entry is durable in JOBDIR, and before
 * `common.map` may say `+` for the piece's data.
 *
 * | member | contract |
 * |---|---|
 * | `names(piece)` | optional: the file names `write` will make, known before writing, so the ledger records them first; without it the ledger entry is rewritten with the names `write` returns |
 * | `sealed` | true if `write` takes the piece sealed too (the stick spool seals it first, so the ledger records its header hash) |
 * | `write(piece, folder, sealed?)` | writes every file under a temporary name, fsyncs it, renames it into place and fsyncs `folder`; on any failure removes its temporaries (no partial file visible under a final name) and rethrows the error unchanged (ENOSPC and EFBIG must keep their `code`: the spool turns them into a clean "stick full" stop) |
 * | `estimate(dataBytes, ranges)` | bytes the files of a piece of `dataBytes` data and `ranges` extents plus delta ranges take at most, before rounding to the file system's block (the spool adds one block per file) |
 * | `filesPerPiece` | most files one piece makes (for the free-space check's rounding and the folder's entry count) |
 * | `refreshCommands(folder)` | optional: rewrite the writer's index files (the commands for PC_B) after the spool deleted merged or reclaimed files |
 *
 * The default, `BUNDLE_WRITER`, writes one tar bundle per piece (`piece-000123.tar`,
 * `writeBundle` of the sealed piece), which `ddferry-assembler import` opens and merges.
 * `chunk-files.ts` writes the other format (`--format ddrescue-chunks`, files GNU
 * ddrescue can merge, unsealed by necessity).
 */
export interface StickWriter {
  names?(piece: Piece): string[];
  readonly sealed?: boolean;
  write(piece: Piece, folder: string, sealed?: SealedPiece): Promise<{ files: string[]; bytes: number }>;
  estimate(dataBytes: number, ranges?: number): number;
  readonly filesPerPiece?: number;
  refreshCommands?(folder: string): Promise<void>;
}

const TAR_BLOCK = 512;
/** A sealed header's fixed part (layout, tag, frame fields), and the most one extent or delta range adds to it (protobuf). */
const HEADER_BASE = 128;
const HEADER_PER_RANGE = 40;
/** The data of a sealed piece is cut in frames of this size (the protocol's default `maxFrameBytes`). */
const FRAME_BYTES = 4 << 20;

/** One tar bundle of the sealed piece per piece: `piece-000123.tar`, written through `.piece-000123.tar.tmp`. */
export const BUNDLE_WRITER: StickWriter = Object.freeze({
  filesPerPiece: 1,
  sealed: true,
  names(piece: Piece): string[] {
    return [bundleFileName(piece.seq)];
  },
  async write(piece: Piece, folder: string, sealed?: SealedPiece): Promise<{ files: string[]; bytes: number }> {
    if (sealed === undefined || sealed.seq !== piece.seq) throw new Error(`internal: piece ${piece.seq} must be sealed before it goes in a bundle`);
    const name = bundleFileName(piece.seq);
    const bytes = await writeFileDurably(folder, name, (out) => writeBundle(sealed, out, { end: false }));
    return { files: [name], bytes };
  },
  estimate(dataBytes: number, ranges = 0): number {
    // tar header + sealed header; per frame a tar header, its data, its tag and the padding; end of archive (writeBundle's own sum, bounded)
    const header = HEADER_BASE + ranges * HEADER_PER_RANGE;
    const frames = Math.ceil(dataBytes / FRAME_BYTES);
    return TAR_BLOCK + Math.ceil(header / TAR_BLOCK) * TAR_BLOCK + dataBytes + frames * (TAR_BLOCK + TAG_BYTES + TAR_BLOCK) + 2 * TAR_BLOCK;
  },
});
