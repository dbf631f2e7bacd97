import { type Block, UNBOUNDED, alignEnd, alignPos, crop, includes } from './block.js';
import { BoundaryTree, type Cursor } from './boundary-tree.js';
import type { Domain } from './domain.js';
import { SblockVector, type Sblock } from './sblock-vector.js';
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
 * them in memory, with every operation logarithmic in the number of blocks.
 *
 * | operation | cost |
 * |---|---|
 * | `changeChunkStatus`, `sblockAt` | O(log n) |
 * | `findChunk`, `rfindChunk`, `nextBlockOfStatus`, `prevBlockOfStatus` | O(log n) per skipped candidate |
 * | `sizeOf`, `countOf`, `length` | O(1) |
 */
export class StatusMap {
  #tree: BoundaryTree;
  #end: number;
  readonly #sizes = new Float64Array(5);
  readonly #counts = new Float64Array(5);

  /** Build from a contiguous list of blocks. @throws Error if the list has a gap. */
  constructor(blocks: SblockVector) {
    const pos: number[] = [];
    const code: number[] = [];
    for (let i = 0; i < blocks.length; ++i) {
      if (i > 0 && blocks.pos(i) !== blocks.end(i - 1)) throw new Error(`internal: status map needs contiguous blocks (gap at ${blocks.end(i - 1)})`);
      if (blocks.size(i) === 0 && blocks.length > 1) continue;
      pos.push(blocks.pos(i));
      code.push(blocks.code(i));
    }
    this.#tree = new BoundaryTree(pos, code);
    this.#end = blocks.length > 0 ? blocks.end(blocks.length - 1) : 0;
    for (let i = 0; i < pos.length; ++i) {
      const end = i + 1 < pos.length ? pos[i + 1]! : this.#farEnd();
      this.#sizes[code[i]!]! += end - pos[i]!;
      ++this.#counts[code[i]!]!;
    }
  }

  /** Number of blocks. */
  get length(): number {
    return this.#tree.length;
  }

