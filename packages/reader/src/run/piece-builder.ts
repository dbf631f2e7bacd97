import type { BlockStatus, Chunk } from '@ddferry/mapfile';
import { type Piece, type PieceMapState, RecycledBuffers, type RescueId, makeExtent } from '@ddferry/protocol';

import { DeltaList } from './delta-list.js';

export interface PieceBuilderOptions {
  readonly rescueId: string;
  readonly chunks: readonly Chunk[];
  /** The next sequence number (the job's one counter). */
  readonly nextSeq: () => number;
  /** Seal once the open pieces hold this many bytes of data (default 8 MiB). */
  readonly sealBytes?: number;
  /** Seal this many milliseconds after the first open piece opened (default 2000). */
  readonly sealMillis?: number;
  /** Seal once the deltas hold this many ranges (default 20000). */
  readonly sealRanges?: number;
  /** Milliseconds now (tests drive it). */
  readonly clock?: () => number;
}

/** One read's bytes inside an open piece: `[at, at+size)` of its buffer holds source `[pos, pos+size)`. */
interface Part {
  readonly pos: number;
  readonly at: number;
  size: number;
}

const EMPTY = Buffer.alloc(0);
/** Bytes of data after which open pieces are sealed, unless `sealBytes` says otherwise. */
export const DEFAULT_SEAL_BYTES = 8 << 20;

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

/** A default piece and a read: the whole-piece buffer of the LAN's pieces. */
const FIRST_BUFFER_BYTES = DEFAULT_SEAL_BYTES + (1 << 20);
/** The first buffer of a piece opened while another is open. */
const SMALL_BUFFER_BYTES = 64 << 10;
/** Whole-piece buffers of a default piece kept for the next pieces once their pieces are stored (`release`); of bigger pieces, as many bytes (two of a stick's). */
const KEEP_BUFFERS = 4;

/**
 * Pieces from the reads the reading process streams: one open piece per chunk touched,
 * sealed by size, age or delta length, but only between reads (`readStarts`) or when
 * asked (`seal`), never between a read's data and its status, so a piece's `+` ranges
 * are exactly its extents. Each read's bytes are copied once, into its piece's buffer.
 */
export class PieceBuilder {
  readonly #o: PieceBuilderOptions;
  readonly #chunkSize: number;
  readonly #clock: () => number;
  readonly #open = new Map<number, OpenPiece>();
  #openedAt = 0;
  #bytes = 0;
  #ranges = 0;
  #parts = 0;
  /**
   * The first buffer of the first piece opened in a seal window: a whole piece (`sealBytes`)
   * and a read, whatever the piece's size. A stick's pieces (16, formerly 32 MiB) started
   * at 9 MiB and doubled before: 27 MiB of garbage and a 36 MiB buffer no piece reused,
   * for each piece of 32 MiB.
   */
  readonly #whole: number;
  /** Whole-piece buffers given back by `release`, for the next pieces (fresh memory costs more than the copy it holds). */
  readonly #free: RecycledBuffers;

  constructor(options: PieceBuilderOptions) {
    this.#o = options;
    this.#chunkSize = options.chunks[0]?.size ?? 1;
    this.#clock = options.clock ?? Date.now;
    this.#whole = (options.sealBytes ?? DEFAULT_SEAL_BYTES) + (1 << 20);
    this.#free = new RecycledBuffers(Math.max(KEEP_BUFFERS * Math.min(this.#whole, FIRST_BUFFER_BYTES), this.#whole), this.#whole);
  }

  #chunkOf(pos: number): number {
    return Math.min(Math.floor(pos / this.#chunkSize), this.#o.chunks.length - 1);
  }

  #piece(chunk: number): OpenPiece {
    let p = this.#open.get(chunk);
    if (!p) {
      if (this.#open.size === 0) this.#openedAt = this.#clock();
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
      if (n <= 0) throw new Error(`internal: [${pos + offset}, ${pos + size}) lies outside the plan's chunks`);
      fn(chunk, pos + offset, n, offset);
      offset += n;
    }
  }

  /** What the open pieces hold. */
  pending(): { pieces: number; bytes: number; ranges: number } {
    return { pieces: this.#open.size, bytes: this.#bytes, ranges: this.#ranges + this.#parts };
  }

  /** True if the open pieces should be sealed before the next read (size, age or ranges). */
  isDue(): boolean {
    const o = this.#o;
    return this.#open.size > 0 && (this.#bytes >= (o.sealBytes ?? DEFAULT_SEAL_BYTES) || this.#clock() - this.#openedAt >= (o.sealMillis ?? 2000) || this.#ranges >= (o.sealRanges ?? 20000));
  }

  /** Good data at `pos` (copied: `data` may be reused after the call). */
  write(pos: number, data: Uint8Array): void {
    this.#split(pos, data.length, (chunk, p, n, offset) => {
      const piece = this.#piece(chunk);
      if (piece.bytes + n > piece.buf.length) this.#grow(piece, piece.bytes + n);
      piece.buf.set(data.subarray(offset, offset + n), piece.bytes);
      const last = piece.parts[piece.parts.length - 1];
      if (last !== undefined && last.pos + last.size > p) piece.inOrder = false;
      if (last !== undefined && last.pos + last.size === p && last.at + last.size === piece.bytes) {
        last.size += n; // the rest of the same read, delivered in parts
      } else {
        piece.parts.push({ pos: p, at: piece.bytes, size: n });
        ++this.#parts;
      }
      piece.bytes += n;
      this.#bytes += n;
    });
  }

