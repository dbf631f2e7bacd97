import { BlockStatus, MapfileStatus, alignEnd, alignPos } from '@ddferry/mapfile';

import type { Rescuebook } from './rescuebook.js';
import { visitBlocks } from './visit.js';

/**
 * The trimming phase (`trim_errors`, spec 2.5): for each non-trimmed block, read
 * sectors forwards from its start and backwards from its end until each edge meets an
 * error; what is left between becomes non-scraped. `-R` reverses only the order of
 * the blocks, not the reads inside one.
 */
export async function trimErrors(rb: Rescuebook): Promise<number> {
  const message = rb.options.reverse ? 'Trimming failed blocks... (backwards)' : 'Trimming failed blocks... (forwards)';
  const hardbs = rb.hardbs;
  rb.firstPost = true;
  const r = await visitBlocks(rb, BlockStatus.nonTrimmed, async (sb) => {
    const lbad = sb.pos > 0 && rb.statusAt(sb.pos - 1) === BlockStatus.badSector;
    const rbad = rb.statusAt(sb.pos + sb.size) === BlockStatus.badSector;
    if (lbad && rbad) {
      // left for scraping by a raw change that does not update the counters (ddrescue's quirk)
      rb.setBlockStatusRaw(sb.pos, BlockStatus.nonScraped);
      return { result: 0, worked: false };
    }
    let pos = sb.pos;
    let end = sb.pos + sb.size;
    let errorFound = lbad;
    while (pos < end && !errorFound) {
      let b = { pos, size: Math.min(hardbs, end - pos) };
      if (b.pos + b.size !== end) b = alignEnd(b, hardbs);
      pos = b.pos + b.size;
      const step0 = rb.readSectorStep(b, message, MapfileStatus.trimming, 1, true);
      const step = step0 instanceof Promise ? await step0 : step0;
      if (step.result) return { result: step.result, worked: true };
      errorFound = step.error > 0;
    }
    errorFound = rbad;
    while (pos < end && !errorFound) {
      const size = Math.min(hardbs, end - pos);
      let b = { pos: end - size, size };
      if (b.pos !== pos) b = alignPos(b, hardbs);
      end = b.pos;
      const step0 = rb.readSectorStep(b, message, MapfileStatus.trimming, 1, false);
      const step = step0 instanceof Promise ? await step0 : step0;
      if (step.result) return { result: step.result, worked: true };
      errorFound = step.error > 0;
    }
    if (pos < end) {
      const rest = rb.map.sblockAt(end - 1);
      if (rest && rb.domain.includes(rest) && rest.status === BlockStatus.nonTrimmed) rb.changeChunkStatus(rest, BlockStatus.nonScraped);
    }
    return { result: 0, worked: true };
  });
  if (r) return r;
  rb.showStatus(-1, message, true);
  return 0;
}
