import { type Block, UNBOUNDED } from './block.js';
import { BLOCK_STATUS_CHARS, type BlockStatus, processedState } from './status.js';

/** A block with its status: one line of a mapfile's block list. */
export interface Sblock extends Block {
  readonly status: BlockStatus;
}

/**
 * A list of sblocks in ascending order, stored compactly: positions, ends and
 * status codes (the processed state, 0 for `?` to 4 for `+`). Lists read from a
 * mapfile are contiguous, though the first block may start above 0; only
 * `shift` of a list that starts above 0 leaves a gap, as ddrescuelog does.
 *
 * This is the load-and-rewrite representation (ddrescue's `sblock_vector`);
 * operations that rebuild the list are linear. For random status changes use
 * `StatusMap`.
 */
export class SblockVector {
  #pos: Float64Array;
  #end: Float64Array;
  #codes: Uint8Array;
  #length = 0;

  constructor(capacity = 16) {
    const n = Math.max(1, capacity);
    this.#pos = new Float64Array(n);
    this.#end = new Float64Array(n);
    this.#codes = new Uint8Array(n);
  }

  /** Build from sblocks, which must be contiguous. */
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
    if (n > 0 && pos < this.#end[n - 1]!) throw new Error(`internal: block at ${pos} overlaps ${this.#end[n - 1]}`);
    if (n === this.#pos.length) {
      const grow = <T extends Float64Array | Uint8Array>(a: T, b: T): T => {
        b.set(a);
        return b;
      };
      this.#pos = grow(this.#pos, new Float64Array(n * 2));
      this.#end = grow(this.#end, new Float64Array(n * 2));
      this.#codes = grow(this.#codes, new Uint8Array(n * 2));
    }
    this.#pos[n] = pos;
    this.#end[n] = end;
    this.#codes[n] = code;
    this.#length = n + 1;
  }

  pos(i: number): number {
    return this.#pos[i]!;
  }

  end(i: number): number {
    return this.#end[i]!;
  }

  size(i: number): number {
    return this.#end[i]! - this.#pos[i]!;
  }

  /** Set the end of the last block. */
  setLastEnd(end: number): void {
    this.#end[this.#length - 1] = end;
  }

  /** Remove every block from index `i` on. */
  truncateAt(i: number): void {
    this.#length = Math.min(this.#length, i);
  }

  code(i: number): number {
    return this.#codes[i]!;
  }

  status(i: number): BlockStatus {
    return BLOCK_STATUS_CHARS[this.#codes[i]!] as BlockStatus;
  }

  setCode(i: number, code: number): void {
    this.#codes[i] = code;
  }

  sblock(i: number): Sblock {
    return { pos: this.pos(i), size: this.size(i), status: this.status(i) };
  }

  /** Call `fn(pos, end, code)` for each block in order. */
  forEachBlock(fn: (pos: number, end: number, code: number) => void): void {
    for (let i = 0; i < this.#length; ++i) fn(this.#pos[i]!, this.#end[i]!, this.#codes[i]!);
  }

  *[Symbol.iterator](): IterableIterator<Sblock> {
    for (let i = 0; i < this.#length; ++i) yield this.sblock(i);
  }

  /** `[first.pos, last.end)`, or `[0, 0)` when empty. */
  extent(): Block {
    if (this.#length === 0) return { pos: 0, size: 0 };
    const pos = this.#pos[0]!;
    const end = this.#end[this.#length - 1]!;
    return { pos, size: end === UNBOUNDED ? UNBOUNDED : end - pos };
  }

  /** Index of the block including `pos`, or -1. Binary search. */
  findIndex(pos: number): number {
    const n = this.#length;
    if (n === 0 || pos < this.#pos[0]!) return -1;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#pos[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return pos < this.#end[lo]! ? lo : -1;
  }

  /** A copy with runs of equal status merged (ddrescue's `compact_sblock_vector`). */
  compact(): SblockVector {
    const n = this.#length;
    const out = new SblockVector(n);
    for (let l = 0; l < n;) {
      let r = l + 1;
      while (r < n && this.#codes[r] === this.#codes[l]) ++r;
      out.push(this.#pos[l]!, this.#end[r - 1]!, this.#codes[l]!);
      l = r;
    }
    return out;
  }

  /**
   * A copy split at each of `positions` (ascending) that falls strictly inside a block.
   * This is ddrescue's `split_by_domain_borders` and `split_by_mapfile_borders`.
   */
  splitAt(positions: Iterable<number>): SblockVector {
    const n = this.#length;
    const out = new SblockVector(n + 8);
    const it = positions[Symbol.iterator]();
    let next = it.next();
    for (let i = 0; i < n; ++i) {
      let pos = this.#pos[i]!;
      const end = this.#end[i]!;
      const code = this.#codes[i]!;
      for (;;) {
        while (!next.done && next.value <= pos) next = it.next();
        if (next.done || next.value >= end) break;
        out.push(pos, next.value, code);
        pos = next.value;
      }
      out.push(pos, end, code);
    }
    return out;
  }

  /**
   * Cut the list at `end` (ddrescue's `truncate_vector`). Returns false, changing
   * nothing, if that would remove or cut finished data and `force` is false.
   */
  truncate(end: number, force: boolean): boolean {
    let i = this.#length;
    while (i > 0 && this.#pos[i - 1]! >= end) --i;
    const FINISHED = 4;
    if (!force) {
      for (let j = i; j < this.#length; ++j) if (this.#codes[j] === FINISHED) return false;
      if (i > 0 && this.#end[i - 1]! > end && this.#codes[i - 1] === FINISHED) return false;
    }
    if (i === 0) {
      this.#length = 0;
      this.push(0, 0, 0);
      return true;
    }
    if (this.#end[i - 1]! > end) this.#end[i - 1] = end;
    this.#length = i;
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
      let first = 0;
      if (this.#codes[0] === code) {
        // the first block keeps its start and grows by offset
        out.push(this.#pos[0]!, shifted(this.#end[0]!, offset), code);
        first = 1;
      } else {
        out.push(0, offset, code);
      }
      for (let i = first; i < n; ++i) {
        const pos = shifted(this.#pos[i]!, offset);
        const end = shifted(this.#end[i]!, offset);
        out.push(pos, end, this.#codes[i]!);
      }
      return out;
    }
    let i = 0;
    while (i < n && !(this.#end[i]! + offset > 0)) ++i;
    if (i === n) i = 0;
    for (; i < n; ++i) {
      out.push(Math.max(0, this.#pos[i]! + offset), Math.max(0, this.#end[i]! + offset), this.#codes[i]!);
    }
    return out;
  }
}

function shifted(p: number, offset: number): number {
  return p === UNBOUNDED ? UNBOUNDED : p + offset;
}
