/**
 * The GUID partition table, primary (LBA 1) and backup (last LBA). Each header is
 * checked (signature, sizes, its own LBA, CRC-32 of the header and of the entry array,
 * entries inside the disk); the primary is used when sound, else the backup. Both
 * headers and entry arrays, and the protective MBR, are metadata whichever is used.
 */
import { CorruptError, ascii, slice, u32, u64 } from './bytes.js';
import { crc32 } from './crc.js';
import type { PartitionTable } from './mbr.js';
import type { Scan } from './scan.js';

/** Entry arrays larger than this are corrupt (the usual one is 16 KiB). */
export const MAX_GPT_ENTRIES_BYTES = 4 * 1024 * 1024;

interface GptHeader {
  readonly lba: number;
  readonly alternate: number;
  readonly firstUsable: number;
  readonly lastUsable: number;
  readonly entriesLba: number;
  readonly count: number;
  readonly entrySize: number;
  readonly entriesCrc: number;
}

/** The GUID in its usual text form (the first three fields little-endian). */
export function formatGuid(b: Uint8Array): string {
  const h = (i: number): string => b[i]!.toString(16).padStart(2, '0');
  const run = (idx: number[]): string => idx.map(h).join('');
  return `${run([3, 2, 1, 0])}-${run([5, 4])}-${run([7, 6])}-${run([8, 9])}-${run([10, 11, 12, 13, 14, 15])}`;
}

/** The header in `sector` if it is a sound GPT header at `lba`, else a reason. */
function parseHeader(sector: Uint8Array, lba: number, sectors: number, ss: number): GptHeader | string {
  if (ascii(sector, 0, 8) !== 'EFI PART') return 'no EFI PART signature';
  const size = u32(sector, 12);
  if (size < 92 || size > ss) return `header size ${size}`;
  const copy = Uint8Array.from(sector.subarray(0, size));
  copy.fill(0, 16, 20);
  if (crc32(copy) !== u32(sector, 16)) return 'header CRC-32 mismatch';
  const h: GptHeader = {
    lba: u64(sector, 24), alternate: u64(sector, 32), firstUsable: u64(sector, 40), lastUsable: u64(sector, 48),
    entriesLba: u64(sector, 72), count: u32(sector, 80), entrySize: u32(sector, 84), entriesCrc: u32(sector, 88),
  };
  if (h.lba !== lba) return `header says it lies at LBA ${h.lba}`;
  if (h.entrySize < 128 || h.entrySize % 8 !== 0 || h.count * h.entrySize > MAX_GPT_ENTRIES_BYTES) return `${h.count} entries of ${h.entrySize} bytes`;
  const entriesEnd = h.entriesLba + Math.ceil((h.count * h.entrySize) / ss);
  if (h.entriesLba < 1 || entriesEnd > sectors || (h.entriesLba <= lba && lba < entriesEnd)) return `entry array at LBA ${h.entriesLba} outside the disk`;
  if (h.firstUsable > h.lastUsable || h.lastUsable >= sectors) return `usable LBAs ${h.firstUsable} to ${h.lastUsable} outside the disk`;
  return h;
}

function parseHeaderSafely(sector: Uint8Array, lba: number, sectors: number, ss: number): GptHeader | string {
  try {
    return parseHeader(sector, lba, sectors, ss);
  } catch (err) {
    if (err instanceof CorruptError) return err.message;
    throw err;
  }
}

interface GptCopy {
  readonly header: GptHeader | null;
  readonly entries: Uint8Array | null;
  readonly problem: string;
}

