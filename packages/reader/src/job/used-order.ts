import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { Domain, type StatusMap, parseMapfile } from '@ddferry/mapfile';

import { saveFileAtomic } from '../durable-file.js';
import { ReaderError } from '../errors.js';
import { formatUsedMapfile } from '../used/used-mapfile.js';
import type { UsedSpace } from '../used/used-space.js';

/** `JOBDIR/used.map` and `JOBDIR/metadata.map`: GNU ddrescue domain mapfiles (`+` inside) of the used-space scan. */
export const USED_MAP = 'used.map';
export const METADATA_MAP = 'metadata.map';

/** The used-space order of a job (`plan --used-first` / `--used-only`). */
export interface UsedOrder {
  readonly usedText: string;
  readonly metadataText: string;
  /** `--used-only`: the free space is never read. */
  readonly only: boolean;
}

/** Save the scan's domains in the job folder (both GNU ddrescue domain mapfiles, usable with `ddrescue -m`). */
export async function saveUsedMaps(jobDir: string, used: UsedSpace, sourceSize: number, commandLine: string): Promise<void> {
  await saveFileAtomic(join(jobDir, METADATA_MAP), formatUsedMapfile(used, sourceSize, commandLine, { domain: 'metadata' }));
  await saveFileAtomic(join(jobDir, USED_MAP), formatUsedMapfile(used, sourceSize, commandLine, { domain: 'used' }));
}

/**
 * The job's used-space order, if it has one.
 * @throws ReaderError `ERR_JOB_BAD` if job.json asks for it and the maps are missing.
 */
export async function loadUsedOrder(jobDir: string, order: 'first' | 'only' | undefined): Promise<UsedOrder | undefined> {
  if (order === undefined) return undefined;
  try {
    const [usedText, metadataText] = await Promise.all([readFile(join(jobDir, USED_MAP), 'latin1'), readFile(join(jobDir, METADATA_MAP), 'latin1')]);
    return { usedText, metadataText, only: order === 'only' };
  } catch (err) {
    throw new ReaderError('ERR_JOB_BAD', join(jobDir, USED_MAP), `${join(jobDir, USED_MAP)}: the job rescues used space first, but its used-space maps can't be read (${(err as Error).message}).`, {
      cause: err, hint: `Make them again with 'ddferry-reader used-map ${jobDir}'.`,
    });
  }
}

/** The used space as a domain. */
export function usedDomain(order: UsedOrder): Domain {
  return Domain.fromOptions(0, -1, parseMapfile(order.usedText, { file: USED_MAP, loose: '?' }).blocks);
}

/** How far the rescue is, in the used space and in the free space. */
export interface UsedProgress {
  readonly usedSize: number;
  readonly usedRescued: number;
  readonly freeSize: number;
  readonly freeRescued: number;
}

const FINISHED = 4;

/** `map`'s finished bytes inside and outside `used` (one walk of both, in order). */
export function usedProgress(map: StatusMap, used: Domain, sourceSize: number): UsedProgress {
  const ranges = used.blocks;
  let usedSize = 0;
  for (const r of ranges) usedSize += Math.max(0, Math.min(r.pos + r.size, sourceSize) - r.pos);
  let usedRescued = 0;
  let finished = 0;
  let i = 0;
  map.forEachBlock((pos, end, code) => {
    if (code !== FINISHED) return;
    finished += end - pos;
    while (i < ranges.length && ranges[i]!.pos + ranges[i]!.size <= pos) ++i;
    for (let k = i; k < ranges.length && ranges[k]!.pos < end; ++k) {
      const r = ranges[k]!;
      usedRescued += Math.max(0, Math.min(end, r.pos + r.size) - Math.max(pos, r.pos));
    }
  });
  return { usedSize, usedRescued, freeSize: sourceSize - usedSize, freeRescued: finished - usedRescued };
}
