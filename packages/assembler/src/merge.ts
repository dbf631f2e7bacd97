/**
 * Merging validated pieces into an image (invariants A1-A3).
 *
 * | rule | how |
 * |---|---|
 * | A1: `+` only over durable data | `Image.stage`: write; then the batch's durable round (every batch written since the round before): one fsync, then statuses, then `IMAGE.map`, then the merged pieces; until then the batch's ranges and seqs are its own for the batches planned after it |
 * | A2: a piece twice changes nothing | a piece merged before (same seq, same header hash), or twice in a batch, is skipped and still acknowledged; bytes are never written over `+` |
 * | A3: a piece writes only its own `+` extents | only extent bytes are written, and only where the map is not `+` yet (zero runs too: never zeros over `+`); delta statuses only move forward (`? * / - +`) |
 * | A4: a seq is one piece for good | a piece whose seq was merged under another header hash (or comes earlier in the batch with another) is refused, `ERR_PIECE_SEQ_CONFLICT`, and changes nothing; never "already merged" |
 *
 * Pieces must have been opened and checked (`PieceOpener`: authenticated,
 * validated against the image's plan, S2): this module trusts their positions
 * and checksums, not their novelty.
 */
import type { OpenedPiece, PieceRef } from '@ddferry/protocol';
import { ProtocolError } from '@ddferry/protocol';

import { AssemblerError } from './errors.js';
import type { Commit, Image } from './image.js';
import { RangeSet } from './range-set.js';

const MIB = 1024 * 1024;

/** How much a merge batch may hold. A batch always takes at least one piece. */
export interface MergeLimits {
  /** Most pieces per batch (written together; rounds of batches are made durable with one fsync, one mapfile save). Default 64. */
  readonly maxBatchPieces: number;
  /** Most piece data bytes per batch. Default 64 MiB. */
  readonly maxBatchBytes: number;
}

export const DEFAULT_MERGE_LIMITS: MergeLimits = Object.freeze({ maxBatchPieces: 64, maxBatchBytes: 64 * MIB });

/**
 * `{ ...DEFAULT_MERGE_LIMITS, ...overrides }`, checked.
 * @throws RangeError for a limit that is not a positive integer.
 */
export function resolveMergeLimits(overrides: Partial<MergeLimits> = {}): MergeLimits {
  const limits: MergeLimits = { ...DEFAULT_MERGE_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`merge limit ${name} must be a positive integer, not ${String(value)}`);
  }
  return Object.freeze(limits);
}

/** A batch planned against the image's current map. */
export interface PlannedBatch {
  /** What to make durable; empty when every piece was merged before. */
  readonly commit: Commit;
  /** Every distinct piece of the batch, in order: merged before or by this commit. */
  readonly acknowledged: readonly PieceRef[];
  /** Pieces refused (A4), each with the error to give its sender. */
  readonly refused: readonly { readonly piece: OpenedPiece; readonly error: ProtocolError }[];
}

/**
 * The refusal of a piece whose seq is held by another piece (A4), for its sender and the log.
 * @param where what holds the other piece (the image's path).
 * @param file the bundle the refused piece comes from, if any.
 */
export function seqConflict(piece: PieceRef, heldHash: string, where: string, file?: string): ProtocolError {
  return new ProtocolError('ERR_PIECE_SEQ_CONFLICT', `The piece with header hash ${piece.headerHash} is refused: ${where} holds another piece under this seq (header hash ${heldHash}).`, { seq: piece.seq, file });
}

/**
 * Plan the merge of `pieces` into `image` as it is now (call inside
 * `image.exclusive`, so the map does not change meanwhile):
 * - pieces merged before (same seq and header hash), or earlier in the batch, contribute nothing;
 * - a piece whose seq the image, or an earlier piece of the batch, holds under
 *   another header hash is refused (A4) and contributes nothing;
 * - each extent's bytes go to their position, except where the map is already
 *   `+` or an earlier piece of the batch writes (adjacent bytes are joined into one write);
 * - delta ranges of status `? * / -` are raised (forward only, by `commit`);
 *   `+` comes only from the writes, so nothing is marked rescued without its bytes;
 * - the status line of the newest piece that carries one goes with the commit.
 * @throws AssemblerError `ERR_IMAGE_NOT_BOUND`, `ERR_IMAGE_WRONG_RESCUE`.
 */
