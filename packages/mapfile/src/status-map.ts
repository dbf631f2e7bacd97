import { type Block, UNBOUNDED, alignEnd, alignPos, crop, includes } from './block.js';
import { PagedBlocks } from './paged-blocks.js';
import type { Domain } from './domain.js';
import { ADOPT, SblockVector, type Sblock } from './sblock-vector.js';
import { BLOCK_STATUS_CHARS, type BlockStatus, processedState } from './status.js';

const BAD = 3;
const FINISHED = 4;
/** Stand-in for an UNBOUNDED end in size arithmetic: above every exact position. */
const FAR_END = 2 ** 53;

/** Result of `findChunk`/`rfindChunk`: the chunk found (size 0 if none). */
export interface FoundChunk {
  readonly block: Block;
  /** True if some in-domain block of the status exists from the start point on. */
  readonly found: boolean;
}

/**
 * The status map of a rescue: contiguous blocks with statuses, as GNU ddrescue keeps
 * them in memory, in compact pages of a few hundred blocks (2 to 3 bytes a block for
 * a typical rescue map; see paged-blocks.ts).
 *
 * | operation | cost |
 * |---|---|
 * | `changeChunkStatus`, `sblockAt` | O(log n) plus one page |
 * | `findChunk`, `rfindChunk`, `nextBlockOfStatus`, `prevBlockOfStatus` | one page per candidate, one byte per page skipped |
 * | `sizeOf`, `countOf`, `length` | O(1) |
 */
export class StatusMap {
  #tree: PagedBlocks;
  #end: number;
  readonly #sizes = new Float64Array(5);
  readonly #counts = new Float64Array(5);

