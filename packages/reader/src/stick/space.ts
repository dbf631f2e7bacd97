import { statfs } from 'node:fs/promises';

import type { StickWriter } from './writer.js';

/**
 * Free-space arithmetic for a stick. Sticks are often FAT32 or exFAT: no sparse files,
 * every file takes whole clusters, files stay under 4 GiB. The reader asks before each
 * read whether the pieces it holds in memory, plus that read, would still fit:
 *
 * | term | value |
 * |---|---|
 * | free | `statfs`: available blocks x block size, read at the start and after every file written |
 * | need | `writer.estimate(open data + next read, ranges)` rounded up to the block, plus one block per open piece (each is its own file) |
 * | margin | `stickMargin(total)`: max(2 MiB, total / 64), at most 64 MiB: room for the assembler's receipts (a few KiB each), folder growth, and file systems whose free count lags |
 * | fits | `free - margin - need >= 0`, the folder holds fewer than `MAX_STICK_FILES` files, and no file reaches `MAX_STICK_FILE_BYTES`; a stick whose size `statfs` does not tell (total 0) fits until a write fails |
 *
 * On a stick, pieces are sealed at `stickSealBytes(total)`: total / 16, from 1 MiB to
 * 32 MiB, so a small stick still takes a dozen pieces per trip and a large one has few
 * files (a FAT32 folder holds about 20 000 long-named files).
 */
export interface StickSpace {
  /** Bytes available to this user. */
  readonly free: number;
  /** The file system's block (allocation unit). */
  readonly blockSize: number;
  /** The file system's size; 0 if unknown (then only a failed write tells the stick is full). */
  readonly total: number;
}

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

/**
 * The file system of `dir`, by `statfs`. fusefat on a FAT with 512-byte clusters says 0
 * blocks, 0 free: that is "unknown" (`total` 0, `free` unbounded), not "full".
 */
export async function statStick(dir: string): Promise<StickSpace> {
  const s = await statfs(dir);
  if (s.blocks === 0) return { free: Number.MAX_SAFE_INTEGER, blockSize: Math.max(512, s.bsize), total: 0 };
  return { free: s.bavail * s.bsize, blockSize: s.bsize, total: s.blocks * s.bsize };
}

/** Bytes always left free on a stick of `total` bytes. */
export function stickMargin(total: number): number {
  return Math.min(64 * MIB, Math.max(2 * MIB, Math.floor(total / 64)));
}

/** The size at which pieces are sealed on a stick of `total` bytes (8 MiB if its size is unknown). */
export function stickSealBytes(total: number): number {
  if (total === 0) return 8 * MIB;
  return Math.min(32 * MIB, Math.max(MIB, Math.floor(total / 16 / MIB) * MIB));
}

function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

/** Bytes the pending pieces plus a read of `nextRead` bytes take on the stick, rounding included. */
export function bytesNeeded(pending: PendingPieces, nextRead: number, writer: StickWriter, blockSize: number): number {
  const pieces = Math.max(1, pending.pieces);
  const files = pieces * (writer.filesPerPiece ?? 1);
  return roundUp(writer.estimate(pending.bytes + nextRead, pending.ranges + 2), blockSize) + files * blockSize;
}

/** True if the pending pieces and a read of `nextRead` bytes fit on the stick with its margin. */
export function fits(space: StickSpace, pending: PendingPieces, nextRead: number, writer: StickWriter, files = 0): boolean {
  if (files + Math.max(1, pending.pieces) * (writer.filesPerPiece ?? 1) > MAX_STICK_FILES) return false;
  if (writer.estimate(pending.bytes + nextRead, pending.ranges + 2) >= MAX_STICK_FILE_BYTES) return false;
  if (space.total === 0) return true;
  return space.free - stickMargin(space.total) - bytesNeeded(pending, nextRead, writer, space.blockSize) >= 0;
}
