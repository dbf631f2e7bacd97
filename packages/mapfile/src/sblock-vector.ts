import { type Block, UNBOUNDED } from './block.js';
import { ByteStore, MAX_ENTRY_BYTES, decodePage, encodePage, entryOffset, grown, maskOf, pageShift } from './page-codec.js';
import { BLOCK_STATUS_CHARS, type BlockStatus, processedState } from './status.js';

/** A block with its status: one line of a mapfile's block list. */
export interface Sblock extends Block {
  readonly status: BlockStatus;
}

/** Blocks a page of a vector holds (every page but the last is full). */
export const VECTOR_PAGE = 128;
const FINISHED = 4;
const scratchBytes = new Uint8Array(VECTOR_PAGE * MAX_ENTRY_BYTES);

/** What a `StatusMap` takes over from a vector (see `ADOPT`). */
export interface VectorPages {
  readonly store: ByteStore;
  readonly pages: number;
  readonly start: Float64Array;
  readonly addr: Float64Array;
  readonly len: Uint16Array;
  readonly shift: Uint8Array;
  readonly mask: Uint8Array;
  readonly tailPos: Float64Array;
  readonly tailCode: Uint8Array;
  readonly tailN: number;
  readonly end: number;
  /** Per status code: the sum of the finite sizes, then the number of blocks; null if unknown. */
  readonly sums: Float64Array | null;
}

/** The method by which a `StatusMap` takes over a vector's pages; not exported from the package. */
export const ADOPT = Symbol('adopt');

/**
 * A list of sblocks in ascending order, stored compactly (see page-codec.ts: 2 to 3
 * bytes a block for a typical rescue map): status codes (the processed state, 0 for
 * `?` to 4 for `+`) and starts; a block ends where the next one starts. Lists read
 * from a mapfile are contiguous, though the first block may start above 0; only
 * `shift` of a list that starts above 0 leaves a gap, as ddrescuelog does, and the
 * few ends before a gap are kept apart.
 *
 * Reading in order (`forEachBlock`, `walkFrom`, or `pos(i)` for ascending `i`) costs
 * O(1) a block; `pos(i)` at random costs a page decode. This is the load-and-rewrite
 * representation (ddrescue's `sblock_vector`); operations that rebuild the list are
 * linear. For random status changes use `StatusMap`.
 */
export class SblockVector {
  #store = new ByteStore();
  #pages = 0;
  #start: Float64Array;
  #addr: Float64Array;
  #len: Uint16Array;
  #shift: Uint8Array;
  #mask: Uint8Array;
  readonly #tailPos = new Float64Array(VECTOR_PAGE);
  readonly #tailCode = new Uint8Array(VECTOR_PAGE);
  #tailN = 0;
  #length = 0;
  /** The end of the last block (0 when empty). */
  #lastEnd = 0;
  /** Ends of the blocks followed by a gap, by index. */
  #gapEnds: Map<number, number> | null = null;
  #hasEmpty = false;
  /** Per status code, the sum of finite sizes (0..4) and the count (5..9), kept while only `push` changed the list. */
  #sums: Float64Array | null = new Float64Array(10);
  /** Pages shared with a StatusMap: never written in place. */
  #shared = false;
  #cachePage = -1;
  readonly #cachePos = new Float64Array(VECTOR_PAGE);
  readonly #cacheCode = new Uint8Array(VECTOR_PAGE);

  /** An empty list with room for about `capacity` blocks before its directory grows. */
  constructor(capacity = 16) {
    const pages = Math.max(4, Math.ceil(capacity / VECTOR_PAGE));
    this.#start = new Float64Array(pages);
    this.#addr = new Float64Array(pages);
    this.#len = new Uint16Array(pages);
    this.#shift = new Uint8Array(pages);
    this.#mask = new Uint8Array(pages);
  }

  /** Build from sblocks, in ascending order. */
  static from(blocks: Iterable<Sblock>): SblockVector {
    const v = new SblockVector();
    for (const b of blocks) v.push(b.pos, b.pos + b.size, processedState(b.status));
    return v;
  }

