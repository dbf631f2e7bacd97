/**
 * Blocks: byte ranges `[pos, pos + size)` of the input.
 *
 * Positions and sizes are exact integers up to 2^53-1. GNU ddrescue's "to the end"
 * (a block whose end is 2^63-1, `LLONG_MAX`, as for an input of unknown size or
 * `-s -1`) is represented exactly by an end of `UNBOUNDED` (Infinity).
 */

/** The end of a block that reaches GNU ddrescue's maximum position, 2^63-1. */
export const UNBOUNDED = Number.POSITIVE_INFINITY;

/** 2^63-1 as a bigint: what an `UNBOUNDED` end is written as. */
export const LLONG_MAX = (1n << 63n) - 1n;

export interface Block {
  readonly pos: number;
  readonly size: number;
}

/** True if `n` is an exact integer position or size (0 to 2^53-1). */
export function isExactCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/**
 * Make a block, checking the invariant: `pos` and `size` are integers ≥ 0 and
 * `pos + size ≤ 2^53-1`, or `size` is `UNBOUNDED`.
 * @throws RangeError when the invariant does not hold.
 */
export function makeBlock(pos: number, size: number): Block {
  if (!isExactCount(pos)) throw new RangeError(`invalid block position ${pos}`);
  if (size !== UNBOUNDED && (!isExactCount(size) || !Number.isSafeInteger(pos + size))) {
    throw new RangeError(`invalid block size ${size} at ${pos}`);
  }
  return { pos, size };
}

/** Make the block `[pos, end)`; `end` may be `UNBOUNDED`. */
export function blockFromTo(pos: number, end: number): Block {
  return makeBlock(pos, end === UNBOUNDED ? UNBOUNDED : end - pos);
}

export function blockEnd(b: Block): number {
  return b.pos + b.size;
}

/** True if `a` lies wholly inside `b`... stated the ddrescue way: `b.includes(a)`. */
export function includes(outer: Block, inner: Block): boolean {
  return outer.pos <= inner.pos && outer.pos + outer.size >= inner.pos + inner.size;
}

export function includesPos(b: Block, pos: number): boolean {
  return b.pos <= pos && b.pos + b.size > pos;
}

export function strictlyIncludesPos(b: Block, pos: number): boolean {
  return b.pos < pos && b.pos + b.size > pos;
}

export function overlaps(a: Block, b: Block): boolean {
  return a.pos < b.pos + b.size && b.pos < a.pos + a.size;
}

/** True if `a` ends at or before `b` starts (ddrescue's `a < b`). */
export function precedes(a: Block, b: Block): boolean {
  return a.pos + a.size <= b.pos;
}

/** True if `b` starts where `a` ends. */
export function follows(b: Block, a: Block): boolean {
  return b.pos === a.pos + a.size;
}

/** The part of `a` inside `b` (size 0 if none). */
export function crop(a: Block, b: Block): Block {
  const pos = Math.max(a.pos, b.pos);
  const end = Math.min(a.pos + a.size, b.pos + b.size);
  return { pos, size: end > pos ? end - pos : 0 };
}

/** Move the start up to a multiple of `alignment`, if the block stays non-empty. */
export function alignPos(b: Block, alignment: number): Block {
  if (alignment > 1) {
    const disp = alignment - (b.pos % alignment);
    if (disp < alignment && disp < b.size) return { pos: b.pos + disp, size: b.size - disp };
  }
  return b;
}

/** Move the end down to a multiple of `alignment`, if the block stays non-empty. */
export function alignEnd(b: Block, alignment: number): Block {
  if (alignment > 1 && b.size !== UNBOUNDED) {
    const rest = (b.pos + b.size) % alignment;
    if (b.size > rest) return { pos: b.pos, size: b.size - rest };
  }
  return b;
}

/** The size written for a block: exact, with an `UNBOUNDED` one as 2^63-1-pos. */
export function exactSize(b: Block): bigint {
  return b.size === UNBOUNDED ? LLONG_MAX - BigInt(b.pos) : BigInt(b.size);
}