async function readCopy(scan: Scan, lba: number, sectors: number, ss: number): Promise<GptCopy> {
  const sector = await scan.reader.read(lba * ss, ss);
  if (sector === null) return { header: null, entries: null, problem: `LBA ${lba} cannot be read` };
  const h = parseHeaderSafely(sector, lba, sectors, ss);
  if (typeof h === 'string') return { header: null, entries: null, problem: h };
  scan.metadata(h.entriesLba * ss, Math.ceil((h.count * h.entrySize) / ss) * ss);
  const bytes = h.count * h.entrySize;
  const entries = bytes === 0 ? new Uint8Array(0) : await scan.reader.read(h.entriesLba * ss, bytes);
  if (entries === null) return { header: h, entries: null, problem: `entry array at LBA ${h.entriesLba} cannot be read` };
  if (crc32(entries) !== h.entriesCrc) return { header: h, entries: null, problem: 'entry array CRC-32 mismatch' };
  return { header: h, entries, problem: '' };
}

/** True if LBA 1 (in sectors of `ss` bytes) holds an `EFI PART` signature. */
export async function hasGptSignature(scan: Scan, ss: number): Promise<boolean> {
  if (2 * ss > scan.reader.size) return false;
  const s = await scan.reader.read(ss, ss);
  return s !== null && ascii(s, 0, 8) === 'EFI PART';
}

/**
 * Read the GPT with LBAs of `ss` bytes into `table`. With neither copy usable the whole
 * disk counts as used (`ERR_USED_MAP_BAD_GPT`).
 */
export async function readGpt(scan: Scan, ss: number, table: PartitionTable): Promise<void> {
  const size = scan.reader.size;
  const sectors = Math.floor(size / ss);
  scan.metadata(0, 2 * ss);
  scan.metadata((sectors - 1) * ss, ss);
  const primary = await readCopy(scan, 1, sectors, ss);
  const backupLba = primary.header !== null && primary.header.alternate < sectors && primary.header.alternate > 1 ? primary.header.alternate : sectors - 1;
  if (backupLba !== sectors - 1) scan.metadata(backupLba * ss, ss);
  const backup = await readCopy(scan, backupLba, sectors, ss);
  let used: GptCopy;
  if (primary.entries !== null) {
    used = primary;
    if (backup.entries === null) scan.warn('ERR_USED_MAP_GPT_BACKUP_BAD', `backup GPT at LBA ${backupLba}: ${backup.problem}; the primary is used`);
  } else if (backup.entries !== null) {
    used = backup;
    scan.warn('ERR_USED_MAP_GPT_PRIMARY_BAD', `primary GPT: ${primary.problem}; the backup at LBA ${backupLba} is used`);
  } else {
    scan.warn('ERR_USED_MAP_BAD_GPT', `primary GPT: ${primary.problem}; backup GPT at LBA ${backupLba}: ${backup.problem}: the whole disk counts as used`);
    table.unknown.push({ pos: 0, size });
    return;
  }
  const h = used.header!;
  const entries = used.entries!;
  // An unusable header's entry array still sits where the sound one's twin would be: keep it.
  const arraySectors = Math.ceil((h.count * h.entrySize) / ss);
  if (primary.header === null) scan.metadata(2 * ss, arraySectors * ss);
  if (backup.header === null) scan.metadata(Math.max(0, backupLba - arraySectors) * ss, arraySectors * ss);
  for (let i = 0; i < h.count; ++i) {
    const e = slice(entries, i * h.entrySize, h.entrySize);
    const type = slice(e, 0, 16);
    if (type.every((b) => b === 0)) continue;
    const first = u32(e, 36) < 0x200000 ? u64(e, 32) : Number.MAX_SAFE_INTEGER;
    const last = u32(e, 44) < 0x200000 ? u64(e, 40) : Number.MAX_SAFE_INTEGER;
    if (first > last || first < 1 || last >= sectors) {
      scan.warn('ERR_USED_MAP_BAD_PARTITION', `GPT entry ${i + 1}: LBAs ${first} to ${last} lie outside the disk (${sectors} sectors): ignored, the space outside partitions counts as used`);
      table.gapsUsed = true;
      continue;
    }
    table.partitions.push({ pos: first * ss, size: (last - first + 1) * ss, type: formatGuid(type) });
  }
}
