import { createReadStream } from 'node:fs';
import { mkdir, open as openFile, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import {
  type FrameEncodeOptions, type OpenedPiece, type Piece, type PiecePlan, type RescueKeys, type SealedPiece, openSealedPiece, readBundle, readSealedBundle,
  readSafeFileInto, RecycledBuffers, sealPieceAsync, writeBundle,
} from '@ddferry/protocol';

import { syncFolder, writeFileDurably, writeFileUnsynced } from '../durable-file.js';
import { ReaderError } from '../errors.js';
import type { SeqCounter } from './seq-counter.js';

const NAME = /^piece-(\d{6,})\.tar$/;
/** A piece written without fsync (`put` with `sync: false`): whole after a crash of the process, maybe not after a power cut. */
const UNSYNCED_NAME = /^piece-(\d{6,})\.tar\.unsynced$/;

export function spoolFileName(seq: number): string {
  return `piece-${String(seq).padStart(6, '0')}.tar`;
}

function unsyncedFileName(seq: number): string {
  return `${spoolFileName(seq)}.unsynced`;
}

/** fsync an unsynced piece's file and rename it to its durable name (the folder's fsync is the caller's). */
async function makeDurable(file: string, durableName: string): Promise<void> {
  const fh = await openFile(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(file, durableName);
}

/** A piece written without fsync, waiting for its receipt or its fsync. */
interface Unsynced {
  /** When it was written (ms). */
  readonly since: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  readonly durable: Promise<void>;
}

/** Ranges an earlier run's unsynced piece held, found whole and made durable when the spool opened. */
export interface AdoptedPiece {
  readonly seq: number;
  /** The source ranges its data holds (`+`). */
  readonly extents: ReadonlyArray<{ readonly pos: number; readonly size: number }>;
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
   * (default 8 MiB: one piece), so a piece on its way is not read back and checked again;
   * beyond that, and after a restart, `take` reads the file. With 16 MiB the reader's peak
   * RSS in a LAN of 1 GiB was 7 MiB higher (155 against 148 MiB, medians of 8 pairs) and
   * the LAN no faster (0.97x).
   */
  readonly memoryBytes?: number;
  /** How frames are encoded when pieces are sealed. Default zero runs and zstd level 3. */
  readonly compression?: FrameEncodeOptions | undefined;
}

/** A piece `put` has spooled: its number and its identity in receipts. */
export interface SpooledPiece {
  readonly seq: number;
  readonly headerHash: string;
}

/**
 * Bytes of ciphertext blocks of pieces sent or dropped that the spool keeps for the next
 * pieces it seals or reads back: six blocks of an 8 MiB piece, as many as a LAN run has
 * in use at once (one sealing, one or two fresh, one read back, one sending, a spare); four
 * (with the builder keeping two buffers instead of four) made the peak RSS higher, not lower. With
 * room for two, a 4 GiB LAN run allocated 24 blocks of 8 MiB and dropped 20 (old garbage,
 * freed at the next full collection); with six, the blocks allocated are those used at once.
 */
const RECYCLED_BLOCK_BYTES = 6 * ((8 << 20) + (64 << 10));
/** Bytes a block has beyond a piece's ciphertext: room for its file's tar headers, so one block serves a seal or a read-back. */
const BLOCK_SLACK = 64 << 10;

/** What a store has carried in this run: pieces' raw bytes, and the bytes their sealed files took. */
export interface CarriedFigures {
  readonly rescuedBytes: number;
  readonly carriedBytes: number;
}

/** The sequence numbers of the pieces in a spool folder (for the job's counter), without opening it. */
export async function spoolSeqs(dir: string): Promise<number[]> {
  try {
    return (await readdir(dir)).map((n) => NAME.exec(n) ?? UNSYNCED_NAME.exec(n)).filter((m) => m !== null).map((m) => Number(m[1]));
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
 *
 * While the link keeps up, a piece may be put without fsync (`sync: false`, file
 * `piece-N.tar.unsynced`): the assembler's receipt usually comes first and the file is
 * deleted before the kernel writes it, so the disk of PC_A writes nothing. Such a piece is
 * not durable: `durable(seq)` settles once a receipt removes it or `sync` makes it
 * durable (fsync, rename to `piece-N.tar`), and only then may the map say `+` (R1). A
 * process killed meanwhile leaves whole files in the page cache: the next `open` checks
 * each one (its seal and every frame), makes the sound ones durable and reports their
 * ranges (`adopted`); a file cut by a power cut fails its seal and is deleted (read again).
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
  readonly #unsynced = new Map<number, Unsynced>();
  /** Ciphertext blocks of pieces nothing uses any more (`recycle`), for the next seals. */
  readonly #blocks = new RecycledBuffers(RECYCLED_BLOCK_BYTES);
  /**
   * Pieces sealed and written by this run, not refused since: read back, their file's
   * structure and header hash are checked, not their seal again (`take`).
   */
  readonly #ownWritten = new Set<number>();
  /** Pieces sealed or read back here into such blocks, until recycled (each at most once). */
  readonly #recyclable = new WeakSet<SealedPiece>();
  /** The block a piece read back lies in (a piece sealed here starts its own). */
  readonly #blockOf = new WeakMap<SealedPiece, Uint8Array>();
  #lock: Promise<void> = Promise.resolve();
  /** Pieces of an earlier run found unsynced and whole by `open`, now durable. */
  readonly adopted: AdoptedPiece[] = [];
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
    this.#memoryBytes = o.memoryBytes ?? 8 << 20;
    this.#compression = o.compression ?? {};
  }

  /** Open the spool folder, counting the pieces left by an earlier run. */
  static async open(o: SpoolOptions, seq: SeqCounter): Promise<Spool> {
    const s = new Spool(o, seq);
    await mkdir(o.dir, { recursive: true });
    const unsynced: number[] = [];
    for (const name of await readdir(o.dir)) {
      const u = UNSYNCED_NAME.exec(name);
      if (u) {
        unsynced.push(Number(u[1]));
        continue;
      }
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
    for (const n of unsynced.sort((a, b) => a - b)) {
      seq.raise(n);
      await s.#adopt(n);
    }
    return s;
  }

  /**
   * An unsynced piece of an earlier run: checked whole (seal, plan, every frame and
   * checksum), then fsynced and renamed; a piece that fails is deleted (its ranges are
   * read again) unless `piece-N.tar` holds it already.
   */
  async #adopt(seq: number): Promise<void> {
    const file = join(this.dir, unsyncedFileName(seq));
    try {
      if (this.#sizes.has(seq)) throw new Error('already durable');
      let piece: OpenedPiece | undefined;
      for await (const p of readBundle(createReadStream(file), { file, plan: this.#plan, keys: this.#keys })) {
        if (piece !== undefined || p.seq !== seq) throw new Error('not one piece of its number');
        piece = p;
      }
      if (piece === undefined) throw new Error('empty');
      await makeDurable(file, join(this.dir, spoolFileName(seq)));
      await syncFolder(this.dir);
      const size = (await stat(join(this.dir, spoolFileName(seq)))).size;
      this.#sizes.set(seq, size);
      this.#bytes += size;
      this.adopted.push({ seq, extents: piece.extents.map((e) => ({ pos: e.pos, size: e.size })) });
    } catch {
      await rm(file, { force: true });
    }
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
   * `.piece-N.tar.tmp`, fsync, rename, fsync of the folder. With `sync: false`,
   * `piece-N.tar.unsynced` without fsync: see the class comment and `durable`.
   * A piece sealed here is sealed into a recycled block (`recycle`): the spool keeps it
   * for `take` or recycles it once written, so the caller gets its identity only.
   * @returns the piece's number and header hash (which names it in receipts).
   * @throws ReaderError `ERR_SPOOL` (nothing of the piece is left).
   */
  async put(piece: Piece | SealedPiece, options: { readonly sync?: boolean } = {}): Promise<SpooledPiece> {
    const ours = !('header' in piece);
    let block: Uint8Array | undefined;
    const sealed = !ours ? piece : await sealPieceAsync(piece, this.#keys, { ...this.#compression, alloc: (size) => (block = this.#block(size)) });
    if (ours) this.#recyclable.add(sealed);
    if (ours && block !== undefined) this.#blockOf.set(sealed, block);
    const sync = options.sync ?? true;
    let size: number;
    try {
      const fill = (out: NodeJS.WritableStream): Promise<number> => writeBundle(sealed, out, { end: false });
      size = sync ? await writeFileDurably(this.dir, spoolFileName(sealed.seq), fill) : await writeFileUnsynced(join(this.dir, unsyncedFileName(sealed.seq)), fill);
    } catch (err) {
      throw new ReaderError('ERR_SPOOL', this.dir, `${this.dir}: can't write piece ${sealed.seq} to the spool: ${(err as Error).message}.`, {
        cause: err, hint: 'Free space on the disk holding the job folder, then run the same command again.',
      });
    }
    this.#sizes.set(sealed.seq, size);
    this.#hashes.set(sealed.seq, sealed.headerHash);
    if (ours) this.#ownWritten.add(sealed.seq);
    if (!('header' in piece)) {
      this.#rescuedBytes += piece.data.length;
      this.#carriedBytes += size;
    }
    this.#bytes += size;
    if (!sync) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const durable = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      durable.catch(() => undefined);
      this.#unsynced.set(sealed.seq, { since: Date.now(), resolve, reject, durable });
    }
    if (this.#freshBytes + sealed.dataSize <= this.#memoryBytes) {
      this.#fresh.set(sealed.seq, sealed);
      this.#freshBytes += sealed.dataSize;
    } else if (ours) {
      this.recycle(sealed); // written, and nobody else has it
    }
    for (const w of this.#addedWaiters.splice(0)) w();
    return { seq: sealed.seq, headerHash: sealed.headerHash };
  }

  /**
   * True if `sealed` (from `take`) lies in a block of the spool's own, sealed by `put` or
   * read back into it: whoever took it may write into the block's room before each frame
   * (`encodePieceData` with `inPlace`) until it gives it back (`recycle`).
   */
  owns(sealed: SealedPiece): boolean {
    return this.#recyclable.has(sealed);
  }

  /**
   * A piece from `take` whose bytes nobody reads any more (the link has sent its
   * messages): its block serves the next piece sealed. A piece not sealed by `put`
   * nor read back by `take` into a block, or recycled already, is ignored.
   */
  recycle(sealed: SealedPiece): void {
    if (!this.#recyclable.delete(sealed)) return;
    const block = this.#blockOf.get(sealed) ?? sealed.frames[0]?.ciphertext;
    if (block !== undefined) this.#blocks.keep(block);
  }

  /** `size` bytes at the start of a recycled block, or of a new one (`BLOCK_SLACK` more, so it can serve either use later). */
  #block(size: number): Uint8Array {
    return this.#blocks.reuse(size) ?? Buffer.allocUnsafeSlow(size + BLOCK_SLACK).subarray(0, size);
  }

  /** Number of unsynced pieces. */
  get unsyncedCount(): number {
    return this.#unsynced.size;
  }

  /**
   * Settles once piece `seq` is durable: at once for a piece put with fsync (or not
   * held); for an unsynced one, when a receipt removes it (the image holds it) or `sync`
   * fsyncs it. Rejects if that fsync fails (`ERR_SPOOL`).
   */
  durable(seq: number): Promise<void> {
    return this.#unsynced.get(seq)?.durable ?? Promise.resolve();
  }

  /**
   * Make unsynced pieces durable: those written at least `olderThanMs` ago (all by
   * default), oldest first: fsync, rename to `piece-N.tar`, one fsync of the folder.
   * @throws ReaderError `ERR_SPOOL` (the pieces concerned reject their `durable` too).
   */
  sync(olderThanMs = 0): Promise<void> {
    return this.#exclusive(() => this.#sync(olderThanMs));
  }

  /** Run `fn` after the `sync` or `remove` in progress (they rename and unlink the same files). */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.then(() => undefined, () => undefined);
    return run;
  }

  async #sync(olderThanMs: number): Promise<void> {
    const now = Date.now();
    const due = [...this.#unsynced.entries()].filter(([, u]) => now - u.since >= olderThanMs).sort((a, b) => a[0] - b[0]);
    if (due.length === 0) return;
    const done: Array<[number, Unsynced]> = [];
    try {
      for (const [seq, u] of due) {
        await makeDurable(join(this.dir, unsyncedFileName(seq)), join(this.dir, spoolFileName(seq)));
        this.#unsynced.delete(seq);
        done.push([seq, u]);
      }
      if (done.length > 0) await syncFolder(this.dir);
    } catch (err) {
      const e = new ReaderError('ERR_SPOOL', this.dir, `${this.dir}: can't make spooled pieces durable: ${(err as Error).message}.`, {
        cause: err, hint: 'Check the disk holding the job folder (space, errors in the kernel log), then run the same command again.',
      });
      for (const [seq, u] of due) {
        this.#unsynced.delete(seq);
        u.reject(e);
      }
      throw e;
    }
    for (const [, u] of done) u.resolve();
  }

  #path(seq: number): string {
    return join(this.dir, this.#unsynced.has(seq) ? unsyncedFileName(seq) : spoolFileName(seq));
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
    if (piece === undefined) return this.#ownWritten.has(seq) ? this.#readOwn(seq) : this.readSealed(seq);
    this.#forget(seq);
    return piece;
  }

  /**
   * A piece this run sealed and wrote, read back for sending: its file's entries and
   * header fields are checked and its header hash must be the one `put` recorded; its
   * seal is not opened again (the assembler opens it: a piece it refuses is `distrust`ed
   * and the next `take` checks it whole). A file that differs is checked whole now.
   */
  async #readOwn(seq: number): Promise<SealedPiece> {
    try {
      const own = await this.#atCurrentPath(seq, async (file) => {
        // the file is read into a block (its entries are views of it), given back with the piece (`recycle`)
        const block = this.#block(this.#sizes.get(seq) ?? 0);
        for await (const sealed of readSealedBundle(readSafeFileInto(file, block, { what: 'the spooled piece' }), { file, shareSource: true })) {
          if (sealed.seq !== seq || sealed.headerHash !== this.#hashes.get(seq)) return undefined;
          this.#blockOf.set(sealed, block);
          this.#recyclable.add(sealed);
          return sealed;
        }
        return undefined;
      });
      if (own !== undefined) return own;
    } catch {
      // damaged: the whole check below says how
    }
    this.#ownWritten.delete(seq);
    return this.readSealed(seq);
  }

  /**
   * `read` of piece `seq`'s file; again under its durable name if it was an unsynced
   * piece made durable meanwhile (the first name is then gone: ENOENT).
   */
  async #atCurrentPath<T>(seq: number, read: (file: string) => Promise<T>): Promise<T> {
    const file = this.#path(seq);
    try {
      return await read(file);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT' && this.#path(seq) !== file) return this.#atCurrentPath(seq, read);
      throw err;
    }
  }

  /** The assembler refused piece `seq`: from now on it is checked whole when read back (`take`). */
  distrust(seq: number): void {
    this.#ownWritten.delete(seq);
  }

  #forget(seq: number): void {
    const piece = this.#fresh.get(seq);
    if (piece === undefined) return;
    this.#fresh.delete(seq);
    this.#freshBytes -= piece.dataSize;
  }

  /** Let go of a piece kept in memory that nobody has taken (its receipt came first). */
  #drop(seq: number): void {
    const piece = this.#fresh.get(seq);
    if (piece === undefined) return;
    this.#forget(seq);
    this.recycle(piece);
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
    return (await this.readBoth(seq)).sealed;
  }

  /**
   * Read a piece back in both forms: sealed as it was put (its header hash is the one
   * the image may hold already: carried elsewhere, it must stay that piece, never be
   * sealed again) and opened, checked. @throws ProtocolError, ReaderError `ERR_SPOOL`.
   */
  async readBoth(seq: number): Promise<{ sealed: SealedPiece; piece: OpenedPiece }> {
    return this.#atCurrentPath(seq, async (file) => {
      for await (const sealed of readSealedBundle(createReadStream(file), { file })) {
        const piece = openSealedPiece(sealed, { keys: this.#keys, plan: this.#plan, file });
        this.#hashes.set(seq, sealed.headerHash);
        return { sealed, piece };
      }
      throw new ReaderError('ERR_SPOOL', file, `${file}: the spooled piece is empty.`, { hint: 'Delete the file; its ranges are read again.' });
    });
  }

  /** Read a piece back, opened and checked against the plan. @throws ProtocolError, ReaderError `ERR_SPOOL`. */
  async read(seq: number): Promise<OpenedPiece> {
    const file = this.#path(seq);
    for await (const piece of readBundle(createReadStream(file), { file, plan: this.#plan, keys: this.#keys })) return piece;
    throw new ReaderError('ERR_SPOOL', file, `${file}: the spooled piece is empty.`, { hint: 'Delete the file; its ranges are read again.' });
  }

  /**
   * Give a held piece a new sequence number (the assembler holds another piece under its
   * number: A4): the same content sealed again under `newSeq`, durable, then the old file
   * goes. @returns the new piece's number and header hash.
   */
  async renumber(seq: number, newSeq: number): Promise<SpooledPiece> {
    const piece = await this.read(seq);
    const sealed = await this.put({ rescueId: piece.rescueId, seq: newSeq, chunk: piece.chunk, extents: piece.extents, delta: piece.delta, data: piece.data });
    await this.remove([seq]);
    return sealed;
  }

  /**
   * Delete pieces held durably elsewhere (the image, a stick, or under a new number): the
   * job's counter is saved durably first. An unsynced piece removed is durable: its
   * `durable` settles.
   */
  remove(seqs: readonly number[]): Promise<void> {
    return this.#exclusive(() => this.#remove(seqs));
  }

  async #remove(seqs: readonly number[]): Promise<void> {
    const held = seqs.filter((s) => this.#sizes.has(s));
    if (held.length === 0) return;
    await this.#seq.save();
    let synced = false;
    for (const seq of held) {
      this.#drop(seq);
      this.#ownWritten.delete(seq);
      this.#hashes.delete(seq);
      const file = this.#path(seq);
      const u = this.#unsynced.get(seq);
      this.#unsynced.delete(seq);
      if (u === undefined) synced = true;
      await unlink(file).catch((err: unknown) => {
        if ((err as { code?: string }).code !== 'ENOENT') throw err;
      });
      this.#bytes -= this.#sizes.get(seq) ?? 0;
      this.#sizes.delete(seq);
      u?.resolve();
    }
    // an unsynced file that comes back after a power cut is found, checked and adopted, or deleted: no folder fsync needed for it
    if (synced) await syncFolder(this.dir);
    for (const l of this.#removedListeners) l();
  }
}
