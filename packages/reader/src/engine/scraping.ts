import { BlockStatus, MapfileStatus, type Sblock, alignEnd } from '@ddferry/mapfile';

import type { Rescuebook } from './rescuebook.js';
import { nextBlockToVisit } from './visit.js';

/**
 * The scraping phase (`scrape_errors`, spec 2.6): every non-scraped block is read
 * forwards, one sector at a time, whatever the direction of the visit.
 */
export async function scrapeErrors(rb: Rescuebook): Promise<number> {
  const reverse = rb.options.reverse;
  const message = reverse ? 'Scraping failed blocks... (backwards)' : 'Scraping failed blocks... (forwards)';
  const hardbs = rb.hardbs;
  rb.firstPost = true;
  for (let sb: Sblock | null = nextBlockToVisit(rb, null, reverse, false); sb; ) {
    if (!rb.domain.includes(sb)) {
      if (!reverse ? rb.domain.end <= sb.pos : sb.pos + sb.size <= rb.domain.pos) break;
      sb = nextBlockToVisit(rb, sb, reverse, false);
      continue;
    }
    if (sb.status !== BlockStatus.nonScraped) {
      sb = nextBlockToVisit(rb, sb, reverse, false);
      continue;
    }
    let pos = sb.pos;
    const end = sb.pos + sb.size;
    while (pos < end) {
      let b = { pos, size: Math.min(hardbs, end - pos) };
      if (b.pos + b.size !== end) b = alignEnd(b, hardbs);
      pos = b.pos + b.size;
      const r = await rb.copyAndUpdate(b, message, MapfileStatus.scraping, 1, true);
      if (r.result) return r.result;
      rb.updateRates();
      if (r.error > 0 && rb.options.pauseOnError > 0) await rb.pauseOnError();
      if (!(await rb.updateMapfile())) return -2;
    }
    sb = nextBlockToVisit(rb, sb, reverse, true);
  }
  rb.showStatus(-1, message, true);
  return 0;
}
