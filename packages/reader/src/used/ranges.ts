/**
 * Sets of byte ranges for the used-space scan: collected in any order, returned sorted,
 * disjoint and merged (touching ranges joined).
 */
import type { Block } from '@ddferry/mapfile';

/** Sort, then join overlapping and touching blocks; empty blocks are dropped. */
export function mergeBlocks(blocks: Iterable<Block>): Block[] {
  const sorted = [...blocks].filter((b) => b.size > 0).sort((a, b) => a.pos - b.pos);
  const out: Block[] = [];
  for (const b of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && b.pos <= last.pos + last.size) {
      const end = Math.max(last.pos + last.size, b.pos + b.size);
      out[out.length - 1] = { pos: last.pos, size: end - last.pos };
    } else out.push({ pos: b.pos, size: b.size });
  }
  return out;
}

/** The parts of `within` not covered by `blocks` (`blocks` sorted and disjoint). */
export function subtractBlocks(within: Block, blocks: readonly Block[]): Block[] {
  const out: Block[] = [];
  let at = within.pos;
  const end = within.pos + within.size;
  for (const b of blocks) {
    if (b.pos + b.size <= at) continue;
    if (b.pos >= end) break;
    if (b.pos > at) out.push({ pos: at, size: b.pos - at });
    at = Math.max(at, b.pos + b.size);
  }
  if (at < end) out.push({ pos: at, size: end - at });
  return out;
}

/** Widen each block to multiples of `unit` (the sector size), crop to `[0, limit)`, merge. */
export function alignBlocks(blocks: readonly Block[], unit: number, limit: number): Block[] {
  return mergeBlocks(blocks.map((b) => {
    const pos = Math.floor(b.pos / unit) * unit;
    const end = Math.min(limit, Math.ceil((b.pos + b.size) / unit) * unit);
    return { pos, size: Math.max(0, end - pos) };
  }));
}

/** Total bytes of sorted disjoint blocks. */
export function totalSize(blocks: readonly Block[]): number {
  let n = 0;
  for (const b of blocks) n += b.size;
  return n;
}

/**
 * Ranges collected one at a time. Adding in increasing order (what bitmap scans do)
 * extends the last range in place, so a run of used clusters costs one entry.
 */
export class RangeList {
  readonly #blocks: Block[] = [];
  #sorted = true;

  add(pos: number, size: number): void {
    if (!(size > 0)) return;
    const last = this.#blocks[this.#blocks.length - 1];
    if (last !== undefined) {
      const lastEnd = last.pos + last.size;
      if (pos >= last.pos && pos <= lastEnd) {
        if (pos + size > lastEnd) this.#blocks[this.#blocks.length - 1] = { pos: last.pos, size: pos + size - last.pos };
        return;
      }
      if (pos < last.pos) this.#sorted = false;
    }
    this.#blocks.push({ pos, size });
  }

  /** The ranges sorted, disjoint and merged. */
  blocks(): Block[] {
    return this.#sorted ? [...this.#blocks] : mergeBlocks(this.#blocks);
  }
}
