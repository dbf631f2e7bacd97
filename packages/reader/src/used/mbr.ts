/**
 * The MBR partition table and its chain of extended boot records (EBRs). Each entry is
 * checked against the disk and, for logical partitions, against the extended partition;
 * the MBR and every EBR read are metadata. A chain that loops, leaves its extended
 * partition, lacks a signature or cannot be read stops there, and the rest of the
 * extended partition counts as used.
 */
import type { Block } from '@ddferry/mapfile';

import { u16, u32, u8 } from './bytes.js';
import { subtractBlocks } from './ranges.js';
import type { Scan } from './scan.js';

/** A partition found in a table: absolute byte range and its type as the table names it. */
export interface TablePartition {
  readonly pos: number;
  readonly size: number;
  /** `0x07` (MBR type byte) or the GPT partition type GUID. */
  readonly type: string;
}

/** What a partition table says: its partitions, and ranges no partition explains that must count as used. */
export interface PartitionTable {
  kind: 'mbr' | 'gpt' | 'none';
  readonly partitions: TablePartition[];
  /** Space outside the partitions is used too (an entry was implausible, so a partition may be missing). */
  gapsUsed: boolean;
  /** Ranges counted as used because a table describing them is damaged. */
  readonly unknown: Block[];
}

const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
/** GPT's protective entry. */
export const PROTECTIVE_TYPE = 0xee;
/** More logical partitions than this means a corrupted chain. */
export const MAX_LOGICAL = 256;

interface Entry {
  readonly status: number;
  readonly type: number;
  readonly lba: number;
  readonly count: number;
}

/** The four entries of an MBR or EBR sector. */
export function mbrEntries(sector: Uint8Array): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < 4; ++i) {
    const o = 446 + 16 * i;
    out.push({ status: u8(sector, o), type: u8(sector, o + 4), lba: u32(sector, o + 8), count: u32(sector, o + 12) });
  }
  return out;
}

export function hasBootSignature(sector: Uint8Array): boolean {
  return sector.length >= 512 && u16(sector, 510) === 0xaa55;
}

/** True if `sector` reads as an MBR: the signature, entries with valid status bytes, at least one used. */
export function looksLikeMbr(sector: Uint8Array): boolean {
  if (!hasBootSignature(sector)) return false;
  const entries = mbrEntries(sector);
  return entries.every((e) => e.status === 0 || e.status === 0x80) && entries.some((e) => e.type !== 0 && e.count > 0);
}

function typeName(type: number): string {
  return `0x${type.toString(16).padStart(2, '0')}`;
}

/** The partition `[lba, lba + count)` sectors after `base`, cropped to `[0, limit)`; null if it starts past the limit. */
function cropEntry(scan: Scan, table: PartitionTable, base: number, e: Entry, limit: number, where: string): Block | null {
  const ss = scan.reader.sectorSize;
  const pos = base + e.lba * ss;
  const end = pos + e.count * ss;
  if (e.lba === 0 || pos >= limit) {
    scan.warn(where === 'MBR' ? 'ERR_USED_MAP_BAD_MBR' : 'ERR_USED_MAP_BAD_EBR',
      `${where}: partition of type ${typeName(e.type)} at byte ${pos} lies outside the space it may use (ends at ${limit}): ignored, the space outside partitions counts as used`);
    table.gapsUsed = true;
    return null;
  }
  if (end > limit) {
    scan.warn(where === 'MBR' ? 'ERR_USED_MAP_BAD_MBR' : 'ERR_USED_MAP_BAD_EBR',
      `${where}: partition of type ${typeName(e.type)} at byte ${pos} ends at ${end}, past ${limit}: cropped`);
    table.gapsUsed = true;
    return { pos, size: limit - pos };
  }
  return { pos, size: end - pos };
}

/** Read the MBR in `sector0` and the EBR chains of its extended partitions into `table`. */
export async function readMbr(scan: Scan, sector0: Uint8Array, table: PartitionTable): Promise<void> {
  const ss = scan.reader.sectorSize;
  scan.metadata(0, ss);
  for (const e of mbrEntries(sector0)) {
    if (e.type === 0 && (e.lba !== 0 || e.count !== 0)) {
      scan.warn('ERR_USED_MAP_BAD_MBR', `MBR: an empty entry (type 0x00) names sectors ${e.lba} to ${e.lba + e.count}: the space outside partitions counts as used`);
      table.gapsUsed = true;
    }
    if (e.type === 0 || e.count === 0) continue;
    const b = cropEntry(scan, table, 0, e, scan.reader.size, 'MBR');
    if (b === null) continue;
    if (EXTENDED_TYPES.has(e.type)) await readExtended(scan, b, table);
    else table.partitions.push({ ...b, type: typeName(e.type) });
  }
}

async function readExtended(scan: Scan, ext: Block, table: PartitionTable): Promise<void> {
  const ss = scan.reader.sectorSize;
  const extEnd = ext.pos + ext.size;
  const logical: Block[] = [];
  const seen = new Set<number>();
  let ebr = ext.pos;
  let broken = false;
  for (;;) {
    if (seen.size >= MAX_LOGICAL) {
      scan.warn('ERR_USED_MAP_BAD_EBR', `extended partition at byte ${ext.pos}: more than ${MAX_LOGICAL} logical partitions: the rest counts as used`);
      broken = true;
      break;
    }
    seen.add(ebr);
    scan.metadata(ebr, ss);
    const sector = await scan.reader.read(ebr, ss);
    if (sector === null) {
      broken = true;
      break;
    }
    if (!hasBootSignature(sector)) {
      scan.warn('ERR_USED_MAP_BAD_EBR', `extended boot record at byte ${ebr} has no 0x55AA signature: the rest of the extended partition counts as used`);
      broken = true;
      break;
    }
    const [first, next] = mbrEntries(sector) as [Entry, Entry];
    if (first.type === 0 && (first.lba !== 0 || first.count !== 0)) {
      scan.warn('ERR_USED_MAP_BAD_EBR', `EBR at byte ${ebr}: an empty entry names sectors: the rest of the extended partition counts as used`);
      broken = true;
    }
    if (first.type !== 0 && first.count > 0) {
      const b = cropEntry(scan, table, ebr, first, extEnd, `EBR at byte ${ebr}`);
      if (b === null) broken = true;
      else {
        logical.push(b);
        table.partitions.push({ ...b, type: typeName(first.type) });
      }
    }
    if (next.type === 0 || next.count === 0) break;
    const at = ext.pos + next.lba * ss;
    if (seen.has(at)) {
      scan.warn('ERR_USED_MAP_EBR_LOOP', `EBR at byte ${ebr} links back to byte ${at}: the chain loops; the rest of the extended partition counts as used`);
      broken = true;
      break;
    }
    if (at >= extEnd) {
      scan.warn('ERR_USED_MAP_BAD_EBR', `EBR at byte ${ebr} links to byte ${at}, outside its extended partition: the rest counts as used`);
      broken = true;
      break;
    }
    ebr = at;
  }
  if (broken) table.unknown.push(...subtractBlocks(ext, [...logical].sort((a, b) => a.pos - b.pos)));
}