export function planBatch(image: Image, pieces: readonly OpenedPiece[]): PlannedBatch {
  const binding = image.binding;
  if (binding === undefined) throw new AssemblerError('ERR_IMAGE_NOT_BOUND', image.path, 'No rescue is bound to the image yet.');
  const writes: { pos: number; data: Uint8Array }[] = [];
  const zeros: { pos: number; size: number }[] = [];
  const statuses: Commit['statuses'][number][] = [];
  const fresh: PieceRef[] = [];
  const acknowledged: PieceRef[] = [];
  const refused: { piece: OpenedPiece; error: ProtocolError }[] = [];
  const seen = new Map<number, string>();
  /** What the batch writes so far. */
  const written = new RangeSet();
  /** The status line of the newest fresh piece that carries one. */
  let mapState: Commit['mapState'];
  const push = (pos: number, data: Uint8Array): void => {
    const last = writes[writes.length - 1];
    if (last !== undefined && last.pos + last.data.length === pos && last.data.buffer === data.buffer
      && last.data.byteOffset + last.data.length === data.byteOffset) {
      last.data = new Uint8Array(data.buffer, last.data.byteOffset, last.data.length + data.length);
    } else {
      writes.push({ pos, data });
    }
  };
  for (const piece of pieces) {
    if (piece.rescueId !== binding.rescueId) {
      throw new AssemblerError('ERR_IMAGE_WRONG_RESCUE', image.path, `Piece ${piece.seq} belongs to rescue ${piece.rescueId}; the image belongs to rescue ${binding.rescueId}.`);
    }
    const ref = { seq: piece.seq, headerHash: piece.headerHash };
    const held = image.mergedHash(piece.seq);
    const staged = image.stagedHash(piece.seq);
    const earlier = seen.get(piece.seq);
    if (held !== undefined && held !== piece.headerHash) {
      refused.push({ piece, error: seqConflict(ref, held, image.path) });
      continue;
    }
    if (staged !== undefined && staged !== piece.headerHash) {
      refused.push({ piece, error: seqConflict(ref, staged, `${image.path}'s batch being made durable`) });
      continue;
    }
    if (earlier !== undefined) {
      if (earlier !== piece.headerHash) refused.push({ piece, error: seqConflict(ref, earlier, `${image.path}'s merge batch`) });
      continue;
    }
    seen.set(piece.seq, piece.headerHash);
    acknowledged.push(ref);
    if (held !== undefined) continue;
    fresh.push(ref);
    // written by a batch not durable yet: its data, statuses and status line come with it
    if (staged !== undefined) continue;
    let offset = 0;
    for (const e of piece.extents) {
      const base = offset;
      offset += e.size;
      image.forEachPlannedStatus(e, (pos, end, status) => {
        if (status === '+') return;
        written.forEachGap(pos, end, (p, q) => {
          forEachRun(base + p - e.pos, base + q - e.pos, piece.zeroRuns ?? [], (a, b, zero) => {
            const at = e.pos + a - base;
            if (!zero) push(at, piece.data.subarray(a, b));
            else if (zeros.length > 0 && zeros[zeros.length - 1]!.pos + zeros[zeros.length - 1]!.size === at) zeros[zeros.length - 1]!.size += b - a;
            else zeros.push({ pos: at, size: b - a });
          });
          written.add(p, q);
        });
      });
    }
    for (const d of piece.delta) if (d.status !== '+') statuses.push(d);
    if (piece.mapState !== undefined && (mapState === undefined || piece.seq > mapState.seq)) mapState = { seq: piece.seq, line: piece.mapState };
  }
  return { commit: { writes, statuses, pieces: fresh, ...(mapState === undefined ? {} : { mapState }), ...(zeros.length > 0 ? { zeros } : {}) }, acknowledged, refused };
}

/** Cut `[a, b)` (positions in a piece's data) at its zero runs (sorted, disjoint): `fn(from, to, zero)` in order. */
function forEachRun(a: number, b: number, runs: readonly { readonly pos: number; readonly size: number }[], fn: (from: number, to: number, zero: boolean) => void): void {
  let at = a;
  for (const r of runs) {
    const end = r.pos + r.size;
    if (end <= at) continue;
    if (r.pos >= b) break;
    if (r.pos > at) fn(at, r.pos, false);
    const stop = Math.min(end, b);
    fn(Math.max(at, r.pos), stop, true);
    at = stop;
  }
  if (at < b) fn(at, b, false);
}

/** A batch written into the image (`stagePieces`), and the promise of its durability. */
export interface StagedPieces {
  /** Every distinct piece of the batch, merged now or before: to acknowledge once `durable` resolves. */
  readonly acknowledged: PieceRef[];
  /** Pieces refused (A4, nothing of them written). */
  readonly refused: PlannedBatch['refused'];
  /**
   * Resolves once the batch is fsynced and `IMAGE.map` and the merged pieces are saved (at
   * once when nothing was to merge); rejects with `ERR_IMAGE_SYNC`, `ERR_IMAGE_SAVE`.
   */
  readonly durable: Promise<void>;
}

/**
 * Write a batch of validated pieces into the image, serialized with every
 * other merge of the image, and return once it is written (`Image.stage`):
 * the next batch may be planned and written while this one is made durable.
 * `written` is told once the pieces' data is written (or found merged before):
 * their memory may go then; a write that fails never tells it. Nothing may be
 * acknowledged before `durable` resolves.
 * @throws AssemblerError `ERR_IMAGE_WRITE`, `ERR_IMAGE_NOT_BOUND`,
 *   `ERR_IMAGE_WRONG_RESCUE`, `ERR_IMAGE_CLOSED`, `ERR_IMAGE_SYNC` (an earlier fsync failed).
 */
