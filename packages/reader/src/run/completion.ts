import { BlockStatus } from '@ddferry/mapfile';

import type { CommonMap } from '../job/common-map.js';
import { formatBytes } from '../progress/units.js';

/**
 * What to say once everything read is safe on PC_B: the rescue is complete only when
 * no area is left to try (bad sectors remain bad: ddrescue calls that finished too);
 * areas left non-trimmed or non-scraped (`-n`, `-N`, a stop condition) are named, with
 * what to run for them.
 */
export function completionMessage(map: CommonMap, rescueId: string): string {
  const left = map.sizeOf(BlockStatus.nonTried) + map.sizeOf(BlockStatus.nonTrimmed) + map.sizeOf(BlockStatus.nonScraped);
  if (left === 0) return `ddferry-reader: The rescue is complete: PC_B holds every piece; nothing is left to read or carry (${rescueId}).`;
  const parts = [
    [BlockStatus.nonTried, 'non-tried'], [BlockStatus.nonTrimmed, 'non-trimmed'], [BlockStatus.nonScraped, 'non-scraped'],
  ].map(([st, name]) => [map.sizeOf(st as BlockStatus), name] as const).filter(([n]) => n > 0).map(([n, name]) => `${formatBytes(n)} ${name}`);
  return `ddferry-reader: PC_B holds everything this run read; ${parts.join(', ')} remain to try: run the same command without -n or -N (or with -r N to retry bad sectors) to go on (${rescueId}).`;
}
