/**
 * NTFS MFT records: the update sequence fixups, the attributes, and data runs
 * (runlists). Every field is checked against the record and the volume; a record that
 * fails throws `CorruptError('ERR_USED_MAP_BAD_METADATA')`.
 */
import { CorruptError, ascii, check, u16, u32, u64, u8 } from './bytes.js';

/** NTFS applies its fixups every 512 bytes, whatever the sector size. */
const FIXUP_STRIDE = 512;
/** More runs than this in one attribute means a corrupt runlist. */
export const MAX_RUNS = 1 << 20;

export const ATTR_LIST = 0x20;
export const ATTR_DATA = 0x80;

/** `count` clusters from `lcn`; `lcn` null for a sparse run (no clusters on disk). */
export interface DataRun {
  readonly vcn: number;
  readonly lcn: number | null;
  readonly count: number;
}

export interface Attribute {
  readonly type: number;
  readonly name: string;
  readonly nonResident: boolean;
  /** The attribute's bytes (header and value or runlist), inside the record. */
  readonly bytes: Uint8Array;
}

/** Check the record's signature and apply its update sequence fixups, in place. */
export function applyFixups(record: Uint8Array, what: string): void {
  check(ascii(record, 0, 4) === 'FILE', 'ERR_USED_MAP_BAD_METADATA', `${what}: no FILE signature`);
  const usa = u16(record, 4);
  const count = u16(record, 6);
  check(count - 1 === record.length / FIXUP_STRIDE, 'ERR_USED_MAP_BAD_METADATA', `${what}: update sequence of ${count} entries for a ${record.length}-byte record`);
  const usn = u16(record, usa);
  for (let i = 1; i < count; ++i) {
    const at = i * FIXUP_STRIDE - 2;
    check(u16(record, at) === usn, 'ERR_USED_MAP_BAD_METADATA', `${what}: update sequence mismatch in its sector ${i} (a torn write)`);
    record[at] = u8(record, usa + 2 * i);
    record[at + 1] = u8(record, usa + 2 * i + 1);
  }
}

/** The attributes of a fixed-up record, in order. */
export function attributes(record: Uint8Array, what: string): Attribute[] {
  const out: Attribute[] = [];
  const used = Math.min(u32(record, 24), record.length);
  let at = u16(record, 20);
  while (at + 8 <= used) {
    const type = u32(record, at);
    if (type === 0xffffffff) break;
    const len = u32(record, at + 4);
    check(len >= 16 && len % 8 === 0 && at + len <= used, 'ERR_USED_MAP_BAD_METADATA', `${what}: attribute 0x${type.toString(16)} of ${len} bytes at offset ${at}`);
    const bytes = record.subarray(at, at + len);
    const nameLen = u8(bytes, 9);
    const nameOff = u16(bytes, 10);
    let name = '';
    for (let i = 0; i < nameLen; ++i) name += String.fromCharCode(u16(bytes, nameOff + 2 * i));
    out.push({ type, name, nonResident: u8(bytes, 8) !== 0, bytes });
    at += len;
    check(out.length <= 1024, 'ERR_USED_MAP_BAD_METADATA', `${what}: too many attributes`);
  }
  return out;
}

/** A resident attribute's value. */
export function residentValue(a: Attribute): Uint8Array {
  const len = u32(a.bytes, 16);
  const off = u16(a.bytes, 20);
  check(off + len <= a.bytes.length, 'ERR_USED_MAP_BAD_METADATA', `resident attribute value of ${len} bytes at offset ${off}`);
  return a.bytes.subarray(off, off + len);
}

/** A non-resident attribute's data size in bytes. */
export function dataSize(a: Attribute): number {
  return u64(a.bytes, 48);
}

function signed(bytes: Uint8Array, off: number, n: number): number {
  let v = 0;
  for (let i = n - 1; i >= 0; --i) v = v * 256 + u8(bytes, off + i);
  return n > 0 && u8(bytes, off + n - 1) & 0x80 ? v - 2 ** (8 * n) : v;
}

/** The runs of a non-resident attribute; each run's clusters must lie inside `[0, clusters)`. */
export function dataRuns(a: Attribute, clusters: number, what: string): DataRun[] {
  check(a.nonResident, 'ERR_USED_MAP_BAD_METADATA', `${what}: attribute 0x${a.type.toString(16)} is resident`);
  const b = a.bytes;
  let vcn = u64(b, 16);
  let at = u16(b, 32);
  let lcn = 0;
  const runs: DataRun[] = [];
  for (;;) {
    const head = u8(b, at);
    if (head === 0) break;
    const lenSize = head & 0x0f;
    const offSize = head >> 4;
    check(lenSize >= 1 && lenSize <= 8 && offSize <= 8, 'ERR_USED_MAP_BAD_METADATA', `${what}: run header 0x${head.toString(16)}`);
    const count = signed(b, at + 1, lenSize);
    check(count > 0 && Number.isSafeInteger(count), 'ERR_USED_MAP_BAD_METADATA', `${what}: run of ${count} clusters`);
    if (offSize === 0) runs.push({ vcn, lcn: null, count });
    else {
      lcn += signed(b, at + 1 + lenSize, offSize);
      check(lcn >= 0 && lcn + count <= clusters, 'ERR_USED_MAP_BAD_METADATA', `${what}: run of ${count} clusters at cluster ${lcn}, outside the volume's ${clusters}`);
      runs.push({ vcn, lcn, count });
    }
    vcn += count;
    at += 1 + lenSize + offSize;
    check(runs.length <= MAX_RUNS, 'ERR_USED_MAP_BAD_METADATA', `${what}: more than ${MAX_RUNS} runs`);
  }
  return runs;
}

/** Entries of an $ATTRIBUTE_LIST value: attribute type, first VCN and the MFT record holding it. */
export function attributeListEntries(value: Uint8Array): Array<{ type: number; vcn: number; record: number; name: string }> {
  const out: Array<{ type: number; vcn: number; record: number; name: string }> = [];
  for (let at = 0; at + 26 <= value.length;) {
    const len = u16(value, at + 4);
    if (len < 26 || at + len > value.length) throw new CorruptError('ERR_USED_MAP_BAD_METADATA', `attribute list entry of ${len} bytes`);
    const nameLen = u8(value, at + 6);
    const nameOff = u8(value, at + 7);
    let name = '';
    for (let i = 0; i < nameLen; ++i) name += String.fromCharCode(u16(value, at + nameOff + 2 * i));
    out.push({ type: u32(value, at), vcn: u64(value, at + 8), record: u32(value, at + 16) + u16(value, at + 20) * 0x100000000, name });
    at += len;
  }
  return out;
}
