import { type Block, UNBOUNDED, crop, includes, makeBlock, overlaps, precedes } from './block.js';
import type { SblockVector } from './sblock-vector.js';

const FINISHED = 4;

/**
 * A rescue domain: ordered, non-overlapping blocks (GNU ddrescue's `Domain`).
 * An empty domain is the single block `[0, 0)`.
 */
export class Domain {
  readonly blocks: readonly Block[];

  constructor(blocks: readonly Block[]) {
    this.blocks = blocks.length > 0 ? blocks : [{ pos: 0, size: 0 }];
  }

  /**
   * The domain `-i pos -s size` (`size` -1 or `UNBOUNDED` for no limit), as ddrescue
   * builds it. With `domainMap` (the blocks of a `-m` mapfile), the domain is its
   * finished (`+`) blocks, compacted, then cropped to `[pos, pos + size)`.
   */
  static fromOptions(pos: number, size: number, domainMap?: SblockVector): Domain {
    const limit = makeBlock(pos, size < 0 || size === UNBOUNDED || pos + size >= Number.MAX_SAFE_INTEGER ? UNBOUNDED : size);
    if (!domainMap) return new Domain([limit]);
    const c = domainMap.compact();
    const blocks: Block[] = [];
    for (let i = 0; i < c.length; ++i) {
      if (c.code(i) === FINISHED) blocks.push({ pos: c.pos(i), size: c.end(i) === UNBOUNDED ? UNBOUNDED : c.size(i) });
    }
    if (blocks.length === 0) return new Domain([]);
    return new Domain(blocks).crop(limit);
  }

  get pos(): number {
    return this.blocks[0]!.pos;
  }

  get end(): number {
    const last = this.blocks[this.blocks.length - 1]!;
    return last.pos + last.size;
  }

  get size(): number {
    return this.end - this.pos;
  }

  /** Sum of the sizes of the blocks (`UNBOUNDED` if the last one is). */
  inSize(): number {
    let sum = 0;
    for (const b of this.blocks) sum += b.size;
    return sum;
  }

  /** `inSize` exactly, with an unbounded last block counted up to 2^63-1. */
  inSizeExact(): bigint {
    let sum = 0n;
    for (const b of this.blocks) sum += b.size === UNBOUNDED ? ((1n << 63n) - 1n) - BigInt(b.pos) : BigInt(b.size);
    return sum;
  }

  isEmpty(): boolean {
    return this.end <= this.pos;
  }

  /** True if `b` lies wholly inside one block of the domain. Binary search. */
  includes(b: Block): boolean {
    let l = 0;
    let r = this.blocks.length;
    while (l < r) {
      const m = (l + r) >> 1;
      const db = this.blocks[m]!;
      if (includes(db, b)) return true;
      if (precedes(db, b)) l = m + 1;
      else if (precedes(b, db)) r = m;
      else break;
    }
    return false;
  }

  /** True if `b` overlaps some block of the domain. Binary search. */
  overlaps(b: Block): boolean {
    let l = 0;
    let r = this.blocks.length;
    while (l < r) {
      const m = (l + r) >> 1;
      const db = this.blocks[m]!;
      if (overlaps(db, b)) return true;
      if (precedes(db, b)) l = m + 1;
      else if (precedes(b, db)) r = m;
      else break;
    }
    return false;
  }

  /** True if both domains have the same blocks. */
  equals(d: Domain): boolean {
    if (d.blocks.length !== this.blocks.length) return false;
    return this.blocks.every((b, i) => b.pos === d.blocks[i]!.pos && b.size === d.blocks[i]!.size);
  }

  /** The part of this domain inside `b` (GNU ddrescue's `Domain::crop`). */
  crop(b: Block): Domain {
    const v = [...this.blocks];
    let r = v.length;
    while (r > 0 && precedes(b, v[r - 1]!)) --r;
    if (r > 0) v[r - 1] = crop(v[r - 1]!, b);
    if (r <= 0 || v[r - 1]!.size <= 0) return new Domain([]);
    v.length = r;
    if (b.pos <= 0) return new Domain(v);
    --r;
    let l = 0;
    while (l < r && precedes(v[l]!, b)) ++l;
    if (l < r) v[l] = crop(v[l]!, b);
    return new Domain(v.slice(l));
  }

  /** Every start and end of the domain's blocks, ascending: where to split a map. */
  *borders(): IterableIterator<number> {
    for (const b of this.blocks) {
      yield b.pos;
      yield b.pos + b.size;
    }
  }
}
