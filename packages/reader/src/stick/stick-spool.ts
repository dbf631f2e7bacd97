import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { type FrameEncodeOptions, type Piece, RecycledBuffers, type RescueKeys, type SealedPiece, sealPieceAsync } from '@ddferry/protocol';

import { ReaderError, errnoOf } from '../errors.js';
import type { Ledger, LedgerEntry } from '../job/ledger.js';
import { type PendingPieces, type StickSpace, fits, statStick } from './space.js';
import type { StickWriter } from './writer.js';

export interface StickSpoolOptions {
  /** The stick's rescue folder, `DIR/ddferry/<rescue-id>`. */
  readonly folder: string;
  /** The stick's id (`rescue.json`). */
  readonly stickId: string;
  readonly ledger: Ledger;
  readonly writer: StickWriter;
  /** The rescue's keys: a writer that takes sealed pieces gets them sealed with these. */
  readonly keys: RescueKeys;
  /** Free space of the stick; default `statfs` (tests inject one). */
  readonly statStick?: (dir: string) => Promise<StickSpace>;
  /** How frames are encoded when pieces are sealed. Default zero runs and zstd level 3. */
  readonly compression?: FrameEncodeOptions | undefined;
}

/**
 * Errors that mean "the stick is full": a clean stop, a trip to PC_B, and the piece read
 * again later. fusefat answers EPERM when the FAT is full: EPERM counts as full when the
 * free space is then below what the piece needs.
 */
const FULL = new Set(['ENOSPC', 'EFBIG', 'EDQUOT']);

/**
 * The spool on a stick: each sealed piece gets its ledger entry (JOBDIR, durable), then
 * its files on the stick (written by the `StickWriter`: temporary, fsync, rename, folder
 * fsync). A piece is durable when `put` returns (R1). A full stick (ENOSPC, EFBIG) makes
 * `put` throw `ERR_STICK_FULL` with no partial file left and no ledger entry: the piece is
 * on no stick (the run loop keeps it in the local spool, or leaves it unclaimed). After
 * that, every `put` throws at once.
 */
export class StickSpool {
  readonly folder: string;
  readonly stickId: string;
  readonly writer: StickWriter;
  readonly #o: StickSpoolOptions;
  /** The sealed block of the last piece written, for the next piece's seal (one piece is written at a time). */
  readonly #blocks = new RecycledBuffers(48 << 20);
  #space: StickSpace = { free: 0, blockSize: 512, total: 0 };
  /** The reader's own count of the free space: the last `refresh`, minus what it wrote since (see space.ts). */
  #counted = 0;
  #files = 0;
  #count = 0;
  #bytes = 0;
  /** The error that stopped writing (ERR_STICK_FULL or ERR_STICK_WRITE), or null. */
  failure: ReaderError | null = null;
  /** Pieces written in this run, and their bytes on the stick. */
  written = 0;
  writtenBytes = 0;
  /** The raw (rescued) bytes of the pieces written in this run. */
  writtenRawBytes = 0;
  /** Bytes on the stick per raw byte of the last piece written (1 before any). */
  #lastRatio = 1;

  private constructor(o: StickSpoolOptions) {
    this.#o = o;
    this.folder = o.folder;
    this.stickId = o.stickId;
    this.writer = o.writer;
  }

  /** Count what the folder holds and read the free space. */
  static async open(o: StickSpoolOptions): Promise<StickSpool> {
    const s = new StickSpool(o);
    await s.refresh();
    return s;
  }

  /** Re-read the free space and the folder's figures (after files were deleted). */
  async refresh(): Promise<void> {
    this.#space = await (this.#o.statStick ?? statStick)(this.folder);
    this.#counted = this.#space.free;
    this.#files = (await readdir(this.folder)).length;
    let count = 0;
    let bytes = 0;
    for (const e of this.#o.ledger.entries()) {
      if (e.stickId !== this.stickId) continue;
      ++count;
      for (const f of e.files) bytes += await stat(join(this.folder, f)).then((st) => Math.min(st.size, st.blocks * 512), () => 0);
    }
    this.#count = count;
    this.#bytes = bytes;
  }

  /** True once a write failed because the stick is full. */
  get full(): boolean {
    return this.failure?.code === 'ERR_STICK_FULL';
  }

  get space(): StickSpace {
    return this.#space;
  }

