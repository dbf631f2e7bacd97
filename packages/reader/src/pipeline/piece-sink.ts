import type { BlockStatus, Chunk } from '@ddferry/mapfile';
import { type Piece, makeExtent } from '@ddferry/protocol';

import type { RescueSink } from '../engine/sink.js';
import { DeltaList } from './delta-list.js';
import type { PieceStore } from './stick-spool.js';

export interface PieceSinkOptions {
  readonly rescueId: string;
  readonly chunks: readonly Chunk[];
  /** The LAN `Spool` or the `StickSpool`. */
  readonly spool: PieceStore;
  /** Seal a piece once it holds this many bytes of data (default 8 MiB). */
  readonly sealBytes?: number;
  /** Seal a piece this many milliseconds after it opened (default 2000). */
  readonly sealMillis?: number;
  /** Seal a piece once its delta has this many ranges (default 20000). */
  readonly sealRanges?: number;
  /** Told after each sealed piece is durable in the spool. */
  readonly onSealed?: (piece: Piece) => void;
}

interface OpenPiece {
  readonly chunk: number;
  readonly parts: Array<{ pos: number; data: Buffer }>;
  bytes: number;
  readonly delta: DeltaList;
}

/**
 * The engine's sink in the pipeline: rescued data and status changes become pieces,
 * one open piece per chunk touched, sealed by size, age or delta length, and at every
 * `sync` (before each mapfile save), so `common.map` says `+` only for data durable in
 * the spool (R1). Sealing happens before a read's data is taken, never between a read's
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
      p = { chunk, parts: [], bytes: 0, delta: new DeltaList() };
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
      piece.parts.push({ pos: p, data: Buffer.from(data.subarray(offset, offset + n)) });
      piece.bytes += n;
      this.#bytes += n;
      ++this.#parts;
    });
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
  }

  async finish(): Promise<string | null> {
    try {
      await this.#sealAll();
    } catch (err) {
      return (err as Error).message;
    }
    return null;
  }

  close(): null {
    return null;
  }

  async #sealAll(): Promise<void> {
    const open = [...this.#open.values()].sort((a, b) => a.chunk - b.chunk);
    this.#open.clear();
    this.#bytes = 0;
    this.#ranges = 0;
    this.#parts = 0;
    for (const p of open) {
      const piece = this.#seal(p);
      try {
        await this.#o.spool.put(piece);
      } catch (err) {
        this.failure ??= err as Error;
        for (const d of piece.delta) if (d.status === '+') this.lost.push({ pos: d.pos, size: d.size });
        continue;
      }
      this.#o.onSealed?.(piece);
    }
    if (this.failure) throw this.failure;
  }

  #seal(p: OpenPiece): Piece {
    // join contiguous parts into extents
    const runs: Array<{ pos: number; parts: Buffer[]; size: number }> = [];
    for (const part of p.parts.sort((a, b) => a.pos - b.pos)) {
      const last = runs[runs.length - 1];
      if (last && last.pos + last.size === part.pos) {
        last.parts.push(part.data);
        last.size += part.data.length;
      } else {
        runs.push({ pos: part.pos, parts: [part.data], size: part.data.length });
      }
    }
    const data = Buffer.concat(runs.flatMap((r) => r.parts));
    let offset = 0;
    const extents = runs.map((r) => {
      const e = makeExtent(r.pos, data.subarray(offset, offset + r.size));
      offset += r.size;
      return e;
    });
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
