/**
 * The used-space domain as a GNU ddrescue 1.27 domain mapfile: `+` over the used (or
 * only the metadata) ranges, `?` elsewhere, covering `[0, size)`. `ddrescue -m` takes it
 * as is.
 */
import { SblockVector, formatMapfile } from '@ddferry/mapfile';

import { totalSize } from './ranges.js';
import type { UsedSpace } from './used-space.js';

export interface UsedMapfileOptions {
  /** `used` (default): used data and metadata; `metadata`: the metadata alone, to rescue first. */
  readonly domain?: 'used' | 'metadata';
}

const FINISHED = 4;
const NON_TRIED = 0;

/**
 * Format the domain mapfile of `used` for a source of `size` bytes; `commandLine` goes
 * in its header. Ranges past `size` are cropped.
 */
export function formatUsedMapfile(used: UsedSpace, size: number, commandLine: string, options: UsedMapfileOptions = {}): Buffer {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`invalid source size ${size}`);
  const which = options.domain ?? 'used';
  const ranges = which === 'metadata' ? used.metadata : used.used;
  const blocks = new SblockVector(ranges.length * 2 + 2);
  let at = 0;
  for (const r of ranges) {
    const pos = Math.max(r.pos, at);
    const end = Math.min(size, r.pos + r.size);
    if (end <= pos) continue;
    if (pos > at) blocks.push(at, pos, NON_TRIED);
    blocks.push(pos, end, FINISHED);
    at = end;
  }
  if (at < size || blocks.length === 0) blocks.push(at, size, NON_TRIED);
  const inside = totalSize(ranges.map((r) => ({ pos: r.pos, size: Math.max(0, Math.min(size, r.pos + r.size) - r.pos) })));
  const message = `${which === 'metadata' ? 'Metadata' : 'Used space'}: ${inside} of ${size} bytes in ${ranges.length} range(s); `
    + `partitions: ${used.partitions.map((p) => `${p.fs}@${p.pos}`).join(' ') || 'none'}`;
  return formatMapfile({ currentPos: 0, currentStatus: '+', currentPass: 1, blocks }, { program: 'ddferry', commandLine, startTime: '', message });
}
