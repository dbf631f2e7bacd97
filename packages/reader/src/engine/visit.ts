import type { BlockStatus, Sblock } from '@ddferry/mapfile';

import type { Rescuebook } from './rescuebook.js';

/**
 * The block trimming and scraping visit next. ddrescue walks the block list by index
 * and re-reads the same index after working on a block; by position that is:
 * forwards, the first block starting at or after the worked block's start (the next
 * block when it was skipped); backwards, the last block ending at or before the
 * worked block's end (the previous block when skipped). Blocks before (after) it keep
 * their count because joins always keep the leftmost block and changes stay inside it.
 * @param current the block just visited, or null to start
 * @param worked true if `current` was read (it may have been split or joined)
 */
export function nextBlockToVisit(rb: Rescuebook, current: Sblock | null, reverse: boolean, worked: boolean): Sblock | null {
  const map = rb.map;
  if (!reverse) {
    const from = current === null ? map.extent().pos : worked ? current.pos : current.pos + current.size;
    const b = map.sblockAt(from);
    if (!b) return null;
    return b.pos >= from ? b : map.sblockAt(b.pos + b.size);
  }
  if (current === null) {
    const ext = map.extent();
    return ext.size > 0 ? map.sblockAt(ext.pos + ext.size - 1) : null;
  }
  const to = worked ? current.pos + current.size : current.pos;
  if (to <= 0) return null;
  const b = map.sblockAt(to - 1);
  if (!b) return null;
  return b.pos + b.size <= to ? b : b.pos > 0 ? map.sblockAt(b.pos - 1) : null;
}

/**
 * Visit the in-domain blocks of status `st` in ddrescue's order for trimming and
 * scraping (ascending, or descending with `-R`), stopping past the domain.
 * @param work called for each block; returns a step result (non-zero ends the visit)
 *   and whether it read the block (which changes where the next visit starts)
 * @returns 0, or the first non-zero step result
 */
export async function visitBlocks(rb: Rescuebook, st: BlockStatus, work: (sb: Sblock) => Promise<{ result: number; worked: boolean }>): Promise<number> {
  const reverse = rb.options.reverse;
  for (let sb = nextBlockToVisit(rb, null, reverse, false); sb; ) {
    if (!rb.domain.includes(sb)) {
      if (!reverse ? rb.domain.end <= sb.pos : sb.pos + sb.size <= rb.domain.pos) break;
      sb = nextBlockToVisit(rb, sb, reverse, false);
      continue;
    }
    if (sb.status !== st) {
      sb = nextBlockToVisit(rb, sb, reverse, false);
      continue;
    }
    const { result, worked } = await work(sb);
    if (result) return result;
    sb = nextBlockToVisit(rb, sb, reverse, worked);
  }
  return 0;
}
