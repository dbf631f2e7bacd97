import type { Chunk, MapfileStatus } from '@ddferry/mapfile';
import { isBlockStatus } from '@ddferry/mapfile';

import { ProtocolError } from './errors.js';
import type { ErrorContext, PieceCode } from './errors.js';
import type { RescueId } from './identity.js';
import { MAX_SEQ } from './limits.js';
import type { Extent, StatusRange } from './messages.js';
import { hexOf, xxh64 } from './xxh64.js';

/**
 * The immutable unit of shipping: extents rescued inside one chunk with their
 * data, and the map delta (the statuses of every range the piece speaks for,
 * bad ones included).
 */
export interface Piece {
  readonly rescueId: RescueId;
  /** Sequence number, from 1. */
  readonly seq: number;
  /** Index of the chunk in the plan. */
  readonly chunk: number;
  /** Sorted, non-overlapping. */
  readonly extents: readonly Extent[];
  /** Sorted, non-overlapping. */
  readonly delta: readonly StatusRange[];
  /** The extents' bytes concatenated in order. */
  readonly data: Uint8Array;
  /**
   * The status line of the reader's common mapfile when the piece was sealed
   * (absent: the piece does not tell). The image mapfile takes the status line
   * of the newest piece it merges (`Commit.mapState` of the assembler), so it
   * ends `+` as GNU ddrescue's does once the reader's last run has finished.
   */
  readonly mapState?: PieceMapState | undefined;
}

/** GNU ddrescue's status line: current position, status (the phase: `? * / - F G +`) and pass. */
export interface PieceMapState {
  readonly currentPos: number;
  readonly currentStatus: MapfileStatus;
  readonly currentPass: number;
}

/** A piece without its data: what its sealed header says. */
export type PieceDescription = Omit<Piece, 'data'>;

/** A piece opened from its sealed form (`openSealedPiece`, `PieceCollector`, `readBundle`): fully checked. */
export interface OpenedPiece extends Piece {
  /** The header hash of its sealed form (`headerHashOf`): its identity in receipts. */
  readonly headerHash: string;
  /**
   * Parts of `data` that travelled as zero runs (positions in `data`, sorted, disjoint;
   * the bytes are zeros in `data` too): a writer may leave them as holes where the
   * image reads as zeros already. Absent when there is none.
   */
  readonly zeroRuns?: readonly { readonly pos: number; readonly size: number }[] | undefined;
}

/** What a piece is checked against: the rescue's plan. */
export interface PiecePlan {
  /** When given, pieces of any other rescue are refused. */
  readonly rescueId?: RescueId | undefined;
  readonly sourceSize: number;
  /**
   * The plan's sector size. Not enforced on extents: chunk maps made by hand
   * for `ddrescue -m` may hold unaligned ranges.
   */
  readonly sectorSize: number;
  readonly chunks: readonly Chunk[];
}

/** Where a check runs, named in errors. */
export interface PieceContext {
  readonly file?: string | undefined;
  readonly peer?: string | undefined;
}

function fail(code: PieceCode, piece: { readonly seq: number }, message: string, where: PieceContext): never {
  const context: ErrorContext = { file: where.file, peer: where.peer, seq: piece.seq };
  throw new ProtocolError(code, message, context);
}

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function isRange(r: { readonly pos: number; readonly size: number }): boolean {
  return isCount(r.pos) && Number.isSafeInteger(r.size) && r.size > 0 && Number.isSafeInteger(r.pos + r.size);
}

/**
 * Check that the data is what the extents say: its length is the sum of their
 * sizes, and each extent's bytes have its xxh64.
 * @throws ProtocolError `ERR_PIECE_SIZE_MISMATCH`, `ERR_PIECE_CHECKSUM_MISMATCH`.
 */
export function verifyPieceData(piece: Piece, where: PieceContext = {}): void {
  let total = 0;
  for (const e of piece.extents) total += e.size;
  if (total !== piece.data.length) {
    fail('ERR_PIECE_SIZE_MISMATCH', piece, `The extents hold ${total} bytes but the data has ${piece.data.length}.`, where);
  }
  let at = 0;
  for (const e of piece.extents) {
    const h = xxh64(piece.data.subarray(at, at + e.size));
    if (h !== e.xxh64) {
      fail('ERR_PIECE_CHECKSUM_MISMATCH', piece, `The data of the extent at ${e.pos} (${e.size} bytes) has xxh64 ${hexOf(h)}, not ${hexOf(e.xxh64)}.`, where);
    }
    at += e.size;
  }
}

/**
 * Check a sequence number: an integer from 1 to `MAX_SEQ`.
 * @throws ProtocolError `ERR_PIECE_BAD_SEQ`.
 */
export function checkSeq(seq: number, where: PieceContext = {}): void {
  if (!Number.isSafeInteger(seq) || seq < 1 || seq > MAX_SEQ) fail('ERR_PIECE_BAD_SEQ', { seq }, `Sequence number ${seq} is not an integer from 1 to 2^40.`, where);
}

/**
 * Check the shape of a piece on its own: sequence number, extents and delta
 * ranges sorted, non-overlapping, of positive sizes, every extent marked `+` in
 * the delta, and every `+` delta range carried by extents (nothing is marked
 * rescued without its data). `bounds`, when given, is the range every extent
 * and delta range must lie in.
 * @throws ProtocolError `ERR_PIECE_*`.
 */
