import type { BlockStatus, Chunk } from '@ddferry/mapfile';
import { type Piece, makeExtent } from '@ddferry/protocol';

import type { RescueSink } from '../engine/sink.js';
import { DeltaList } from './delta-list.js';
import type { PieceStore } from '../stick/stick-spool.js';

export interface PieceSinkOptions {
  readonly rescueId: string;
  readonly chunks: readonly Chunk[];
  /** The LAN `Spool` or the `StickSpool`; its `writeBehind`, if any, is the default of ours. */
  readonly spool: PieceStore & { readonly writeBehind?: number };
  /** Seal a piece once it holds this many bytes of data (default 8 MiB). */
  readonly sealBytes?: number;
  /** Seal a piece this many milliseconds after it opened (default 2000). */
  readonly sealMillis?: number;
  /** Seal a piece once its delta has this many ranges (default 20000). */
  readonly sealRanges?: number;
  /** Told after each sealed piece is durable in the spool. */
  readonly onSealed?: (piece: Piece) => void;
  /**
   * Sealed pieces that may be on their way into the spool while the engine reads on
   * (default: the spool's `writeBehind`, else 0: each seal waits for its piece to be
   * durable). `sync` and `finish` always wait for all of them, so a mapfile save still
   * claims only durable data (R1).
   */
  readonly writeBehind?: number;
}

/** One read's bytes inside an open piece: `[at, at+size)` of its buffer holds source `[pos, pos+size)`. */
interface Part {
  readonly pos: number;
  readonly at: number;
  readonly size: number;
}

const EMPTY = Buffer.alloc(0);

interface OpenPiece {
  readonly chunk: number;
  /** Every read's bytes, copied once, in arrival order. */
  buf: Buffer;
  readonly parts: Part[];
  bytes: number;
  /** True while every part starts at or after the end of the one before (the copying pass): the buffer is then the data in source order. */
  inOrder: boolean;
  readonly delta: DeltaList;
}

/** The first buffer of an open piece, at most: a default piece and a read; it grows by doubling. */
const FIRST_BUFFER_BYTES = (8 << 20) + (1 << 20);
/** The first buffer of a piece opened while another is open. */
const SMALL_BUFFER_BYTES = 64 << 10;

/**
 * The engine's sink in the pipeline: rescued data and status changes become pieces,
 * one open piece per chunk touched, sealed by size, age or delta length, and at every
 * `sync` (before each mapfile save), so `common.map` says `+` only for data durable in
 * the spool (R1): puts may run behind the engine (`writeBehind`), but `sync` waits for
 * all of them and throws if one failed. Each read is copied once, into its piece's buffer. Sealing happens before a read's data is taken, never between a read's
 * data and its status, so a piece's `+` ranges are exactly its extents.
 */
export class PieceSink implements RescueSink {
  readonly #o: PieceSinkOptions;
  readonly #chunkSize: number;
  readonly #open = new Map<number, OpenPiece>();
  #openedAt = 0;
  #bytes = 0;
  #ranges = 0;
  #parts = 0;
  /** Puts still running, in order (each resolves, never rejects). */
  readonly #storing: Array<Promise<void>> = [];
  #stored: Promise<void> = Promise.resolve();
  /**
   * The first error of the spool. After it nothing more is stored, `sync` throws (so no
   * mapfile save claims lost data) and `finish` returns its message; the caller must turn
   * the `lost` ranges back to non-tried before it saves the map.
   */
  failure: Error | null = null;
  /** The `+` ranges of pieces the spool failed to store. */
  readonly lost: Array<{ pos: number; size: number }> = [];

  constructor(options: PieceSinkOptions) {
    this.#o = options;
    this.#chunkSize = options.chunks[0]?.size ?? 1;
  }

  #chunkOf(pos: number): number {
    return Math.min(Math.floor(pos / this.#chunkSize), this.#o.chunks.length - 1);
  }

  #piece(chunk: number): OpenPiece {
    let p = this.#open.get(chunk);
    if (!p) {
      if (this.#open.size === 0) this.#openedAt = Date.now();
      p = { chunk, buf: EMPTY, parts: [], bytes: 0, inOrder: true, delta: new DeltaList() };
      this.#open.set(chunk, p);
    }
    return p;
  }

  /** Call `fn` for each part of `[pos, pos+size)` inside one chunk. */
  #split(pos: number, size: number, fn: (chunk: number, pos: number, size: number, offset: number) => void): void {
    let offset = 0;
    while (offset < size) {
      const chunk = this.#chunkOf(pos + offset);
      const c = this.#o.chunks[chunk]!;
      const n = Math.min(size - offset, c.pos + c.size - (pos + offset));
      fn(chunk, pos + offset, n, offset);
      offset += n;
    }
  }