  /** Total size of the blocks with status `st` (`UNBOUNDED` if the last one is). */
  sizeOf(st: BlockStatus): number {
    const code = processedState(st);
    if (this.#end === UNBOUNDED && this.#tree.length > 0 && this.#tree.codeAt(this.#tree.last()!) === code) return UNBOUNDED;
    return this.#sizes[code]!;
  }

  /** Number of blocks with status `st`. */
  countOf(st: BlockStatus): number {
    return this.#counts[processedState(st)]!;
  }

  /** `[first.pos, last.end)`. */
  extent(): Block {
    const f = this.#tree.first();
    if (!f) return { pos: 0, size: 0 };
    const pos = this.#tree.posAt(f);
    return { pos, size: this.#end === UNBOUNDED ? UNBOUNDED : this.#end - pos };
  }

  /** The block that includes `pos`, or null. */
  sblockAt(pos: number): Sblock | null {
    const c = this.#find(pos);
    return c ? this.#sblock(c) : null;
  }

  /** The first block of status `st` that includes or follows `pos`, or null. */
  nextBlockOfStatus(pos: number, st: BlockStatus): Sblock | null {
    const start = this.#find(pos) ?? (pos < this.extent().pos ? this.#tree.first() : null);
    const c = start && this.#tree.nextWithMask(start, 1 << processedState(st));
    return c ? this.#sblock(c) : null;
  }

  /** The last block of status `st` that includes or precedes `pos`, or null. */
  prevBlockOfStatus(pos: number, st: BlockStatus): Sblock | null {
    const start = this.#find(pos) ?? (pos >= this.#end ? this.#tree.last() : null);
    const c = start && this.#tree.prevWithMask(start, 1 << processedState(st));
    return c ? this.#sblock(c) : null;
  }

  /** Call `fn(pos, end, code)` for each block in order. */
  forEachBlock(fn: (pos: number, end: number, code: number) => void): void {
    let prevPos = -1;
    let prevCode = 0;
    this.#tree.forEach((pos, code) => {
      if (prevPos >= 0) fn(prevPos, pos, prevCode);
      prevPos = pos;
      prevCode = code;
    });
    if (prevPos >= 0) fn(prevPos, this.#end, prevCode);
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
    if (!domain.includes(b) || !c || !domain.includes(this.#sblock(c))) {
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
    const isGoodOrOut = (n: Cursor | null): boolean => !n || tree.codeAt(n) !== BAD || !domain.includes(this.#sblock(n));
    let blGood = isGoodOrOut(prev);
    let brGood = isGoodOrOut(next);
    const joins = (n: Cursor | null): n is Cursor => n !== null && tree.codeAt(n) === code && domain.includes(this.#sblock(n));

    if (blk.pos < b.pos) {
      if (blk.pos + blk.size === bEnd && joins(next)) {
        this.#moveBoundary(next, b.pos);
        return 0;
      }
      this.#split(c, b.pos);
      c = this.#find(b.pos)!;
      blk = this.#sblock(c);
      blGood = oldGood;
    }
    if (blk.pos + blk.size > bEnd) {
      const left = tree.prev(c);
      if (left && tree.posAt(left) < blk.pos && joins(left)) {
        this.#moveBoundary(c, bEnd);
      } else {
        this.#split(c, bEnd);
        this.#setCode(this.#find(b.pos)!, code);
      }
      brGood = oldGood;
    } else {
      this.#setCode(c, code);
      c = this.#find(b.pos)!;
      const right = tree.next(c);
      if (joins(right)) this.#join(right);
      const left = tree.prev(c);
      if (joins(left)) this.#join(this.#find(b.pos)!);
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
    let c = this.#find(b.pos);
    if (!c) return { block: { pos: b.pos, size: 0 }, found: false };
    const mask = unfinished ? 0b01111 | (1 << processedState(st)) : 1 << processedState(st);
    let found = false;
    let hit: Sblock | null = null;
    for (let k: Cursor | null = this.#tree.nextWithMask(c, mask); k; k = this.#tree.nextWithMask(this.#tree.next(k) ?? k, mask)) {
      const sb = this.#sblock(k);
      if (domain.includes(sb)) {
        found = true;
        const p = this.#tree.prev(k);
        if (!afterFinished || !p || this.#tree.codeAt(p) === FINISHED) {
          hit = sb;
          c = k;
          break;
        }
      }
      if (!this.#tree.next(k)) break;
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
    if (!c) return { block: { pos: b.pos, size: 0 }, found: false };
    const mask = 1 << processedState(st);
    let found = false;
    let hit: Sblock | null = null;
    for (let k: Cursor | null = this.#tree.prevWithMask(c, mask); k; ) {
      const sb = this.#sblock(k);
      if (domain.includes(sb)) {
        found = true;
        const n = this.#tree.next(k);
        if (!beforeFinished || !n || this.#tree.codeAt(n) === FINISHED) {
          hit = sb;
          break;
        }
      }
      const p = this.#tree.prev(k);
      k = p && this.#tree.prevWithMask(p, mask);
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
    if (!c) return null;
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

  #farEnd(): number {
    return this.#end === UNBOUNDED ? FAR_END : this.#end;
  }

  #find(pos: number): Cursor | null {
    if (pos >= this.#end) return null;
    return this.#tree.locate(pos);
  }

  #endAt(c: Cursor): number {
    const n = this.#tree.next(c);
    return n ? this.#tree.posAt(n) : this.#end;
  }

  #sblock(c: Cursor): Sblock {
    const pos = this.#tree.posAt(c);
    const end = this.#endAt(c);
    return { pos, size: end === UNBOUNDED ? UNBOUNDED : end - pos, status: BLOCK_STATUS_CHARS[this.#tree.codeAt(c)] as BlockStatus };
  }

  #arithEnd(c: Cursor): number {
    const e = this.#endAt(c);
    return e === UNBOUNDED ? FAR_END : e;
  }

  /** Split the block at `c` at `pos`; both parts keep its status. */
  #split(c: Cursor, pos: number): void {
    const code = this.#tree.codeAt(c);
    ++this.#counts[code]!;
    this.#tree.insertAfter(c, pos, code);
  }

  /** Move the start of the block at `c` to `pos` (between its neighbours' limits). */
  #moveBoundary(c: Cursor, pos: number): void {
    const old = this.#tree.posAt(c);
    const p = this.#tree.prev(c)!;
    const delta = pos - old;
    this.#sizes[this.#tree.codeAt(p)]! += delta;
    this.#sizes[this.#tree.codeAt(c)]! -= delta;
    this.#tree.setPos(c, pos);
  }

  /** Join the block at `c` into the block before it (same status). */
  #join(c: Cursor): void {
    const code = this.#tree.codeAt(c);
    --this.#counts[code]!;
    this.#tree.remove(c);
  }

  #setCode(c: Cursor, code: number): void {
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