  /** Pieces of this stick waiting for PC_B (ledger entries), and their bytes on the stick. */
  get count(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** For progress displays (the LAN spool has a capacity). */
  get capacity(): number {
    return this.#space.total;
  }

  /**
   * Bytes on the stick per raw byte rescued, as this trip has seen it so far: the larger
   * of the whole trip's ratio and the last piece's (data that stops compressing counts at
   * once), at most 1; 1 before the first piece. Pieces not yet written are planned at it.
   */
  get ratio(): number {
    if (this.writtenRawBytes === 0) return 1;
    return Math.min(1, Math.max(this.writtenBytes / this.writtenRawBytes, this.#lastRatio));
  }

  /**
   * True if the pieces in memory plus a read of `nextRead` bytes would fit, their raw bytes
   * counted at `ratio` (compressed as the trip's pieces so far). The plan may be too
   * hopeful when data turns incompressible: the write's real size decides (ENOSPC: the
   * piece goes to the local spool, nothing is lost).
   */
  fits(pending: PendingPieces, nextRead: number): boolean {
    const r = this.ratio;
    return this.failure === null && fits(this.#space, { ...pending, bytes: Math.ceil(pending.bytes * r) }, Math.ceil(nextRead * r), this.writer, this.#files, this.#count);
  }

  async #looksFull(piece: Piece, dataBytes: number): Promise<boolean> {
    try {
      const s = await (this.#o.statStick ?? statStick)(this.folder);
      return s.total === 0 || s.free < this.writer.estimate(dataBytes, piece.extents.length + piece.delta.length) + s.blockSize;
    } catch {
      return false;
    }
  }

  /**
   * Write a piece onto the stick, its ledger entry first. `spooled`: its sealed form
   * from the local spool, carried as it is (the header hash the image may know it by);
   * else it is sealed here.
   */
  async put(piece: Piece, spooled?: SealedPiece): Promise<void> {
    if (spooled !== undefined && spooled.seq !== piece.seq) throw new Error(`internal: stick put: sealed piece ${spooled.seq} given for piece ${piece.seq}`);
    let block: Uint8Array | undefined;
    const sealed = this.writer.sealed === true ? spooled ?? await sealPieceAsync(piece, this.#o.keys, { ...this.#o.compression, alloc: (size) => (block = this.#blocks.reuse(size) ?? Buffer.allocUnsafeSlow(size)) }) : undefined;
    try {
      await this.#putSealed(piece, sealed);
    } finally {
      if (block !== undefined) this.#blocks.keep(block);
    }
  }

  async #putSealed(piece: Piece, sealed: SealedPiece | undefined): Promise<void> {
    const ledger = this.#o.ledger;
    const entry: LedgerEntry = {
      seq: piece.seq, chunk: piece.chunk, stickId: this.stickId, files: this.writer.names?.(piece) ?? [], dataBytes: piece.data.length,
      delta: piece.delta.map((d) => ({ pos: d.pos, size: d.size, status: d.status })), ...(sealed === undefined ? {} : { headerHash: sealed.headerHash }),
    };
    await ledger.put(entry);
    if (this.failure) throw this.failure;
    let out: { files: string[]; bytes: number };
    try {
      out = await this.writer.write(piece, this.folder, sealed);
    } catch (err) {
      const code = errnoOf(err);
      this.failure = code !== undefined && (FULL.has(code) || (code === 'EPERM' && await this.#looksFull(piece, sealed?.dataSize ?? piece.data.length)))
        ? new ReaderError('ERR_STICK_FULL', this.folder, `${this.folder}: the stick is full (${code} writing piece ${piece.seq}); nothing of that piece is on it.`, { cause: err, hint: 'Carry the stick to PC_B, import it, bring it back and run the same command again.' })
        : new ReaderError('ERR_STICK_WRITE', this.folder, `${this.folder}: can't write piece ${piece.seq} (${(err as Error).message}).`, { cause: err, hint: 'Check the stick is still plugged in and mounted read-write, then run the same command again: nothing unwritten is claimed.' });
      // the piece is on no stick: its entry goes, so no later trip takes it for a lost bundle
      await ledger.remove([piece.seq]);
      throw this.failure;
    }
    if (out.files.length === 0) {
      // nothing to carry (a chunk-files piece with no rescued data): its statuses are in common.map, and GNU
      // ddrescue on PC_B needs none; an entry without files would be taken for a lost piece at every trip
      await ledger.remove([piece.seq]);
      return;
    }
    if (out.files.length !== entry.files.length || out.files.some((f, i) => f !== entry.files[i])) await ledger.put({ ...entry, files: out.files });
    ++this.written;
    ++this.#count;
    this.#files += out.files.length;
    this.writtenBytes += out.bytes;
    this.writtenRawBytes += piece.data.length;
    if (piece.data.length > 0) this.#lastRatio = out.bytes / piece.data.length;
    this.#bytes += out.bytes;
    // each file takes whole blocks, and its folder entry may take one more
    const block = this.#space.blockSize;
    this.#counted -= Math.ceil(out.bytes / block) * block + out.files.length * block;
    try {
      const s = await (this.#o.statStick ?? statStick)(this.folder);
      this.#space = s.total === 0 ? s : { ...s, free: Math.max(0, Math.min(s.free, this.#counted)) };
    } catch (err) {
      this.failure = new ReaderError('ERR_STICK_WRITE', this.folder, `${this.folder}: the stick's free space can't be read (${(err as Error).message}). Check it is still mounted, then run the same command again.`, { cause: err });
    }
  }
}