  get length(): number {
    return this.#length;
  }

  /** Append `[pos, end)` with status code `code`; `pos` must not be below the current end. */
  push(pos: number, end: number, code: number): void {
    const n = this.#length;
    if (n > 0) {
      if (pos < this.#lastEnd) throw new Error(`internal: block at ${pos} overlaps ${this.#lastEnd}`);
      if (pos !== this.#lastEnd) (this.#gapEnds ??= new Map()).set(n - 1, this.#lastEnd);
    }
    if (end <= pos) this.#hasEmpty = true;
    if (this.#sums) {
      if (end !== UNBOUNDED) this.#sums[code]! += end - pos;
      ++this.#sums[5 + code]!;
    }
    if (this.#tailN === VECTOR_PAGE) this.#seal();
    this.#tailPos[this.#tailN] = pos;
    this.#tailCode[this.#tailN++] = code;
    this.#length = n + 1;
    this.#lastEnd = end;
  }

  /** Encode the full tail as a page. */
  #seal(): void {
    const p = this.#pages;
    if (p === this.#start.length) {
      const cap = p * 2;
      this.#start = grown(this.#start, cap);
      this.#addr = grown(this.#addr, cap);
      this.#len = grown(this.#len, cap);
      this.#shift = grown(this.#shift, cap);
      this.#mask = grown(this.#mask, cap);
    }
    const n = this.#tailN;
    const shift = pageShift(this.#tailPos, n);
    const len = encodePage(this.#tailPos, this.#tailCode, n, shift, scratchBytes, 0);
    const addr = this.#store.alloc(len);
    this.#store.slabOf(addr).set(scratchBytes.subarray(0, len), ByteStore.offsetOf(addr));
    this.#start[p] = this.#tailPos[0]!;
    this.#addr[p] = addr;
    this.#len[p] = len;
    this.#shift[p] = shift;
    this.#mask[p] = maskOf(this.#tailCode, n);
    this.#pages = p + 1;
    this.#tailN = 0;
  }

  /** Decode page `p` into `pos`, `code`. */
  #decode(p: number, pos: Float64Array, code: Uint8Array): void {
    const addr = this.#addr[p]!;
    decodePage(this.#store.slabOf(addr), ByteStore.offsetOf(addr), VECTOR_PAGE, this.#shift[p]!, this.#start[p]!, pos, code);
  }

  #load(p: number): void {
    if (this.#cachePage === p) return;
    this.#decode(p, this.#cachePos, this.#cacheCode);
    this.#cachePage = p;
  }

  pos(i: number): number {
    const p = Math.floor(i / VECTOR_PAGE);
    if (p >= this.#pages) return this.#tailPos[i - p * VECTOR_PAGE]!;
    this.#load(p);
    return this.#cachePos[i - p * VECTOR_PAGE]!;
  }

  end(i: number): number {
    if (i === this.#length - 1) return this.#lastEnd;
    return this.#gapEnds?.get(i) ?? this.pos(i + 1);
  }

  size(i: number): number {
    return this.end(i) - this.pos(i);
  }

  code(i: number): number {
    const p = Math.floor(i / VECTOR_PAGE);
    if (p >= this.#pages) return this.#tailCode[i - p * VECTOR_PAGE]!;
    this.#load(p);
    return this.#cacheCode[i - p * VECTOR_PAGE]!;
  }

  status(i: number): BlockStatus {
    return BLOCK_STATUS_CHARS[this.code(i)] as BlockStatus;
  }

  setCode(i: number, code: number): void {
    this.#sums = null;
    const p = Math.floor(i / VECTOR_PAGE);
    const k = i - p * VECTOR_PAGE;
    if (p >= this.#pages) {
      this.#tailCode[k] = code;
      return;
    }
    if (this.#shared) this.#unshare();
    const addr = this.#addr[p]!;
    const bytes = this.#store.slabOf(addr);
    const o = entryOffset(bytes, ByteStore.offsetOf(addr), k);
    bytes[o] = (bytes[o]! & ~7) | code;
    this.#mask[p] = this.#mask[p]! | (1 << code);
    if (this.#cachePage === p) this.#cacheCode[k] = code;
  }

  /** Copy the pages into a store of this vector's own. */
  #unshare(): void {
    const store = new ByteStore();
    for (let p = 0; p < this.#pages; ++p) {
      const addr = this.#addr[p]!;
      const len = this.#len[p]!;
      const off = ByteStore.offsetOf(addr);
      const to = store.alloc(len);
      store.slabOf(to).set(this.#store.slabOf(addr).subarray(off, off + len), ByteStore.offsetOf(to));
      this.#addr[p] = to;
    }
    this.#store = store;
    this.#shared = false;
  }

  sblock(i: number): Sblock {
    return { pos: this.pos(i), size: this.size(i), status: this.status(i) };
  }

  /** Set the end of the last block. */
  setLastEnd(end: number): void {
    this.#sums = null;
    this.#lastEnd = end;
    if (this.#length > 0 && end <= this.pos(this.#length - 1)) this.#hasEmpty = true;
  }

  /** Remove every block from index `i` on. */
  truncateAt(i: number): void {
    if (i >= this.#length) return;
    this.#sums = null;
    if (i <= 0) {
      this.#sums = new Float64Array(10);
      this.#pages = 0;
      this.#tailN = 0;
      this.#length = 0;
      this.#lastEnd = 0;
      this.#gapEnds = null;
      this.#cachePage = -1;
      return;
    }
    const lastEnd = this.end(i - 1);
    const p = Math.floor(i / VECTOR_PAGE);
    if (p < this.#pages) {
      this.#decode(p, this.#tailPos, this.#tailCode);
      this.#pages = p;
      if (this.#cachePage >= p) this.#cachePage = -1;
    }
    this.#tailN = i - p * VECTOR_PAGE;
    this.#length = i;
    this.#lastEnd = lastEnd;
    if (this.#gapEnds) for (const k of [...this.#gapEnds.keys()]) if (k >= i - 1) this.#gapEnds.delete(k);
  }

  /**
   * Call `fn(pos, end, code)` for the blocks from index `from` on, in order, while it
   * returns true. @returns the index of the first block not visited (`length` at the end).
   */
  walkFrom(from: number, fn: (pos: number, end: number, code: number) => boolean): number {
    const n = this.#length;
    const pos = new Float64Array(VECTOR_PAGE);
    const code = new Uint8Array(VECTOR_PAGE);
    const gaps = this.#gapEnds;
    const total = this.#pages + (this.#tailN > 0 ? 1 : 0);
    for (let p = Math.floor(from / VECTOR_PAGE); p < total; ++p) {
      let count = VECTOR_PAGE;
      let next: number;
      if (p < this.#pages) {
        this.#decode(p, pos, code);
        next = p + 1 < this.#pages ? this.#start[p + 1]! : this.#tailN > 0 ? this.#tailPos[0]! : this.#lastEnd;
      } else {
        count = this.#tailN;
        pos.set(this.#tailPos.subarray(0, count));
        code.set(this.#tailCode.subarray(0, count));
        next = this.#lastEnd;
      }
      const base = p * VECTOR_PAGE;
      for (let k = Math.max(0, from - base); k < count; ++k) {
        const i = base + k;
        let end = k + 1 < count ? pos[k + 1]! : next;
        if (i === n - 1) end = this.#lastEnd;
        else if (gaps !== null) end = gaps.get(i) ?? end;
        if (!fn(pos[k]!, end, code[k]!)) return i;
      }
    }
    return n;
  }

  /**
   * Copy the blocks from the `from`-th on, at most `max`, into `pos`, `end` and `code`
   * (ascending `from` costs O(1) a block). @returns how many were copied (0 at the end).
   */
  readBlocks(from: number, max: number, pos: Float64Array, end: Float64Array, code: Uint8Array): number {
    const n = this.#length;
    let k = 0;
    for (let i = from; i < n && k < max;) {
      const p = Math.floor(i / VECTOR_PAGE);
      let src = this.#tailPos;
      let srcCode = this.#tailCode;
      let count = this.#tailN;
      let next = this.#lastEnd;
      if (p < this.#pages) {
        this.#load(p);
        src = this.#cachePos;
        srcCode = this.#cacheCode;
        count = VECTOR_PAGE;
        next = p + 1 < this.#pages ? this.#start[p + 1]! : this.#tailN > 0 ? this.#tailPos[0]! : this.#lastEnd;
      }
      for (let j = i - p * VECTOR_PAGE; j < count && k < max; ++j, ++i, ++k) {
        pos[k] = src[j]!;
        code[k] = srcCode[j]!;
        end[k] = j + 1 < count ? src[j + 1]! : next;
      }
    }
    if (from + k === n && k > 0) end[k - 1] = this.#lastEnd;
    if (this.#gapEnds) {
      for (const [i, e] of this.#gapEnds) if (i >= from && i < from + k) end[i - from] = e;
    }
    return k;
  }

  /** Call `fn(pos, end, code)` for each block in order. */
  forEachBlock(fn: (pos: number, end: number, code: number) => void): void {
    this.walkFrom(0, (pos, end, code) => {
      fn(pos, end, code);
      return true;
    });
  }

  *[Symbol.iterator](): IterableIterator<Sblock> {
    for (let i = 0; i < this.#length; ++i) yield this.sblock(i);
  }

  /** `[first.pos, last.end)`, or `[0, 0)` when empty. */
  extent(): Block {
    if (this.#length === 0) return { pos: 0, size: 0 };
    const pos = this.pos(0);
    const end = this.#lastEnd;
    return { pos, size: end === UNBOUNDED ? UNBOUNDED : end - pos };
  }

  /** Index of the block including `pos`, or -1. Binary search. */
  findIndex(pos: number): number {
    const n = this.#length;
    if (n === 0 || pos < this.pos(0)) return -1;
    // the page: the last one starting at or before pos
    let lo = 0;
    let hi = this.#pages - 1;
    let page = this.#pages;
    if (this.#tailN === 0 || pos < this.#tailPos[0]!) {
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (this.#start[mid]! <= pos) lo = mid;
        else hi = mid - 1;
      }
      page = lo;
    }
    lo = page * VECTOR_PAGE;
    hi = Math.min(n, lo + VECTOR_PAGE) - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.pos(mid) <= pos) lo = mid;
      else hi = mid - 1;
    }
    return pos < this.end(lo) ? lo : -1;
  }

  /** A copy with runs of equal status merged (ddrescue's `compact_sblock_vector`). */
  compact(): SblockVector {
    const out = new CompactingBuilder(this.#length);
    this.forEachBlock((pos, end, code) => out.push(pos, end, code));
    return out.finish();
  }

  /**
   * A copy split at each of `positions` (ascending) that falls strictly inside a block.
   * This is ddrescue's `split_by_domain_borders` and `split_by_mapfile_borders`.
   */
  splitAt(positions: Iterable<number>): SblockVector {
    const out = new SblockVector(this.#length + 8);
    this.forEachSplitAt(positions, (pos, end, code) => out.push(pos, end, code));
    return out;
  }

  /** Call `fn(pos, end, code)` for each block in order, split at each of `positions` (ascending) that falls strictly inside it (`splitAt` without the copy). */
  forEachSplitAt(positions: Iterable<number>, fn: (pos: number, end: number, code: number) => void): void {
    const it = positions[Symbol.iterator]();
    let next = it.next();
    this.forEachBlock((posIn, end, code) => {
      let pos = posIn;
      for (;;) {
        while (!next.done && next.value <= pos) next = it.next();
        if (next.done || next.value >= end) break;
        fn(pos, next.value, code);
        pos = next.value;
      }
      fn(pos, end, code);
    });
  }

  /**
   * Cut the list at `end` (ddrescue's `truncate_vector`). Returns false, changing
   * nothing, if that would remove or cut finished data and `force` is false.
   */
  truncate(end: number, force: boolean): boolean {
    let i = this.#length;
    while (i > 0 && this.pos(i - 1) >= end) --i;
    if (!force) {
      for (let j = i; j < this.#length; ++j) if (this.code(j) === FINISHED) return false;
      if (i > 0 && this.end(i - 1) > end && this.code(i - 1) === FINISHED) return false;
    }
    if (i === 0) {
      this.truncateAt(0);
      this.push(0, 0, 0);
      return true;
    }
    this.truncateAt(i);
    if (this.#lastEnd > end) this.setLastEnd(end);
    return true;
  }

  /**
   * A copy with every block moved by `offset` (ddrescue's `shift_blocks`). A positive
   * shift adds or extends a leading block of status code `code`; a negative shift drops
   * blocks that fall wholly below 0 and clips the first one. Ends at `UNBOUNDED` stay.
   */
  shift(offset: number, code: number): SblockVector {
    const n = this.#length;
    const out = new SblockVector(n + 1);
    if (n === 0) return out;
    if (offset > 0) {
      let first = true;
      this.forEachBlock((pos, end, c) => {
        if (first) {
          first = false;
          if (c === code) {
            // the first block keeps its start and grows by offset
            out.push(pos, shifted(end, offset), code);
            return;
          }
          out.push(0, offset, code);
        }
        out.push(shifted(pos, offset), shifted(end, offset), c);
      });
      return out;
    }
    let i = 0;
    while (i < n && !(this.end(i) + offset > 0)) ++i;
    if (i === n) i = 0;
    this.walkFrom(i, (pos, end, c) => {
      out.push(Math.max(0, pos + offset), Math.max(0, end + offset), c);
      return true;
    });
    return out;
  }

  /**
   * Hand the pages to a `StatusMap`, which reads them in place and never writes them;
   * from now on this vector copies them before changing a code. Null if the list has
   * a gap or an empty block among others (the map then copies block by block).
   */
  [ADOPT](): VectorPages | null {
    if (this.#gapEnds !== null || (this.#hasEmpty && this.#length > 1)) return null;
    this.#shared = true;
    return {
      store: this.#store, pages: this.#pages, start: this.#start, addr: this.#addr, len: this.#len, shift: this.#shift, mask: this.#mask,
      tailPos: this.#tailPos, tailCode: this.#tailCode, tailN: this.#tailN, end: this.#lastEnd, sums: this.#sums,
    };
  }
}

function shifted(p: number, offset: number): number {
  return p === UNBOUNDED ? UNBOUNDED : p + offset;
}

/**
 * A list built from blocks given in order, runs of equal status merged as they come
 * (`compact`'s rule, so a pass that changes statuses can compact as it goes).
 */
export class CompactingBuilder {
  readonly #out: SblockVector;
  #runPos = 0;
  #runEnd = 0;
  #runCode = -1;

  /** @param capacity about how many blocks may come (see `SblockVector`'s constructor). */
  constructor(capacity: number) {
    this.#out = new SblockVector(capacity);
  }

  push(pos: number, end: number, code: number): void {
    if (code === this.#runCode) {
      this.#runEnd = end;
      return;
    }
    if (this.#runCode >= 0) this.#out.push(this.#runPos, this.#runEnd, this.#runCode);
    this.#runPos = pos;
    this.#runEnd = end;
    this.#runCode = code;
  }

  /** The list; nothing may be pushed afterwards. */
  finish(): SblockVector {
    if (this.#runCode >= 0) this.#out.push(this.#runPos, this.#runEnd, this.#runCode);
    this.#runCode = -1;
    return this.#out;
  }
}