  /**
   * Make room for `need` bytes. The first piece opened in a seal window (the copying
   * pass fills one at a time) gets a buffer for a whole piece at once; other pieces
   * (trimming and scraping touch many chunks with little data) start small and double.
   */
  #grow(piece: OpenPiece, need: number): void {
    const whole = this.#whole;
    const first = this.#open.size === 1 ? whole : SMALL_BUFFER_BYTES;
    const size = Math.max(need, piece.buf.length === 0 ? first : 2 * piece.buf.length);
    const kept = size === whole ? this.#free.reuse(size) : undefined;
    const grown = kept !== undefined ? Buffer.from(kept.buffer, 0, size) : Buffer.allocUnsafe(size);
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

  /**
   * Seal every open piece, in chunk order, each with the next sequence number and, when
   * given, the common map's status line (`mapState`: PC_B's image map takes the status
   * line of the newest piece it merges).
   */
  seal(mapState?: PieceMapState): Piece[] {
    const open = [...this.#open.values()].sort((a, b) => a.chunk - b.chunk);
    this.#open.clear();
    this.#bytes = 0;
    this.#ranges = 0;
    this.#parts = 0;
    return open.map((p) => this.#seal(p, mapState));
  }

  /**
   * Give back the data of a piece this builder sealed, once nothing uses it any more
   * (stored: sealed into its own buffers, or written), so the next piece reuses its
   * memory. Data that is not one of the builder's whole-piece buffers is left alone.
   */
  release(piece: Piece): void {
    this.#keep(piece.data);
  }

  /** Keep `buf`'s memory for a next piece if it is a whole-piece buffer. */
  #keep(buf: Uint8Array): void {
    if (buf.buffer.byteLength === this.#whole) this.#free.keep(buf);
  }

  /**
   * A piece that carries only the status line (no data, no statuses), in the chunk of its
   * current position: how PC_B learns that a run ended (`+`) when no data was left to seal.
   */
  sealState(mapState: PieceMapState): Piece {
    return { rescueId: this.#o.rescueId as RescueId, seq: this.#o.nextSeq(), chunk: this.#chunkOf(mapState.currentPos), extents: [], delta: [], data: EMPTY, mapState };
  }

  #seal(p: OpenPiece, mapState: PieceMapState | undefined): Piece {
    // the data in source order: the buffer itself when the reads came in order
    let data: Buffer;
    let parts: readonly Part[];
    if (p.inOrder) {
      // a piece much smaller than its buffer gets a buffer of its size (it may wait long in the spool)
      data = p.bytes * 2 < p.buf.length ? Buffer.from(p.buf.subarray(0, p.bytes)) : p.buf.subarray(0, p.bytes);
      parts = p.parts;
      if (data.buffer !== p.buf.buffer) this.#keep(p.buf);
    } else {
      data = Buffer.allocUnsafe(p.bytes);
      let at = 0;
      parts = [...p.parts].sort((a, b) => a.pos - b.pos).map((part) => {
        p.buf.copy(data, at, part.at, part.at + part.size);
        const moved = { pos: part.pos, at, size: part.size };
        at += part.size;
        return moved;
      });
      this.#keep(p.buf);
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
      rescueId: this.#o.rescueId as RescueId,
      seq: this.#o.nextSeq(),
      chunk: p.chunk,
      extents,
      delta: p.delta.ranges.map((r) => ({ pos: r.pos, size: r.size, status: r.status })),
      data,
      ...(mapState === undefined ? {} : { mapState }),
    };
  }
}
