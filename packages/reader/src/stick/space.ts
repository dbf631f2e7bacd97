import { type StickSpace, maxReceiptBytes, statStickSpace } from '@ddferry/protocol';

import type { StickWriter } from './writer.js';

export type { StickSpace };

/** The space of the stick holding `dir` (`statStickSpace` of the protocol: fusefat's clusters where its statfs says 0 blocks). */
export const statStick: (dir: string) => Promise<StickSpace> = statStickSpace;

/**
 * Free-space arithmetic for a stick. Sticks are often FAT32 or exFAT: no sparse files,
 * every file takes whole clusters, files stay under 4 GiB. The reader asks before each
 * read whether the pieces it holds in memory, plus that read, would still fit:
 *
 * | term | value |
 * |---|---|
 * | free | `statStick`: `statfs` available blocks x block size, read at the start and after every file written, and never more than the reader's own count (what it read last, minus what it wrote since, each file rounded up to the block plus one block) |
 * | need | `writer.estimate(open data + next read, ranges)` rounded up to the block, plus one block per open piece (each is its own file) |
 * | margin | `stickMargin(total)`: max(2 MiB, total / 64), at most 64 MiB: folder growth, and file systems whose free count lags |
 * | reserve | `stickReserve(pieces, files, block)`: room PC_B needs to write its receipt of the stick's pieces (those on it and those pending): 3 x `maxReceiptBytes(pieces)` (1 KiB + 1 KiB a bundle; for chunk files, 40 B a file of `receipts/ddrescue-done.txt` when more), each rounded up to the block (an earlier import's receipt, the new one, and the temporary it is rewritten through), plus 2 blocks (the `receipts/` folder) |
 * | fits | `free - margin - reserve - need >= 0`, the folder holds fewer than `MAX_STICK_FILES` files, and no file reaches `MAX_STICK_FILE_BYTES`; a stick whose size nothing tells (total 0) fits until a write fails |
 *
 * Where `statfs` says nothing (0 blocks): fusefat on a FAT with 512-byte clusters (what
 * mkfs.vfat makes below 260 MiB) says 0 blocks and 0 free, yet its `f_files` and `f_ffree`
 * are the FAT's total and free clusters (measured: exact, updated at once): then total =
 * files x 512 and free = ffree x 512, with 512-byte blocks. Any other file system that
 * says 0 blocks is "unknown" (total 0): written until a write fails, with no reserve.
 *
 * On a stick, pieces are sealed at `stickSealBytes(total)`: total / 16, from 1 MiB to
 * 16 MiB, so a small stick still takes a dozen pieces per trip and a large one has few
 * files (a FAT32 folder holds about 20 000 long-named files; `MAX_STICK_FILES` of 16 MiB
 * are 250 GiB a trip). 16, not 32 MiB: the reader holds about four pieces at once on a
 * trip (one filling, one sealed, its block, one kept for the next), and at 32 MiB its peak
 * RSS was 220-250 MiB (512 MiB trip, 3-5 runs); at 16 MiB 152-165 MiB, the trip 10 %
 * faster, and the import of such a stick as fast (0.996x wall, 8 pairs), 5 MiB more.
 */
/** What the stick spool holds in memory, not yet written. */
export interface PendingPieces {
  readonly pieces: number;
  readonly bytes: number;
  /** Extents plus delta ranges (they grow the manifest). */
  readonly ranges: number;
}

const MIB = 1 << 20;
/** FAT32's file-size limit is 4 GiB - 1: no file reaches it. */
export const MAX_STICK_FILE_BYTES = 4 * 1024 * MIB - 1;
/** Most files in the rescue folder (FAT32: 65 536 folder entries, 3 per long name). */
export const MAX_STICK_FILES = 16_000;

/** Bytes always left free on a stick of `total` bytes. */
export function stickMargin(total: number): number {
  return Math.min(64 * MIB, Math.max(2 * MIB, Math.floor(total / 64)));
}

/** The largest piece sealed for a stick (see the module comment). */
export const STICK_PIECE_MAX_BYTES = 16 * MIB;

/** The size at which pieces are sealed on a stick of `total` bytes (8 MiB if its size is unknown). */
export function stickSealBytes(total: number): number {
  if (total === 0) return 8 * MIB;
  return Math.min(STICK_PIECE_MAX_BYTES, Math.max(MIB, Math.floor(total / 16 / MIB) * MIB));
}

function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

/** Bytes per file a line of `receipts/ddrescue-done.txt` takes (a chunk file's name and a newline). */
const CHUNK_RECEIPT_LINE_BYTES = 40;

/**
 * Bytes kept free for PC_B's receipt of `pieces` pieces in `files` files (see the module
 * comment): 3 receipts rounded up to the block, plus 2 blocks.
 */
export function stickReserve(pieces: number, files: number, blockSize: number): number {
  const receipt = Math.max(maxReceiptBytes(pieces), CHUNK_RECEIPT_LINE_BYTES * files);
  return 3 * roundUp(receipt, blockSize) + 2 * blockSize;
}

/** Bytes the pending pieces plus a read of `nextRead` bytes take on the stick, rounding included. */
export function bytesNeeded(pending: PendingPieces, nextRead: number, writer: StickWriter, blockSize: number): number {
  const pieces = Math.max(1, pending.pieces);
  const files = pieces * (writer.filesPerPiece ?? 1);
  return roundUp(writer.estimate(pending.bytes + nextRead, pending.ranges + 2), blockSize) + files * blockSize;
}

/**
 * True if the pending pieces and a read of `nextRead` bytes fit on the stick with its
 * margin and the reserve for the receipt of its `onStick` pieces (in `files` files) and the pending ones.
 */
export function fits(space: StickSpace, pending: PendingPieces, nextRead: number, writer: StickWriter, files = 0, onStick = 0): boolean {
  const newFiles = Math.max(1, pending.pieces) * (writer.filesPerPiece ?? 1);
  if (files + newFiles > MAX_STICK_FILES) return false;
  if (writer.estimate(pending.bytes + nextRead, pending.ranges + 2) >= MAX_STICK_FILE_BYTES) return false;
  if (space.total === 0) return true;
  const reserve = stickReserve(onStick + Math.max(1, pending.pieces), files + newFiles, space.blockSize);
  return space.free - stickMargin(space.total) - reserve - bytesNeeded(pending, nextRead, writer, space.blockSize) >= 0;
}
