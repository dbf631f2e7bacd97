import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import { saveMapfile } from '@ddferry/mapfile/io';
import {
  type OpenedPiece, type Piece, type PiecePlan, type RescueKeys, type SealedPiece, openSealedPiece, readBundle, readSealedBundle, sealPiece, writeBundle,
} from '@ddferry/protocol';

import { ReaderError } from '../errors.js';

const NAME = /^piece-(\d{6,})\.tar$/;

export function spoolFileName(seq: number): string {
  return `piece-${String(seq).padStart(6, '0')}.tar`;
}

export interface SpoolOptions {
  /** The folder. */
  readonly dir: string;
  /** Where the last sequence number deleted from the spool is kept (durably, before deleting). */
  readonly seqFile: string;
  /** Bytes the spool may hold; `put` waits for receipts beyond that. */
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
}

/**
 * The spool: sealed pieces waiting for a receipt, one file each (a one-piece bundle of
 * the piece sealed with the rescue's keys),
 * written under a temporary name, fsynced and renamed, so a piece in the spool is
 * durable and whole (R1). A piece is deleted only after its receipt (R2), and the
 * highest sequence number deleted is saved first, so numbers are never reused.
 */
export class Spool {
  readonly dir: string;
  readonly capacity: number;
  readonly #seqFile: string;
  readonly #plan: PiecePlan;
  readonly #keys: RescueKeys;
  readonly #sizes = new Map<number, number>();
  /** Header hashes of the pieces held, once known (put in this run, or read back). */
  readonly #hashes = new Map<number, string>();
  /** Sealed pieces put in this run and not taken yet, oldest first. */
  readonly #fresh = new Map<number, SealedPiece>();
  #freshBytes = 0;
  readonly #memoryBytes: number;
  /**
   * For `PieceSink`: sealed pieces that may be being put while the engine reads on
   * (their fsyncs overlap the reads). Its `sync` still waits for all of them before any
   * mapfile save.
   */
  readonly writeBehind = 2;
  #bytes = 0;
  #lastSeq = 0;
  #waiters: Array<() => void> = [];
  #addedWaiters: Array<() => void> = [];

  private constructor(o: SpoolOptions) {
    this.dir = o.dir;
    this.capacity = o.capacity;
    this.#seqFile = o.seqFile;
    this.#plan = o.plan;
    this.#keys = o.keys;
    this.#memoryBytes = o.memoryBytes ?? 32 << 20;
  }

  /** Open the spool folder, counting the pieces left by an earlier run. */
  static async open(o: SpoolOptions): Promise<Spool> {
    const s = new Spool(o);
    await mkdir(o.dir, { recursive: true });
    for (const name of await readdir(o.dir)) {
      const m = NAME.exec(name);
      if (!m) {
        if (name.endsWith('.tmp')) await rm(join(o.dir, name), { force: true }); // a piece cut by a crash: never counted
        continue;
      }
      const seq = Number(m[1]);
      const size = (await stat(join(o.dir, name))).size;
      s.#sizes.set(seq, size);
      s.#bytes += size;
      s.#lastSeq = Math.max(s.#lastSeq, seq);
    }
    try {
      const saved = JSON.parse(await readFile(o.seqFile, 'utf8')) as { lastSeq?: unknown };
      if (typeof saved.lastSeq === 'number' && Number.isSafeInteger(saved.lastSeq)) s.#lastSeq = Math.max(s.#lastSeq, saved.lastSeq);
    } catch {
      // no pieces deleted yet
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

  /** True if the piece is held. */
  has(seq: number): boolean {
    return this.#sizes.has(seq);
  }

  /** Sequence numbers held, ascending. */
  seqs(): number[] {
    return [...this.#sizes.keys()].sort((a, b) => a - b);
  }

  /** The next sequence number to give a piece. */
  nextSeq(): number {
    return ++this.#lastSeq;
  }

  /** Raise the counter past numbers the assembler has seen (its Welcome), in case `seq.json` was lost. */
  notePeerSeqs(maxSeen: number): void {
    if (maxSeen > this.#lastSeq) this.#lastSeq = maxSeen;
  }

  /**
   * Seal a piece and write it durably. Waits while the spool is full (the engine pauses
   * reading), unless the spool is empty: one piece always fits.
   */
  async put(piece: Piece, estimate = piece.data.length + 4096): Promise<void> {
    while (this.#bytes > 0 && this.#bytes + estimate > this.capacity) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    const name = spoolFileName(piece.seq);
    const tmp = join(this.dir, `${name}.tmp`);
    const sealed = sealPiece(piece, this.#keys);
    try {
      const fh = await open(tmp, 'w');
      try {
        const out = createWriteStream('', { fd: fh.fd, autoClose: false });
        await writeBundle(sealed, out, { end: false });
        await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, join(this.dir, name));
      await syncFolder(this.dir);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new ReaderError('ERR_SPOOL', this.dir, `${this.dir}: can't write piece ${piece.seq} to the spool: ${(err as Error).message}. Free space on PC_A's spool disk, then run the same command again.`, { cause: err });
    }
    const size = (await stat(join(this.dir, name))).size;
    this.#sizes.set(piece.seq, size);
    this.#hashes.set(piece.seq, sealed.headerHash);
    this.#bytes += size;
    if (this.#freshBytes + sealed.dataSize <= this.#memoryBytes) {
      this.#fresh.set(piece.seq, sealed);
      this.#freshBytes += sealed.dataSize;
    }
    for (const w of this.#addedWaiters.splice(0)) w();
  }

  /** Wait until a piece is added. */
  added(): Promise<void> {
    return new Promise((resolve) => this.#addedWaiters.push(resolve));
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

  /** Read a sealed piece back, checked: opened with the keys and against the plan (a damaged file is refused, not sent). */
  async readSealed(seq: number): Promise<SealedPiece> {
    const file = join(this.dir, spoolFileName(seq));
    for await (const piece of readSealedBundle(createReadStream(file), { file })) {
      openSealedPiece(piece, { keys: this.#keys, plan: this.#plan, file });
      this.#hashes.set(seq, piece.headerHash);
      return piece;
    }
    throw new ReaderError('ERR_SPOOL', file, `${file}: the spooled piece is empty.`);
  }

  /** Read a piece back, opened and checked against the plan. */
  async read(seq: number): Promise<OpenedPiece> {
    const file = join(this.dir, spoolFileName(seq));
    for await (const piece of readBundle(createReadStream(file), { file, plan: this.#plan, keys: this.#keys })) return piece;
    throw new ReaderError('ERR_SPOOL', file, `${file}: the spooled piece is empty.`);
  }

  /** Delete acknowledged pieces: the counter is saved durably first. */
  async remove(seqs: readonly number[]): Promise<void> {
    const held = seqs.filter((s) => this.#sizes.has(s));
    if (held.length === 0) return;
    await saveMapfile(this.#seqFile, `${JSON.stringify({ lastSeq: this.#lastSeq })}\n`);
    for (const seq of held) {
      this.#forget(seq);
      this.#hashes.delete(seq);
      await unlink(join(this.dir, spoolFileName(seq))).catch(() => undefined);
      this.#bytes -= this.#sizes.get(seq) ?? 0;
      this.#sizes.delete(seq);
    }
    await syncFolder(this.dir);
    for (const w of this.#waiters.splice(0)) w();
  }
}

async function syncFolder(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
