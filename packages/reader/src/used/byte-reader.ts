/**
 * Reads for the used-space scan. The scan never opens the disk itself: it reads through
 * a `ByteReader` the caller gives (the rescue engine, so each read lands in the common
 * map), and `ScanReader` wraps it so that every read is sector-aligned, inside the
 * source, at most `MAX_READ` bytes, checked for abort, and never repeated for the
 * sectors it just read (small reads are cached, failed ranges are remembered).
 */
import type { WarningLog } from './warnings.js';

/** Reads for the used-space scan. `null` means the range could not be read (bad sectors): the caller then treats what it describes as used. */
export interface ByteReader {
  /** Source size in bytes. */
  readonly size: number;
  /** Logical sector size in bytes. */
  readonly sectorSize: number;
  /** The bytes `[pos, pos + size)`, or `null` when they cannot be read. */
  read(pos: number, size: number): Promise<Uint8Array | null>;
}

/** The largest single read: bitmaps and FATs are read in batches of this size. */
export const MAX_READ = 4 * 1024 * 1024;
/** Reads up to this size are kept for a while, so probes of the same sectors do not read twice. */
const CACHED_READ = 64 * 1024;
const CACHE_ENTRIES = 64;
/** A failed batch is read again in pieces of this size, so one bad sector costs 64 KiB of bitmap, not 4 MiB. */
export const SPLIT_READ = 64 * 1024;
const FAILED_ENTRIES = 4096;

interface Cached {
  readonly pos: number;
  readonly end: number;
  readonly data: Uint8Array | null;
}

/** Bounded, aligned, abort-aware reads through a `ByteReader`. */
export class ScanReader {
  readonly size: number;
  readonly sectorSize: number;
  readonly #reader: ByteReader;
  readonly #signal: AbortSignal | undefined;
  readonly #warnings: WarningLog;
  readonly #cache: Cached[] = [];
  readonly #failed: Cached[] = [];
  /** Bytes asked of the underlying reader. */
  bytesRead = 0;

  constructor(reader: ByteReader, warnings: WarningLog, signal?: AbortSignal) {
    if (!Number.isSafeInteger(reader.size) || reader.size < 0) throw new RangeError(`invalid source size ${reader.size}`);
    if (!Number.isInteger(reader.sectorSize) || reader.sectorSize < 1 || reader.sectorSize > 65536) {
      throw new RangeError(`invalid sector size ${reader.sectorSize}`);
    }
    this.#reader = reader;
    this.size = reader.size;
    this.sectorSize = reader.sectorSize;
    this.#signal = signal;
    this.#warnings = warnings;
  }

  /**
   * The bytes `[pos, pos + size)`, or `null` when any part cannot be read or lies past the
   * end of the source. `size` is at most `MAX_READ`. The underlying read covers whole
   * sectors; a failure is warned about once (`ERR_USED_MAP_UNREADABLE`) and never retried.
   * @throws the signal's reason when aborted.
   */
  async read(pos: number, size: number): Promise<Uint8Array | null> {
    return this.#read(pos, size, true);
  }

  async #read(pos: number, size: number, warn: boolean): Promise<Uint8Array | null> {
    if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(size) || pos < 0 || size <= 0 || size > MAX_READ) {
      throw new RangeError(`internal: read of ${size} bytes at ${pos}`);
    }
    const end = pos + size;
    if (end > this.size) return null;
    const hit = this.#cache.find((c) => c.pos <= pos && c.end > pos);
    if (hit?.data && hit.end >= end) return hit.data.subarray(pos - hit.pos, end - hit.pos);
    if (this.#failed.some((c) => c.pos < end && c.end > pos)) return null;
    if (hit?.data) {
      // The head was read a moment ago (a probe, a boot sector): read only the rest.
      const rest = await this.#read(hit.end, end - hit.end, warn);
      return rest === null ? null : Buffer.concat([hit.data.subarray(pos - hit.pos), rest]);
    }
    this.#signal?.throwIfAborted();
    const s = this.sectorSize;
    const aPos = Math.floor(pos / s) * s;
    const aEnd = Math.min(this.size, Math.ceil(end / s) * s);
    this.bytesRead += aEnd - aPos;
    const data = await this.#reader.read(aPos, aEnd - aPos);
    this.#signal?.throwIfAborted();
    if (data === null || data.length !== aEnd - aPos) {
      if (aEnd - aPos <= SPLIT_READ) {
        this.#failed.push({ pos: aPos, end: aEnd, data: null });
        if (this.#failed.length > FAILED_ENTRIES) this.#failed.shift();
      }
      if (warn) this.#warnings.add('ERR_USED_MAP_UNREADABLE', `bytes ${aPos} to ${aEnd} cannot be read: what they describe counts as used`);
      return null;
    }
    if (aEnd - aPos <= CACHED_READ) {
      this.#cache.push({ pos: aPos, end: aEnd, data });
      if (this.#cache.length > CACHE_ENTRIES) this.#cache.shift();
    }
    return data.subarray(pos - aPos, end - aPos);
  }

  /**
   * The bytes `[pos, pos + size)` (any size) in batches of at most `MAX_READ`, in order.
   * A batch that fails is read again in pieces of `SPLIT_READ`; `data` is `null` for a piece
   * that still fails, whose range the caller counts as used. A bad sector is thus read at
   * most twice, and failed small reads are never repeated.
   */
  async *batches(pos: number, size: number): AsyncGenerator<{ pos: number; size: number; data: Uint8Array | null }> {
    const end = pos + size;
    for (let at = pos; at < end;) {
      const n = Math.min(MAX_READ, end - at);
      const data = await this.#read(at, n, n <= SPLIT_READ);
      if (data !== null || n <= SPLIT_READ) yield { pos: at, size: n, data };
      else {
        for (let p = at; p < at + n; p += SPLIT_READ) {
          const k = Math.min(SPLIT_READ, at + n - p);
          yield { pos: p, size: k, data: await this.read(p, k) };
        }
      }
      at += n;
    }
  }
}
