/**
 * Synthetic partition tables for the used-space unit tests: MBRs with chains of
 * extended boot records, and GPTs (protective MBR, primary and backup, CRC-32s), written
 * into a disk image held in memory.
 */
import { crc32 } from '../../src/used/crc.js';

export interface MbrEntry {
  readonly type: number;
  /** Absolute first sector (the builder makes it relative where the format wants). */
  readonly lba: number;
  readonly count: number;
  readonly status?: number;
}

/** Write entry `i` of the MBR or EBR at byte `at`, and its 0x55AA signature. */
export function putEntry(disk: Buffer, at: number, i: number, e: MbrEntry, base = 0): void {
  const o = at + 446 + 16 * i;
  disk[o] = e.status ?? 0;
  disk[o + 4] = e.type;
  disk.writeUInt32LE(e.lba - base, o + 8);
  disk.writeUInt32LE(e.count, o + 12);
  disk.writeUInt16LE(0xaa55, at + 510);
}

/**
 * An MBR with `primaries`, and when `extended` is given an extended partition whose
 * EBRs (one per logical, at `ebr` sectors) chain its logical partitions.
 */
export function writeMbr(disk: Buffer, primaries: readonly MbrEntry[], extended?: { readonly lba: number; readonly count: number; readonly logicals: ReadonlyArray<MbrEntry & { readonly ebr: number }> }): void {
  primaries.forEach((e, i) => putEntry(disk, 0, i, e));
  disk.writeUInt16LE(0xaa55, 510);
  if (extended === undefined) return;
  putEntry(disk, 0, primaries.length, { type: 0x05, lba: extended.lba, count: extended.count });
  extended.logicals.forEach((l, i) => {
    const at = l.ebr * 512;
    putEntry(disk, at, 0, l, l.ebr);
    const next = extended.logicals[i + 1];
    if (next !== undefined) putEntry(disk, at, 1, { type: 0x05, lba: next.ebr, count: next.lba + next.count - next.ebr }, extended.lba);
  });
}

/** The 16 bytes of a GUID given in its text form. */
export function guidBytes(text: string): Buffer {
  const h = text.replace(/-/g, '');
  const b = Buffer.from(h, 'hex');
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}

export const BASIC_DATA = 'ebd0a0a2-b9e5-4433-87c0-68b6b72699c7';
export const LINUX_DATA = '0fc63daf-8483-4772-8e79-3d69d8477de4';

export interface GptPart {
  readonly first: number;
  readonly last: number;
  readonly type?: string;
}

/** A protective MBR and both GPTs (128 entries of 128 bytes) in sectors of `ss` bytes. */
export function writeGpt(disk: Buffer, parts: readonly GptPart[], ss = 512): void {
  const sectors = Math.floor(disk.length / ss);
  putEntry(disk, 0, 0, { type: 0xee, lba: 1, count: Math.min(sectors - 1, 0xffffffff) });
  const entries = Buffer.alloc(128 * 128);
  parts.forEach((p, i) => {
    guidBytes(p.type ?? BASIC_DATA).copy(entries, i * 128);
    entries.writeUInt32LE(i + 1, i * 128 + 16);
    entries.writeBigUInt64LE(BigInt(p.first), i * 128 + 32);
    entries.writeBigUInt64LE(BigInt(p.last), i * 128 + 40);
  });
  const arraySectors = Math.ceil(entries.length / ss);
  const header = (my: number, alt: number, entriesLba: number): Buffer => {
    const h = Buffer.alloc(ss);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(my), 24);
    h.writeBigUInt64LE(BigInt(alt), 32);
    h.writeBigUInt64LE(BigInt(2 + arraySectors), 40);
    h.writeBigUInt64LE(BigInt(sectors - 2 - arraySectors), 48);
    h.writeBigUInt64LE(BigInt(entriesLba), 72);
    h.writeUInt32LE(128, 80);
    h.writeUInt32LE(128, 84);
    h.writeUInt32LE(crc32(entries), 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
    return h;
  };
  header(1, sectors - 1, 2).copy(disk, ss);
  entries.copy(disk, 2 * ss);
  entries.copy(disk, (sectors - 1 - arraySectors) * ss);
  header(sectors - 1, 1, sectors - 1 - arraySectors).copy(disk, (sectors - 1) * ss);
}
