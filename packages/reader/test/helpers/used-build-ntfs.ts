/**
 * A synthetic NTFS volume for the used-space unit tests: boot sector and its backup,
 * an MFT of 16 system records (update sequence fixups, non-resident $DATA runlists for
 * $MFT, $MFTMirr, $LogFile and $Bitmap, $Volume's flags), the $MFTMirr copy, and a
 * $Bitmap marking the system clusters plus the data runs given.
 */
import type { Block } from '@ddferry/mapfile';

const CS = 4096;
const RECORD = 1024;

export interface NtfsVolume {
  readonly clusterSize: number;
  readonly clusters: number;
  readonly mftPos: number;
  readonly mirrorPos: number;
  readonly bitmapPos: number;
  readonly logPos: number;
  /** Byte ranges of `[lcn, count]` runs. */
  readonly ranges: (runs: ReadonlyArray<readonly [number, number]>) => Block[];
}

/** The runlist of `[lcn, count]` runs. */
function encodeRuns(runs: ReadonlyArray<readonly [number, number]>): Buffer {
  const parts: Buffer[] = [];
  let prev = 0;
  const le = (v: number, signed: boolean): Buffer => {
    const out: number[] = [];
    let x = BigInt(v);
    for (;;) {
      out.push(Number(x & 0xffn));
      x >>= 8n;
      const top = out[out.length - 1]!;
      if (signed ? (x === 0n && !(top & 0x80)) || (x === -1n && top & 0x80) : x === 0n) break;
    }
    return Buffer.from(out);
  };
  for (const [lcn, count] of runs) {
    const len = le(count, false);
    const off = le(lcn - prev, true);
    parts.push(Buffer.from([(off.length << 4) | len.length]), len, off);
    prev = lcn;
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function nonResident(type: number, runs: ReadonlyArray<readonly [number, number]>, size: number): Buffer {
  const list = encodeRuns(runs);
  const len = Math.ceil((0x40 + list.length) / 8) * 8;
  const a = Buffer.alloc(len);
  a.writeUInt32LE(type, 0);
  a.writeUInt32LE(len, 4);
  a[8] = 1;
  a.writeUInt16LE(0x40, 10);
  const clusters = runs.reduce((n, [, c]) => n + c, 0);
  a.writeBigUInt64LE(0n, 16);
  a.writeBigUInt64LE(BigInt(clusters - 1), 24);
  a.writeUInt16LE(0x40, 32);
  a.writeBigUInt64LE(BigInt(clusters * CS), 40);
  a.writeBigUInt64LE(BigInt(size), 48);
  a.writeBigUInt64LE(BigInt(size), 56);
  list.copy(a, 0x40);
  return a;
}

function resident(type: number, value: Buffer): Buffer {
  const len = Math.ceil((0x18 + value.length) / 8) * 8;
  const a = Buffer.alloc(len);
  a.writeUInt32LE(type, 0);
  a.writeUInt32LE(len, 4);
  a.writeUInt32LE(value.length, 16);
  a.writeUInt16LE(0x18, 20);
  value.copy(a, 0x18);
  return a;
}

/** An MFT record holding `attrs`, with its update sequence applied. */
function record(attrs: readonly Buffer[]): Buffer {
  const r = Buffer.alloc(RECORD);
  r.write('FILE', 0, 'latin1');
  r.writeUInt16LE(0x30, 4);
  r.writeUInt16LE(RECORD / 512 + 1, 6);
  r.writeUInt16LE(1, 16);
  r.writeUInt16LE(1, 18);
  r.writeUInt16LE(0x38, 20);
  r.writeUInt16LE(1, 22);
  let at = 0x38;
  for (const a of attrs) {
    a.copy(r, at);
    at += a.length;
  }
  r.writeUInt32LE(0xffffffff, at);
  r.writeUInt32LE(at + 8, 24);
  r.writeUInt32LE(RECORD, 28);
  const usn = 0x0007;
  r.writeUInt16LE(usn, 0x30);
  for (let i = 1; i <= RECORD / 512; ++i) {
    r.writeUInt16LE(r.readUInt16LE(i * 512 - 2), 0x30 + 2 * i);
    r.writeUInt16LE(usn, i * 512 - 2);
  }
  return r;
}

/**
 * An NTFS volume filling `[pos, pos + size)` (the backup boot sector in its last sector),
 * with the data runs `runs` (`[lcn, count]`) marked used; `dirty` sets $Volume's dirty flag.
 */
export function writeNtfs(disk: Buffer, pos: number, size: number, runs: ReadonlyArray<readonly [number, number]>, dirty = false): NtfsVolume {
  const totalSectors = size / 512 - 1;
  const clusters = Math.floor(totalSectors / 8);
  const mft = 4;
  const mirror = Math.floor(clusters / 2);
  const log = 8;
  const bitmapLcn = 12;
  const bitmapBytes = Math.ceil(Math.ceil(clusters / 8) / 8) * 8;
  const bitmapClusters = Math.ceil(bitmapBytes / CS);
  const boot = Buffer.alloc(512);
  boot.set([0xeb, 0x52, 0x90]);
  boot.write('NTFS    ', 3, 'latin1');
  boot.writeUInt16LE(512, 11);
  boot[13] = 8;
  boot[21] = 0xf8;
  boot.writeBigUInt64LE(BigInt(totalSectors), 40);
  boot.writeBigUInt64LE(BigInt(mft), 48);
  boot.writeBigUInt64LE(BigInt(mirror), 56);
  boot[64] = 0xf6;
  boot[68] = 1;
  boot.writeUInt16LE(0xaa55, 510);
  boot.copy(disk, pos);
  boot.copy(disk, pos + totalSectors * 512);
  const volumeInfo = Buffer.alloc(12);
  volumeInfo[8] = 3;
  volumeInfo[9] = 1;
  volumeInfo.writeUInt16LE(dirty ? 1 : 0, 10);
  const records: Buffer[] = [];
  for (let n = 0; n < 16; ++n) {
    const attrs: Buffer[] = [];
    if (n === 0) attrs.push(nonResident(0x80, [[mft, 4]], 16 * RECORD));
    if (n === 1) attrs.push(nonResident(0x80, [[mirror, 1]], 4 * RECORD));
    if (n === 2) attrs.push(nonResident(0x80, [[log, 4]], 4 * CS));
    if (n === 3) attrs.push(resident(0x70, volumeInfo));
    if (n === 6) attrs.push(nonResident(0x80, [[bitmapLcn, bitmapClusters]], bitmapBytes));
    if (n === 7) attrs.push(nonResident(0x80, [[0, 1]], 8192));
    records.push(record(attrs));
  }
  const mftBytes = Buffer.concat(records);
  mftBytes.copy(disk, pos + mft * CS);
  mftBytes.subarray(0, 4 * RECORD).copy(disk, pos + mirror * CS);
  const bitmap = Buffer.alloc(bitmapBytes);
  const mark = (lcn: number, count: number): void => {
    for (let c = lcn; c < lcn + count; ++c) bitmap[c >> 3] = bitmap[c >> 3]! | 1 << (c & 7);
  };
  for (const [lcn, count] of [[0, 1], [mft, 4], [mirror, 1], [log, 4], [bitmapLcn, bitmapClusters], ...runs] as const) mark(lcn, count);
  bitmap.copy(disk, pos + bitmapLcn * CS);
  return {
    clusterSize: CS, clusters, mftPos: pos + mft * CS, mirrorPos: pos + mirror * CS, bitmapPos: pos + bitmapLcn * CS, logPos: pos + log * CS,
    ranges: (rs) => rs.map(([lcn, count]) => ({ pos: pos + lcn * CS, size: count * CS })),
  };
}