export function checkPieceShape(piece: PieceDescription, where: PieceContext = {}): void {
  checkSeq(piece.seq, where);
  let end = 0;
  for (const e of piece.extents) {
    if (!isRange(e)) fail('ERR_PIECE_BAD_EXTENT', piece, `An extent at ${e.pos} of ${e.size} bytes is not a range of the source.`, where);
    if (e.pos < end) fail('ERR_PIECE_EXTENTS_NOT_SORTED', piece, `The extent at ${e.pos} starts before the end ${end} of the one before it.`, where);
    end = e.pos + e.size;
  }
  end = 0;
  for (const d of piece.delta) {
    if (!isRange(d) || typeof d.status !== 'string' || !isBlockStatus(d.status)) {
      fail('ERR_PIECE_BAD_DELTA', piece, `A delta range at ${d.pos} of ${d.size} bytes with status "${String(d.status).slice(0, 8)}" is not valid.`, where);
    }
    if (d.pos < end) fail('ERR_PIECE_DELTA_NOT_SORTED', piece, `The delta range at ${d.pos} starts before the end ${end} of the one before it.`, where);
    end = d.pos + d.size;
  }
  checkFinishedMatchesExtents(piece, where);
}

/**
 * The `+` delta ranges and the extents must cover the same bytes. Both lists
 * are sorted, so their maximal runs of touching ranges must be equal one by
 * one; the first difference tells which side has bytes the other lacks.
 */
function checkFinishedMatchesExtents(piece: PieceDescription, where: PieceContext): void {
  const finished = mergeRanges(piece.delta.filter((d) => d.status === '+'));
  const carried = mergeRanges(piece.extents);
  for (let k = 0; k < Math.max(finished.length, carried.length); k++) {
    const f = finished[k];
    const c = carried[k];
    if (f !== undefined && c !== undefined && f.pos === c.pos && f.end === c.end) continue;
    if (c !== undefined && (f === undefined || f.pos > c.pos || (f.pos === c.pos && f.end < c.end))) {
      fail('ERR_PIECE_EXTENT_NOT_FINISHED', piece, `The extent data [${c.pos}, ${c.end}) is not all marked + in the delta.`, where);
    }
    if (f !== undefined) fail('ERR_PIECE_FINISHED_WITHOUT_DATA', piece, `The delta marks [${f.pos}, ${f.end}) rescued but extents do not carry all its data.`, where);
  }
}

/** Sorted ranges with touching ones joined, as `[pos, end)`. */
function mergeRanges(ranges: readonly { readonly pos: number; readonly size: number }[]): { pos: number; end: number }[] {
  const out: { pos: number; end: number }[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last !== undefined && last.end === r.pos) last.end = r.pos + r.size;
    else out.push({ pos: r.pos, end: r.pos + r.size });
  }
  return out;
}

/** The chunk of the plan with this index. */
export function findChunk(plan: PiecePlan, index: number): Chunk | undefined {
  const direct = plan.chunks[index];
  if (direct !== undefined && direct.index === index) return direct;
  return plan.chunks.find((c) => c.index === index);
}

/**
 * Check a piece against the plan before anything of it is used (invariant S2):
 * its description (`checkPieceAgainstPlan`) and its data (`verifyPieceData`).
 * @throws ProtocolError `ERR_PIECE_*`, naming the piece's sequence number.
 */
export function validatePiece(piece: Piece, plan: PiecePlan, where: PieceContext = {}): void {
  checkPieceAgainstPlan(piece, plan, where);
  verifyPieceData(piece, where);
}

/**
 * Check what a piece says against the plan (invariant S2): its rescue (when the
 * plan names one), its chunk, its shape (`checkPieceShape`), and every extent
 * and delta range inside its chunk and the source.
 * @throws ProtocolError `ERR_PIECE_*`, naming the piece's sequence number.
 */
export function checkPieceAgainstPlan(piece: PieceDescription, plan: PiecePlan, where: PieceContext = {}): void {
  if (plan.rescueId !== undefined && piece.rescueId !== plan.rescueId) {
    fail('ERR_PIECE_WRONG_RESCUE', piece, `The piece belongs to rescue ${piece.rescueId}, not to this rescue ${plan.rescueId}.`, where);
  }
  const chunk = findChunk(plan, piece.chunk);
  if (chunk === undefined) fail('ERR_PIECE_UNKNOWN_CHUNK', piece, `Chunk ${piece.chunk} is not in the plan (${plan.chunks.length} chunks).`, where);
  checkPieceShape(piece, where);
  const chunkEnd = chunk.pos + chunk.size;
  const inside = (r: { readonly pos: number; readonly size: number }): boolean => r.pos >= chunk.pos && r.pos + r.size <= chunkEnd;
  for (const e of piece.extents) {
    if (e.pos + e.size > plan.sourceSize) fail('ERR_PIECE_OUTSIDE_SOURCE', piece, `The extent [${e.pos}, ${e.pos + e.size}) ends past the source's ${plan.sourceSize} bytes.`, where);
    if (!inside(e)) fail('ERR_PIECE_EXTENT_OUTSIDE_CHUNK', piece, `The extent [${e.pos}, ${e.pos + e.size}) is not inside chunk ${chunk.index} [${chunk.pos}, ${chunkEnd}).`, where);
  }
  for (const d of piece.delta) {
    if (d.pos + d.size > plan.sourceSize) fail('ERR_PIECE_OUTSIDE_SOURCE', piece, `The delta range [${d.pos}, ${d.pos + d.size}) ends past the source's ${plan.sourceSize} bytes.`, where);
    if (!inside(d)) fail('ERR_PIECE_DELTA_OUTSIDE_CHUNK', piece, `The delta range [${d.pos}, ${d.pos + d.size}) is not inside chunk ${chunk.index} [${chunk.pos}, ${chunkEnd}).`, where);
  }
}

/** The extent of `data` at `pos`, with its xxh64: how a reader records what it read. */
export function makeExtent(pos: number, data: Uint8Array): Extent {
  return { pos, size: data.length, xxh64: xxh64(data) };
}