  /**
   * Build from a contiguous list of blocks. The map reads the list's pages in place
   * (the list copies them before it changes a code), so building costs no copy.
   * Empty blocks are left out, unless the list is a single empty block.
   * @throws Error if the list has a gap.
   */
  constructor(blocks: SblockVector) {
    let pages = blocks[ADOPT]();
    if (!pages && blocks.length > 0) {
      const v = new SblockVector(blocks.length);
      blocks.forEachBlock((pos, end, code) => {
        if (v.length > 0 && pos !== v.end(v.length - 1)) throw new Error(`internal: status map needs contiguous blocks (gap at ${v.end(v.length - 1)})`);
        if (end > pos || blocks.length === 1) v.push(pos, end, code);
        else if (v.length > 0) v.setLastEnd(end);
      });
      pages = v[ADOPT]();
    }
    this.#tree = new PagedBlocks(pages);
    this.#end = pages?.end ?? 0;
    if (pages?.sums) {
      for (let c = 0; c < 5; ++c) {
        this.#sizes[c] = pages.sums[c]!;
        this.#counts[c] = pages.sums[5 + c]!;
      }
      const last = this.#tree.last();
      if (this.#end === UNBOUNDED && last >= 0) this.#sizes[this.#tree.codeAt(last)]! += FAR_END - this.#tree.posAt(last);
    } else {
      this.forEachBlock((pos, end, code) => {
        this.#sizes[code]! += (end === UNBOUNDED ? FAR_END : end) - pos;
        ++this.#counts[code]!;
      });
    }
  }

  /** Number of blocks. */
  get length(): number {
    return this.#tree.length;
  }

  /** Total size of the blocks with status `st` (`UNBOUNDED` if the last one is). */
  sizeOf(st: BlockStatus): number {
    const code = processedState(st);
    if (this.#end === UNBOUNDED && this.#tree.length > 0 && this.#tree.codeAt(this.#tree.last()) === code) return UNBOUNDED;
    return this.#sizes[code]!;
  }

  /** Number of blocks with status `st`. */
  countOf(st: BlockStatus): number {
    return this.#counts[processedState(st)]!;
  }

  /** `[first.pos, last.end)`. */
  extent(): Block {
    const f = this.#tree.first();
    if (f < 0) return { pos: 0, size: 0 };
    const pos = this.#tree.posAt(f);
    return { pos, size: this.#end === UNBOUNDED ? UNBOUNDED : this.#end - pos };
  }

  /** The block that includes `pos`, or null. */
  sblockAt(pos: number): Sblock | null {
    const c = this.#find(pos);
    return c >= 0 ? this.#sblock(c) : null;
  }

  /** The first block of status `st` that includes or follows `pos`, or null. */
  nextBlockOfStatus(pos: number, st: BlockStatus): Sblock | null {
    let start = this.#find(pos);
    if (start < 0 && pos < this.extent().pos) start = this.#tree.first();
    const c = start < 0 ? -1 : this.#tree.nextWithMask(start, 1 << processedState(st));
    return c >= 0 ? this.#sblock(c) : null;
  }

  /** The last block of status `st` that includes or precedes `pos`, or null. */
  prevBlockOfStatus(pos: number, st: BlockStatus): Sblock | null {
    let start = this.#find(pos);
    if (start < 0 && pos >= this.#end) start = this.#tree.last();
    const c = start < 0 ? -1 : this.#tree.prevWithMask(start, 1 << processedState(st));
    return c >= 0 ? this.#sblock(c) : null;
  }

  /** Call `fn(pos, end, code)` for each block in order. */
  forEachBlock(fn: (pos: number, end: number, code: number) => void): void {
    this.#tree.walk(0, this.#end, (pos, end, code) => {
      fn(pos, end, code);
      return true;
    });
  }

  /**
   * Copy the blocks from the `from`-th on, at most `max`, into `pos`, `end` and `code`;
   * reading on from where the last read stopped costs O(1) a block.
   * @returns how many were copied (0 at the end).
   */
  readBlocks(from: number, max: number, pos: Float64Array, end: Float64Array, code: Uint8Array): number {
    return this.#tree.read(from, max, this.#end, pos, end, code);
  }

  /** The blocks as a list. */
  toVector(): SblockVector {
    const v = new SblockVector(this.length);
    this.forEachBlock((pos, end, code) => v.push(pos, end, code));
    return v;
  }

  /**
   * Give the chunk `b` status `st` (GNU ddrescue's `change_chunk_status`), keeping the
   * map contiguous. `b` must lie inside one block and inside one block of `domain`.
   * The changed chunk joins a neighbour of the same status only if that neighbour is
   * inside the domain:
   *
   * | chunk in its block | neighbour with status `st`, in domain | result |
   * |---|---|---|
   * | at the end, not the start | right | the boundary moves down to `b.pos` |
   * | at the start, not the end | left | the boundary moves up to `b.end` |
   * | the whole block | left and/or right | joined into one block |
   * | otherwise | | the block is split around `b` |
   *
   * @returns the change of the number of bad areas (maximal in-domain runs of `-`):
   *   -1, 0 or +1.
   * @throws Error if `b` is outside the domain or spans blocks (a bug in the caller).
   */
  changeChunkStatus(b: Block, st: BlockStatus, domain: Domain): number {
    if (b.size <= 0) return 0;
    const tree = this.#tree;
    const code = processedState(st);
    let c = this.#find(b.pos);
    if (!domain.includes(b) || c < 0 || !domain.includes(this.#sblock(c))) {
      throw new Error("internal error: can't change status of chunk not in rescue domain.");
    }
    let blk = this.#sblock(c);
    if (!includes(blk, b)) throw new Error("internal error: can't change status of chunk spread over more than 1 block.");
    const oldCode = tree.codeAt(c);
    if (code === oldCode) return 0;
    const bEnd = b.pos + b.size;
    const oldGood = oldCode !== BAD;
    const newGood = code !== BAD;
    const prev = tree.prev(c);
    const next = tree.next(c);
    const isGoodOrOut = (n: number): boolean => n < 0 || tree.codeAt(n) !== BAD || !domain.includes(this.#sblock(n));
    let blGood = isGoodOrOut(prev);
    let brGood = isGoodOrOut(next);
    const joins = (n: number): boolean => n >= 0 && tree.codeAt(n) === code && domain.includes(this.#sblock(n));

    if (blk.pos < b.pos) {
      if (blk.pos + blk.size === bEnd && joins(next)) {
        this.#moveBoundary(next, b.pos);
        return 0;
      }
      this.#split(c, b.pos);
      c = this.#find(b.pos);
      blk = this.#sblock(c);
      blGood = oldGood;
    }
    if (blk.pos + blk.size > bEnd) {
      const left = tree.prev(c);
      if (left >= 0 && tree.posAt(left) < blk.pos && joins(left)) {
        this.#moveBoundary(c, bEnd);
      } else {
        this.#split(c, bEnd);
        this.#setCode(this.#find(b.pos), code);
      }
      brGood = oldGood;
    } else {
      this.#setCode(c, code);
      c = this.#find(b.pos);
      const right = tree.next(c);
      if (joins(right)) this.#join(right);
      const left = tree.prev(this.#find(b.pos));
      if (joins(left)) this.#join(this.#find(b.pos));
    }
    if (newGood !== oldGood && blGood === brGood) return oldGood === blGood ? +1 : -1;
    return 0;
  }

  /**
   * Find, from `b.pos` forwards, the first in-domain block of status `st` (or any
   * non-finished block with `unfinished`), clamp `b` to it and align its end down to
   * `alignment` unless it reaches the block's end (GNU ddrescue's `find_chunk`). With
   * `afterFinished`, the block must be the first one or follow a `+` block.
   */
  findChunk(bIn: Block, st: BlockStatus, domain: Domain, alignment: number, afterFinished = false, unfinished = false): FoundChunk {
    if (bIn.size <= 0) return { block: bIn, found: false };
    let b = bIn;
    const ext = this.extent();
    if (b.pos < ext.pos) b = { pos: ext.pos, size: b.size };
    const c = this.#find(b.pos);
    if (c < 0) return { block: { pos: b.pos, size: 0 }, found: false };
    const mask = unfinished ? 0b01111 | (1 << processedState(st)) : 1 << processedState(st);
    let found = false;
    let hit: Sblock | null = null;
    for (let k = this.#tree.nextWithMask(c, mask); k >= 0;) {
      const sb = this.#sblock(k);
      if (domain.includes(sb)) {
        found = true;
        const p = this.#tree.prev(k);
        if (!afterFinished || p < 0 || this.#tree.codeAt(p) === FINISHED) {
          hit = sb;
          break;
        }
      }
      const n = this.#tree.next(k);
      if (n < 0) break;
      k = this.#tree.nextWithMask(n, mask);
    }
    if (!hit) return { block: { pos: b.pos, size: 0 }, found };
    if (b.pos < hit.pos) b = { pos: hit.pos, size: b.size };
    if (!includes(hit, b)) b = crop(b, hit);
    if (b.pos + b.size !== hit.pos + hit.size) b = alignEnd(b, alignment);
    return { block: b, found };
  }

  /**
   * Find, from `b.end` backwards, the last in-domain block of status `st`, clamp `b`
   * to it and align its start up to `alignment` unless it is the block's start
   * (GNU ddrescue's `rfind_chunk`). With `beforeFinished`, the block must be the last
   * one or precede a `+` block.
   */
  rfindChunk(bIn: Block, st: BlockStatus, domain: Domain, alignment: number, beforeFinished = false): FoundChunk {
    if (bIn.size <= 0) return { block: bIn, found: false };
    let b = bIn;
    if (b.pos + b.size > this.#end) b = setEnd(b, this.#end);
    const c = this.#find(b.pos + b.size - 1);
    if (c < 0) return { block: { pos: b.pos, size: 0 }, found: false };
    const mask = 1 << processedState(st);
    let found = false;
    let hit: Sblock | null = null;
    for (let k = this.#tree.prevWithMask(c, mask); k >= 0;) {
      const sb = this.#sblock(k);
      if (domain.includes(sb)) {
        found = true;
        const n = this.#tree.next(k);
        if (!beforeFinished || n < 0 || this.#tree.codeAt(n) === FINISHED) {
          hit = sb;
          break;
        }
      }
      k = this.#tree.prevWithMask(this.#tree.prev(k), mask);
    }
    if (!hit) return { block: { pos: b.pos, size: 0 }, found };
    const hitEnd = hit.pos + hit.size;
    if (b.pos + b.size > hitEnd) b = setEnd(b, hitEnd);
    if (!includes(hit, b)) b = crop(b, hit);
    if (b.pos !== hit.pos) b = alignPos(b, alignment);
    return { block: b, found };
  }

  /**
   * Give the whole block that includes `pos` status `st` without joining it to its
   * neighbours (GNU ddrescue's `change_sblock_status`, used by `-M`, `-A` and the
   * trimming shortcut). Equal neighbours stay separate blocks.
   * @returns the block before the change, or null if no block includes `pos`.
   */
  setBlockStatus(pos: number, st: BlockStatus): Sblock | null {
    const c = this.#find(pos);
    if (c < 0) return null;
    const before = this.#sblock(c);
    this.#setCode(c, processedState(st));
    return before;
  }

  /** Join every run of neighbours with the same status (ddrescue's `compact_sblock_vector`). */
  compact(): void {
    this.#replace(new StatusMap(this.toVector().compact()));
  }

  /**
   * Cut the map at `end` (GNU ddrescue's `truncate_vector` at EOF): blocks past it go,
   * the block across it is shortened.
   * @returns false, changing nothing, if that would cut or drop a `+` block.
   */
  truncate(end: number): boolean {
    const v = this.toVector();
    if (!v.truncate(end, false)) return false;
    this.#replace(new StatusMap(v));
    return true;
  }

  #replace(rebuilt: StatusMap): void {
    this.#tree = rebuilt.#tree;
    this.#end = rebuilt.#end;
    this.#sizes.set(rebuilt.#sizes);
    this.#counts.set(rebuilt.#counts);
  }

  /** The cursor of the block that includes `pos`, or -1. */
  #find(pos: number): number {
    if (pos >= this.#end) return -1;
    return this.#tree.locate(pos);
  }

  #endAt(c: number): number {
    const n = this.#tree.next(c);
    return n >= 0 ? this.#tree.posAt(n) : this.#end;
  }

  #sblock(c: number): Sblock {
    const pos = this.#tree.posAt(c);
    const end = this.#endAt(c);
    return { pos, size: end === UNBOUNDED ? UNBOUNDED : end - pos, status: BLOCK_STATUS_CHARS[this.#tree.codeAt(c)] as BlockStatus };
  }

  #arithEnd(c: number): number {
    const e = this.#endAt(c);
    return e === UNBOUNDED ? FAR_END : e;
  }

  /** Split the block at `c` at `pos`; both parts keep its status. */
  #split(c: number, pos: number): void {
    const code = this.#tree.codeAt(c);
    ++this.#counts[code]!;
    this.#tree.insertAfter(c, pos, code);
  }

  /** Move the start of the block at `c` to `pos` (between its neighbours' limits). */
  #moveBoundary(c: number, pos: number): void {
    const old = this.#tree.posAt(c);
    const p = this.#tree.prev(c);
    const delta = pos - old;
    this.#sizes[this.#tree.codeAt(p)]! += delta;
    this.#sizes[this.#tree.codeAt(c)]! -= delta;
    this.#tree.setPos(c, pos);
  }

  /** Join the block at `c` into the block before it (same status). */
  #join(c: number): void {
    const code = this.#tree.codeAt(c);
    --this.#counts[code]!;
    this.#tree.remove(c);
  }

  #setCode(c: number, code: number): void {
    const old = this.#tree.codeAt(c);
    const size = this.#arithEnd(c) - this.#tree.posAt(c);
    this.#sizes[old]! -= size;
    this.#sizes[code]! += size;
    --this.#counts[old]!;
    ++this.#counts[code]!;
    this.#tree.setCode(c, code);
  }
}

/** ddrescue's `Block::end(e)`: move the block so that it ends at `e`, keeping its size if it can. */
function setEnd(b: Block, e: number): Block {
  if (b.size <= e) return { pos: e - b.size, size: b.size };
  return { pos: 0, size: e };
}
