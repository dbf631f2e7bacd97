import { BlockStatus, MapfileStatus, type Sblock, alignEnd, alignPos } from '@ddferry/mapfile';

import type { Rescuebook } from './rescuebook.js';
import { nextBlockToVisit } from './visit.js';

/**
 * The trimming phase (`trim_errors`, spec 2.5): for each non-trimmed block, read
 * sectors forwards from its start and backwards from its end until each edge meets an
 * error; what is left between becomes non-scraped.
 */
export async function trimErrors(rb: Rescuebook): Promise<number> {
  const reverse = rb.options.reverse;
  const message = reverse ? 'Trimming failed blocks... (backwards)' : 'Trimming failed blocks... (forwards)';
  const hardbs = rb.hardbs;
  rb.firstPost = true;
  for (let sb: Sblock | null = nextBlockToVisit(rb, null, reverse, false); sb; ) {
    if (!rb.domain.includes(sb)) {
      if (!reverse ? rb.domain.end <= sb.pos : sb.pos + sb.size <= rb.domain.pos) break;
      sb = nextBlockToVisit(rb, sb, reverse, false);
      continue;
    }
    if (sb.status !== BlockStatus.nonTrimmed) {
      sb = nextBlockToVisit(rb, sb, reverse, false);
      continue;
    }
    const lbad = sb.pos > 0 && rb.statusAt(sb.pos - 1) === BlockStatus.badSector;
    const rbad = rb.statusAt(sb.pos + sb.size) === BlockStatus.badSector;
    if (lbad && rbad) {
      // leave it for scraping: a raw change, counters not updated (ddrescue's quirk)
      rb.map.setBlockStatus(sb.pos, BlockStatus.nonScraped);
      sb = nextBlockToVisit(rb, sb, reverse, false);
      continue;
    }
    let errorFound = lbad;
    let pos = sb.pos;
    let end = sb.pos + sb.size;
    while (pos < end && !errorFound) {
      let b = { pos, size: Math.min(hardbs, end - pos) };
      if (b.pos + b.size !== end) b = alignEnd(b, hardbs);
      pos = b.pos + b.size;
      const r = await rb.copyAndUpdate(b, message, MapfileStatus.trimming, 1, true);
      if (r.result) return r.result;
      rb.updateRates();
      if (r.error > 0) {
        errorFound = true;
        if (rb.options.pauseOnError > 0) await rb.pauseOnError();
      }
      if (!(await rb.updateMapfile())) return -2;
    }
    errorFound = rbad;
    while (pos < end && !errorFound) {
      const size = Math.min(hardbs, end - pos);
      let b = { pos: end - size, size };
      if (b.pos !== pos) b = alignPos(b, hardbs);
      end = b.pos;
      const r = await rb.copyAndUpdate(b, message, MapfileStatus.trimming, 1, false);
      if (r.result) return r.result;
      rb.updateRates();
      if (r.error > 0) {
        errorFound = true;
        if (rb.options.pauseOnError > 0) await rb.pauseOnError();
      }
      if (!(await rb.updateMapfile())) return -2;
    }
    if (pos < end) {
      const rest = rb.map.sblockAt(end - 1);
      if (rest && rb.domain.includes(rest) && rest.status === BlockStatus.nonTrimmed) rb.changeChunkStatus(rest, BlockStatus.nonScraped);
    }
    sb = nextBlockToVisit(rb, sb, reverse, true);
  }
  rb.showStatus(-1, message, true);
  return 0;
}
