import { BlockStatus, MapfileStatus, alignEnd } from '@ddferry/mapfile';

import type { Rescuebook } from './rescuebook.js';
import { visitBlocks } from './visit.js';

/**
 * The scraping phase (`scrape_errors`, spec 2.6): every non-scraped block is read
 * forwards, one sector at a time, whatever the direction of the visit.
 */
export async function scrapeErrors(rb: Rescuebook): Promise<number> {
  const message = rb.options.reverse ? 'Scraping failed blocks... (backwards)' : 'Scraping failed blocks... (forwards)';
  const hardbs = rb.hardbs;
  rb.firstPost = true;
  const r = await visitBlocks(rb, BlockStatus.nonScraped, async (sb) => {
    let pos = sb.pos;
    const end = sb.pos + sb.size;
    while (pos < end) {
      let b = { pos, size: Math.min(hardbs, end - pos) };
      if (b.pos + b.size !== end) b = alignEnd(b, hardbs);
      pos = b.pos + b.size;
      const step0 = rb.readSectorStep(b, message, MapfileStatus.scraping, 1, true);
      const step = step0 instanceof Promise ? await step0 : step0;
      if (step.result) return { result: step.result, worked: true };
    }
    return { result: 0, worked: true };
  });
  if (r) return r;
  rb.showStatus(-1, message, true);
  return 0;
}