  /** What the open pieces hold (for the stick's free-space check). */
  pending(): { pieces: number; bytes: number; ranges: number } {
    return { pieces: this.#open.size, bytes: this.#bytes, ranges: this.#ranges + this.#parts };
  }

  async write(pos: number, data: Uint8Array): Promise<void> {
    const o = this.#o;
    if (this.failure) throw this.failure;
    if (this.#open.size > 0 && (this.#bytes >= (o.sealBytes ?? 8 << 20) || Date.now() - this.#openedAt >= (o.sealMillis ?? 2000) || this.#ranges >= (o.sealRanges ?? 20000))) {
      await this.#sealAll();
    }
    this.#split(pos, data.length, (chunk, p, n, offset) => {
      const piece = this.#piece(chunk);
      if (piece.bytes + n > piece.buf.length) this.#grow(piece, piece.bytes + n);
      piece.buf.set(data.subarray(offset, offset + n), piece.bytes);
      const last = piece.parts[piece.parts.length - 1];
      if (last !== undefined && last.pos + last.size > p) piece.inOrder = false;
      piece.parts.push({ pos: p, at: piece.bytes, size: n });
      piece.bytes += n;
      this.#bytes += n;
      ++this.#parts;
    });
  }

  /**
   * Make room for `need` bytes. The first piece opened in a seal window (the copying
   * pass fills one at a time) gets a buffer for a whole piece at once; other pieces
   * (trimming and scraping touch many chunks with little data) start small and double.
   */
  #grow(piece: OpenPiece, need: number): void {
    const whole = Math.min(FIRST_BUFFER_BYTES, (this.#o.sealBytes ?? 8 << 20) + (1 << 20));
    const first = this.#open.size === 1 ? whole : SMALL_BUFFER_BYTES;
    const size = Math.max(need, piece.buf.length === 0 ? first : 2 * piece.buf.length);
    const grown = Buffer.allocUnsafe(size);
    piece.buf.copy(grown, 0, 0, piece.bytes);
    piece.buf = grown;
  }

  statusChanged(pos: number, size: number, status: BlockStatus): void {
    this.#split(pos, size, (chunk, p, n) => {
      const d = this.#piece(chunk).delta;
      const before = d.length;
      d.set(p, n, status);
      this.#ranges += d.length - before;
    });
  }

  async sync(): Promise<void> {
    await this.#sealAll();
    await this.#stored;
    if (this.failure) throw this.failure;
  }

  async finish(): Promise<string | null> {
    try {
      await this.sync();
    } catch (err) {
      return (err as Error).message;
    }
    return null;
  }

  close(): null {
    return null;
  }

  /**
   * Seal every open piece and hand it to the spool, one put after the other, in
   * sequence order. Returns once at most `writeBehind` of them are still being stored.
   */
  async #sealAll(): Promise<void> {
    const open = [...this.#open.values()].sort((a, b) => a.chunk - b.chunk);
    this.#open.clear();
    this.#bytes = 0;
    this.#ranges = 0;
    this.#parts = 0;
    for (const p of open) {
      const piece = this.#seal(p);
      const stored = this.#stored.then(() => this.#store(piece)).catch((err: unknown) => {
        this.failure ??= err as Error; // onSealed threw
      });
      this.#stored = stored;
      this.#storing.push(stored);
      void stored.finally(() => this.#storing.splice(this.#storing.indexOf(stored), 1));
    }
    const ahead = this.#o.writeBehind ?? this.#o.spool.writeBehind ?? 0;
    while (this.#storing.length > ahead) await this.#storing[0];
    if (this.failure) throw this.failure;
  }

  /** Put one piece; a failure of the spool is recorded (`failure`, `lost`), not thrown. */
  async #store(piece: Piece): Promise<void> {
    try {
      await this.#o.spool.put(piece);
    } catch (err) {
      this.failure ??= err as Error;
      for (const d of piece.delta) if (d.status === '+') this.lost.push({ pos: d.pos, size: d.size });
      return;
    }
    this.#o.onSealed?.(piece);
  }

  #seal(p: OpenPiece): Piece {
    // the data in source order: the buffer itself when the reads came in order
    let data: Buffer;
    let parts: readonly Part[];
    if (p.inOrder) {
      // a piece much smaller than its buffer gets a buffer of its size (it may wait long in the spool)
      data = p.bytes * 2 < p.buf.length ? Buffer.from(p.buf.subarray(0, p.bytes)) : p.buf.subarray(0, p.bytes);
      parts = p.parts;
    } else {
      data = Buffer.allocUnsafe(p.bytes);
      let at = 0;
      parts = [...p.parts].sort((a, b) => a.pos - b.pos).map((part) => {
        p.buf.copy(data, at, part.at, part.at + part.size);
        const moved = { pos: part.pos, at, size: part.size };
        at += part.size;
        return moved;
      });
    }
    // join contiguous parts into extents
    const runs: Array<{ pos: number; at: number; size: number }> = [];
    for (const part of parts) {
      const last = runs[runs.length - 1];
      if (last && last.pos + last.size === part.pos) last.size += part.size;
      else runs.push({ pos: part.pos, at: part.at, size: part.size });
    }
    const extents = runs.map((r) => makeExtent(r.pos, data.subarray(r.at, r.at + r.size)));
    return {
      rescueId: this.#o.rescueId,
      seq: this.#o.spool.nextSeq(),
      chunk: p.chunk,
      extents,
      delta: p.delta.ranges.map((r) => ({ pos: r.pos, size: r.size, status: r.status })),
      data,
    };
  }
}
