/**
 * GNU ddrescue's load-time normalisation of a rescue mapfile (spec 1.7, the `Mapbook`
 * constructor), in its order: extend to the input size, compact, join subsectors,
 * split by domain borders.
 */
import { UNBOUNDED } from './block.js';
import type { Domain } from './domain.js';
import { mapfileSizeError } from './errors.js';
import { SblockVector } from './sblock-vector.js';

const NON_TRIED = 0;
const FINISHED = 4;

/**
 * Make the list cover `[0, insize)` (`insize` 0 = unknown: up to the end), as ddrescue's
 * `extend_sblock_vector`: a leading `?` block if the list starts above 0; a trailing
 * `?` block up to `insize`; a trailing non-`+` block past `insize` is cut (or dropped if it
 * starts exactly there).
 * @throws MapfileError `ERR_MAPFILE_BEGINS_PAST_END` or `ERR_MAPFILE_RESCUED_PAST_END`.
 */
export function extendToInputSize(v: SblockVector, insize: number, file = 'mapfile'): SblockVector {
  const out = new SblockVector(v.length + 2);
  if (v.length === 0) {
    out.push(0, insize > 0 ? insize : UNBOUNDED, NON_TRIED);
    return out;
  }
  if (v.pos(0) > 0) out.push(0, v.pos(0), NON_TRIED);
  for (let i = 0; i < v.length; ++i) out.push(v.pos(i), v.end(i), v.code(i));
  const last = out.length - 1;
  const end = out.end(last);
  if (insize > 0) {
    if (out.pos(last) >= insize) {
      if (out.pos(last) === insize && out.code(last) !== FINISHED) {
        out.truncateAt(last);
        return out;
      }
      throw mapfileSizeError('ERR_MAPFILE_BEGINS_PAST_END', file, insize);
    }
    if (end > insize) {
      if (out.code(last) === FINISHED) throw mapfileSizeError('ERR_MAPFILE_RESCUED_PAST_END', file, insize);
      out.setLastEnd(insize);
    } else if (end < insize) out.push(end, insize, NON_TRIED);
  } else if (end !== UNBOUNDED) out.push(end, UNBOUNDED, NON_TRIED);
  return out;
}

/**
 * ddrescue's `join_subsectors`: at every block border that is not a multiple of `hardbs`
 * and has no `+` on either side, give the partial sector to the less processed side;
 * a block smaller than the piece it would keep is joined to its neighbour.
 */
export function joinSubsectors(v: SblockVector, hardbs: number): SblockVector {
  const pos: number[] = [];
  const end: number[] = [];
  const code: number[] = [];
  for (let i = 0; i < v.length; ++i) {
    pos.push(v.pos(i));
    end.push(v.end(i));
    code.push(v.code(i));
  }
  for (let i = 0; i + 1 < pos.length;) {
    const boundary = end[i]!;
    const rest = boundary === UNBOUNDED ? 0 : boundary % hardbs;
    if (rest <= 0 || code[i] === FINISHED || code[i + 1] === FINISHED) {
      ++i;
      continue;
    }
    if (code[i]! <= code[i + 1]!) {
      if (end[i + 1]! - pos[i + 1]! > hardbs - rest) {
        end[i] = pos[i + 1] = boundary + hardbs - rest;
        ++i;
        continue;
      }
    } else {
      if (end[i]! - pos[i]! > rest) {
        end[i] = pos[i + 1] = boundary - rest;
        ++i;
        continue;
      }
      code[i] = code[i + 1]!;
    }
    end[i] = end[i + 1]!;
    pos.splice(i + 1, 1);
    end.splice(i + 1, 1);
    code.splice(i + 1, 1);
  }
  const out = new SblockVector(pos.length);
  for (let i = 0; i < pos.length; ++i) out.push(pos[i]!, end[i]!, code[i]!);
  return out;
}

export interface RescueLoadOptions {
  /** Input size in bytes; 0 if unknown. */
  readonly insize: number;
  /** Sector size. */
  readonly hardbs: number;
  /** The rescue domain, already cropped to the input size. */
  readonly domain: Domain;
  /** ddrescue's `-C` (complete only): keep the list as read and crop the domain to it. */
  readonly completeOnly?: boolean;
  /** Name used in errors. */
  readonly file?: string;
}

/**
 * Normalise a mapfile's blocks for a rescue (spec 1.7 steps 3 to 7).
 * @returns the blocks, split at every domain border, and the domain (cropped with `-C`,
 *   emptied if the list is empty).
 */
export function normalizeForRescue(blocks: SblockVector, options: RescueLoadOptions): { blocks: SblockVector; domain: Domain } {
  let domain = options.domain;
  let v = blocks;
  if (options.completeOnly) domain = domain.crop(v.extent());
  else v = extendToInputSize(v, options.insize, options.file);
  v = joinSubsectors(v.compact(), options.hardbs).splitAt(domain.borders());
  if (v.length === 0) domain = domain.crop({ pos: 0, size: 0 });
  return { blocks: v, domain };
}
