import { createReadStream } from 'node:fs';
import { mkdir, readdir, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import {
  type FrameEncodeOptions, type OpenedPiece, type Piece, type PiecePlan, type RescueKeys, type SealedPiece, openSealedPiece, readBundle, readSealedBundle,
  sealPieceAsync, writeBundle,
} from '@ddferry/protocol';

import { syncFolder, writeFileDurably } from '../durable-file.js';
import { ReaderError } from '../errors.js';
import type { SeqCounter } from './seq-counter.js';

const NAME = /^piece-(\d{6,})\.tar$/;

export function spoolFileName(seq: number): string {
  return `piece-${String(seq).padStart(6, '0')}.tar`;
}

export interface SpoolOptions {
  /** The folder (`JOBDIR/spool`). */
  readonly dir: string;
  /** Bytes the spool should hold at most; the run loop reads no further while it is full. */
  readonly capacity: number;
  /** Pieces read back are checked against it. */
  readonly plan: PiecePlan;
  /** The rescue's keys: pieces are sealed before they are spooled, and opened when read back. */
  readonly keys: RescueKeys;
  /**
   * Bytes of pieces kept in memory after `put` until `take` hands them to the shipper
   * (default 32 MiB), so a piece on its way is not read back and checked again; beyond
   * that, and after a restart, `take` reads the file.
   */
  readonly memoryBytes?: number;
  /** How frames are encoded when pieces are sealed. Default zero runs and zstd level 3. */
  readonly compression?: FrameEncodeOptions | undefined;
}

/** What a store has carried in this run: pieces' raw bytes, and the bytes their sealed files took. */
export interface CarriedFigures {
  readonly rescuedBytes: number;
  readonly carriedBytes: number;
}

/** The sequence numbers of the pieces in a spool folder (for the job's counter), without opening it. */
export async function spoolSeqs(dir: string): Promise<number[]> {
  try {
    return (await readdir(dir)).map((n) => NAME.exec(n)).filter((m) => m !== null).map((m) => Number(m[1]));
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * The local spool (`JOBDIR/spool`): pieces waiting for a receipt, one file each (a
 * one-piece bundle of the piece sealed with the rescue's keys: the same bytes go on the
 * wire), written through a temporary name, fsynced and renamed, so a piece in the spool
 * is durable and whole (R1). A piece is deleted only when a receipt names its header
 * hash (R2, R5); the job's counter is saved first, so numbers are never reused.
 */
export class Spool {
  readonly dir: string;
  readonly capacity: number;
  readonly #seq: SeqCounter;
  readonly #plan: PiecePlan;
  readonly #keys: RescueKeys;
  readonly #sizes = new Map<number, number>();
  /** Header hashes of the pieces held, once known (put in this run, or read back). */
  readonly #hashes = new Map<number, string>();
  /** Sealed pieces put in this run and not taken yet, oldest first. */
  readonly #fresh = new Map<number, SealedPiece>();
  #freshBytes = 0;
  readonly #memoryBytes: number;
  readonly #compression: FrameEncodeOptions;
  #bytes = 0;
  #rescuedBytes = 0;
  #carriedBytes = 0;
  readonly #addedWaiters: Array<() => void> = [];
  readonly #removedListeners: Array<() => void> = [];

  private constructor(o: SpoolOptions, seq: SeqCounter) {
    this.dir = o.dir;
    this.capacity = o.capacity;
    this.#seq = seq;
    this.#plan = o.plan;
    this.#keys = o.keys;
    this.#memoryBytes = o.memoryBytes ?? 32 << 20;
    this.#compression = o.compression ?? {};
  }

  /** Open the spool folder, counting the pieces left by an earlier run. */
  static async open(o: SpoolOptions, seq: SeqCounter): Promise<Spool> {
    const s = new Spool(o, seq);
    await mkdir(o.dir, { recursive: true });
    for (const name of await readdir(o.dir)) {
      const m = NAME.exec(name);
      if (!m) {
        if (name.endsWith('.tmp')) await rm(join(o.dir, name), { force: true }); // a piece cut by a crash: never counted
        continue;
      }
      const n = Number(m[1]);
      const size = (await stat(join(o.dir, name))).size;
      s.#sizes.set(n, size);
      s.#bytes += size;
      seq.raise(n);
    }
    return s;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Number of pieces held. */
  get count(): number {
    return this.#sizes.size;
  }

  /** Pieces sealed by `put` in this run: their raw bytes, and the bytes of their files (what goes on the wire). */
  get carried(): CarriedFigures {
    return { rescuedBytes: this.#rescuedBytes, carriedBytes: this.#carriedBytes };
  }

  /** True if the piece is held. */
  has(seq: number): boolean {
    return this.#sizes.has(seq);
  }

  /** Sequence numbers held, ascending. */
  seqs(): number[] {
    return [...this.#sizes.keys()].sort((a, b) => a - b);
  }

  /**
   * Seal a piece (its frames compressed in the thread pool) and write it durably:
   * `.piece-N.tar.tmp`, fsync, rename, fsync of the folder.
   * @returns the sealed piece (its `headerHash` names it in receipts).
   * @throws ReaderError `ERR_SPOOL` (nothing of the piece is left).
   */
  async put(piece: Piece | SealedPiece): Promise<SealedPiece> {
    const sealed = 'header' in piece ? piece : await sealPieceAsync(piece, this.#keys, this.#compression);
    const name = spoolFileName(sealed.seq);
    let size: number;
    try {
      size = await writeFileDurably(this.dir, name, (out) => writeBundle(sealed, out, { end: false }));
    } catch (err) {
      throw new ReaderError('ERR_SPOOL', this.dir, `${this.dir}: can't write piece ${sealed.seq} to the spool: ${(err as Error).message}.`, {
        cause: err, hint: 'Free space on the disk holding the job folder, then run the same command again.',
      });
    }
    this.#sizes.set(sealed.seq, size);
    this.#hashes.set(sealed.seq, sealed.headerHash);
    if (!('header' in piece)) {
      this.#rescuedBytes += piece.data.length;
      this.#carriedBytes += size;
    }
    this.#bytes += size;
    if (this.#freshBytes + sealed.dataSize <= this.#memoryBytes) {
      this.#fresh.set(sealed.seq, sealed);
      this.#freshBytes += sealed.dataSize;
    }
    for (const w of this.#addedWaiters.splice(0)) w();
    return sealed;
  }

  /** Wait until a piece is added. */
  added(): Promise<void> {
    return new Promise((resolve) => this.#addedWaiters.push(resolve));
  }

  /** Call `listener` after pieces are removed (room for reading). */
  onRemoved(listener: () => void): void {
    this.#removedListeners.push(listener);
  }

  /**
   * A sealed piece to send: the one `put` kept in memory (made here, never read from
   * disk), which it then forgets, or else the file read back and checked (`readSealed`).
   */
  async take(seq: number): Promise<SealedPiece> {
    const piece = this.#fresh.get(seq);
    if (piece === undefined) return this.readSealed(seq);
    this.#forget(seq);
    return piece;
  }

  #forget(seq: number): void {
    const piece = this.#fresh.get(seq);
    if (piece === undefined) return;
    this.#fresh.delete(seq);
    this.#freshBytes -= piece.dataSize;
  }

  /** The header hash of a held piece (its identity in receipts), read from its file when not known yet. */
  async headerHash(seq: number): Promise<string | undefined> {
    if (!this.#sizes.has(seq)) return undefined;
    return this.#hashes.get(seq) ?? (await this.readSealed(seq)).headerHash;
  }

  /**
   * Read a sealed piece back, checked: opened with the keys and against the plan (a
   * damaged file is refused, not sent). @throws ProtocolError, ReaderError `ERR_SPOOL`.
   */
  async readSealed(seq: number): Promise<SealedPiece> {
    const file = join(this.dir, spoolFileName(seq));
    for await (const piece of readSealedBundle(createReadStream(file), { file })) {
      openSealedPiece(piece, { keys: this.#keys, plan: this.#plan, file });
      this.#hashes.set(seq, piece.headerHash);
      return piece;
    }
    throw new ReaderError('ERR_SPOOL', file, `${file}: the spooled piece is empty.`, { hint: 'Delete the file; its ranges are read again.' });
  }

  /** Read a piece back, opened and checked against the plan. @throws ProtocolError, ReaderError `ERR_SPOOL`. */
  async read(seq: number): Promise<OpenedPiece> {
    const file = join(this.dir, spoolFileName(seq));
    for await (const piece of readBundle(createReadStream(file), { file, plan: this.#plan, keys: this.#keys })) return piece;
    throw new ReaderError('ERR_SPOOL', file, `${file}: the spooled piece is empty.`, { hint: 'Delete the file; its ranges are read again.' });
  }

  /**
   * Give a held piece a new sequence number (the assembler holds another piece under its
   * number: A4): the same content sealed again under `newSeq`, durable, then the old file
   * goes. @returns the new sealed piece.
   */
  async renumber(seq: number, newSeq: number): Promise<SealedPiece> {
    const piece = await this.read(seq);
    const sealed = await this.put({ rescueId: piece.rescueId, seq: newSeq, chunk: piece.chunk, extents: piece.extents, delta: piece.delta, data: piece.data });
    await this.remove([seq]);
    return sealed;
  }

  /** Delete pieces the image holds: the job's counter is saved durably first. */
  async remove(seqs: readonly number[]): Promise<void> {
    const held = seqs.filter((s) => this.#sizes.has(s));
    if (held.length === 0) return;
    await this.#seq.save();
    for (const seq of held) {
      this.#forget(seq);
      this.#hashes.delete(seq);
      await unlink(join(this.dir, spoolFileName(seq))).catch((err: unknown) => {
        if ((err as { code?: string }).code !== 'ENOENT') throw err;
      });
      this.#bytes -= this.#sizes.get(seq) ?? 0;
      this.#sizes.delete(seq);
    }
    await syncFolder(this.dir);
    for (const l of this.#removedListeners) l();
  }
}