export function stagePieces(image: Image, pieces: readonly OpenedPiece[], written?: () => void): Promise<StagedPieces> {
  return image.exclusive(async () => {
    const { commit, acknowledged, refused } = planBatch(image, pieces);
    let durable = Promise.resolve();
    if (commit.pieces.length > 0) ({ durable } = await image.stage(commit, written));
    else written?.();
    return { acknowledged: [...acknowledged], refused, durable };
  });
}

/**
 * Merge a batch of validated pieces durably (`stagePieces`, then its durability).
 * Returns once the data is fsynced and `IMAGE.map` and the merged pieces are
 * saved: only then may the caller send the receipt.
 * @returns the pieces to acknowledge (every distinct piece of `pieces`, merged
 *   now or before) and those refused (A4, nothing of them written).
 * @throws AssemblerError `ERR_IMAGE_WRITE`, `ERR_IMAGE_SYNC`, `ERR_IMAGE_SAVE`,
 *   `ERR_IMAGE_NOT_BOUND`, `ERR_IMAGE_WRONG_RESCUE`, `ERR_IMAGE_CLOSED`.
 */
export async function mergePieces(image: Image, pieces: readonly OpenedPiece[], written?: () => void): Promise<{ acknowledged: PieceRef[]; refused: PlannedBatch['refused'] }> {
  const { acknowledged, refused, durable } = await stagePieces(image, pieces, written);
  await durable;
  return { acknowledged, refused };
}

interface Waiting {
  readonly piece: OpenedPiece;
  readonly written: (() => void) | undefined;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/**
 * The merge queue of one image: pieces from any number of connections wait
 * here and are merged in batches of at most `maxBatchPieces` pieces and
 * `maxBatchBytes` bytes (at least one piece), one batch written at a time.
 * A batch is written while the ones before it are made durable (`stagePieces`:
 * the image makes every batch written meanwhile durable with one fsync and one
 * mapfile save), and the next one gathers while it is written, so the number of
 * fsyncs and mapfile saves adapts to the load. The queue holds only what
 * callers put in: they bound it (the server does, per connection).
 */
export class MergeQueue {
  readonly image: Image;
  readonly #limits: MergeLimits;
  readonly #waiting: Waiting[] = [];
  /** Batches written and not durable yet: each settles its pieces' promises. */
  readonly #staged = new Set<Promise<void>>();
  #count = 0;
  #bytes = 0;
  #running: Promise<void> | undefined;

  constructor(image: Image, limits: Partial<MergeLimits> = {}) {
    this.image = image;
    this.#limits = resolveMergeLimits(limits);
  }

  /** Piece data bytes waiting or being merged. */
  get pendingBytes(): number {
    return this.#bytes;
  }

  /** Pieces waiting or being merged. */
  get pendingCount(): number {
    return this.#count;
  }

  /**
   * Queue an opened, checked piece. `written` is told once its batch is
   * written, before the fsync (see `stagePieces`): its data's memory may go.
   * @returns a promise settled when the piece is durably merged (or was merged
   *   before), rejected with `ERR_PIECE_SEQ_CONFLICT` (a ProtocolError) when its
   *   seq is another piece's (A4), or with the batch's error.
   */
  enqueue(piece: OpenedPiece, written?: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ piece, written, resolve, reject });
      ++this.#count;
      this.#bytes += piece.data.length;
      this.#running ??= this.#run();
    });
  }

  /** Resolves when nothing is waiting or being merged. */
  async idle(): Promise<void> {
    while (this.#running !== undefined || this.#staged.size > 0) {
      await this.#running;
      await Promise.all(this.#staged);
    }
  }

  async #run(): Promise<void> {
    try {
      while (this.#waiting.length > 0) {
        let bytes = 0;
        let n = 0;
        while (n < this.#waiting.length && n < this.#limits.maxBatchPieces) {
          const size = this.#waiting[n]!.piece.data.length;
          if (n > 0 && bytes + size > this.#limits.maxBatchBytes) break;
          bytes += size;
          ++n;
        }
        const batch = this.#waiting.splice(0, n);
        const settled = (): void => {
          this.#count -= n;
          this.#bytes -= bytes;
        };
        let staged: StagedPieces;
        try {
          staged = await stagePieces(this.image, batch.map((w) => w.piece), () => {
            for (const w of batch) w.written?.();
          });
        } catch (err) {
          for (const w of batch) w.reject(err);
          settled();
          continue;
        }
        const errors = new Map(staged.refused.map((r) => [r.piece, r.error]));
        const done = staged.durable.then(() => {
          for (const w of batch) {
            const error = errors.get(w.piece);
            if (error === undefined) w.resolve();
            else w.reject(error);
          }
        }, (err: unknown) => {
          for (const w of batch) w.reject(err);
        }).finally(() => {
          settled();
          this.#staged.delete(done);
        });
        this.#staged.add(done);
      }
    } finally {
      this.#running = undefined;
    }
  }
}
