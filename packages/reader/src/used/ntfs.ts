/**
 * NTFS: the $Bitmap file (MFT record 6) says which clusters are used; it covers the
 * system files too. The MFT is found from the boot sector (record 0, or its copy in
 * $MFTMirr when record 0 is damaged) and followed through its runlist and attribute
 * list. Metadata: the boot sector and its backup at the volume's end, and every
 * non-resident attribute of the system files (records 0 to 15 but $BadClus): $MFT,
 * $MFTMirr, $LogFile, $AttrDef, the root directory's index, $Bitmap, $Boot, $Secure,
 * $UpCase, $Extend.
 */
import type { Block } from '@ddferry/mapfile';

import { type BitmapExtent, scanBitmap } from './bitmap.js';
import { CorruptError, check, isPowerOfTwo, u16, u64, u8 } from './bytes.js';
import {
  ATTR_DATA, ATTR_LIST, type Attribute, type DataRun, applyFixups, attributeListEntries, attributes, dataRuns, dataSize, residentValue,
} from './ntfs-record.js';
import type { Scan } from './scan.js';

const SYSTEM_RECORDS = 16;
const BAD_CLUS = 8;
const VOLUME = 3;
const BITMAP = 6;
/** A non-resident attribute list longer than this is corrupt. */
const MAX_ATTR_LIST = 1024 * 1024;

interface NtfsVolume {
  readonly base: number;
  readonly clusterSize: number;
  readonly clusters: number;
  readonly recordSize: number;
  mftRuns: DataRun[];
}

function layout(boot: Uint8Array, part: Block): { bps: number; clusterSize: number; totalSectors: number; mft: number; mirror: number; recordSize: number } {
  const bps = u16(boot, 11);
  check(isPowerOfTwo(bps, 256, 4096), 'ERR_USED_MAP_BAD_SUPERBLOCK', `${bps} bytes per sector`);
  const raw = u8(boot, 13);
  const spc = raw <= 0x80 ? raw : 2 ** (256 - raw);
  const clusterSize = spc * bps;
  check(isPowerOfTwo(clusterSize, 256, 2 * 1024 * 1024), 'ERR_USED_MAP_BAD_SUPERBLOCK', `cluster size ${clusterSize}`);
  const totalSectors = u64(boot, 40, 'ERR_USED_MAP_BAD_SUPERBLOCK');
  const clusters = Math.floor(totalSectors / spc);
  const mft = u64(boot, 48, 'ERR_USED_MAP_BAD_SUPERBLOCK');
  const mirror = u64(boot, 56, 'ERR_USED_MAP_BAD_SUPERBLOCK');
  check(mft < clusters && mirror < clusters, 'ERR_USED_MAP_BAD_SUPERBLOCK', `MFT at cluster ${mft}, mirror at ${mirror}, of ${clusters}`);
  const r = u8(boot, 64);
  const recordSize = r < 0x80 ? r * clusterSize : 2 ** (256 - r);
  check(isPowerOfTwo(recordSize, 512, 65536), 'ERR_USED_MAP_BAD_SUPERBLOCK', `MFT record size ${recordSize}`);
  check(part.size >= 512, 'ERR_USED_MAP_BAD_SUPERBLOCK', 'partition too small');
  return { bps, clusterSize, totalSectors, mft, mirror, recordSize };
}

/** Byte position of MFT record `n`, through the MFT's runs. */
function recordPos(v: NtfsVolume, n: number): number | null {
  const byte = n * v.recordSize;
  const vcn = Math.floor(byte / v.clusterSize);
  for (const r of v.mftRuns) {
    if (vcn >= r.vcn && vcn < r.vcn + r.count) return r.lcn === null ? null : v.base + r.lcn * v.clusterSize + (byte - r.vcn * v.clusterSize);
  }
  return null;
}

async function readRecordAt(scan: Scan, pos: number, size: number, what: string): Promise<Attribute[]> {
  const data = await scan.reader.read(pos, size);
  check(data !== null, 'ERR_USED_MAP_UNREADABLE', `${what} cannot be read`);
  const record = Uint8Array.from(data);
  applyFixups(record, what);
  return attributes(record, what);
}

async function readRecord(scan: Scan, v: NtfsVolume, n: number): Promise<Attribute[]> {
  const pos = recordPos(v, n);
  check(pos !== null, 'ERR_USED_MAP_BAD_METADATA', `MFT record ${n} lies outside the MFT`);
  return readRecordAt(scan, pos, v.recordSize, `MFT record ${n}`);
}

/** The runs of attribute `type` named `name` of the file whose base record has `attrs`, following its attribute list. */
async function fileRuns(scan: Scan, v: NtfsVolume, n: number, attrs: Attribute[], type: number, name: string): Promise<{ runs: DataRun[]; size: number }> {
  const list = attrs.find((a) => a.type === ATTR_LIST);
  const own = attrs.filter((a) => a.type === type && a.name === name && a.nonResident);
  const parts: Attribute[] = [...own];
  if (list !== undefined) {
    let value: Uint8Array;
    if (!list.nonResident) value = residentValue(list);
    else {
      const len = dataSize(list);
      check(len <= MAX_ATTR_LIST, 'ERR_USED_MAP_BAD_METADATA', `MFT record ${n}: attribute list of ${len} bytes`);
      const runs = dataRuns(list, v.clusters, `MFT record ${n}`);
      const chunks: Uint8Array[] = [];
      for (const r of runs) {
        if (r.lcn === null) continue;
        const d = await scan.reader.read(v.base + r.lcn * v.clusterSize, Math.min(r.count * v.clusterSize, MAX_ATTR_LIST));
        check(d !== null, 'ERR_USED_MAP_UNREADABLE', `MFT record ${n}: the attribute list cannot be read`);
        chunks.push(d);
      }
      value = Buffer.concat(chunks).subarray(0, len);
    }
    const others = new Set(attributeListEntries(value).filter((e) => e.type === type && e.name === name && e.record !== n).map((e) => e.record));
    for (const other of others) parts.push(...(await readRecord(scan, v, other)).filter((a) => a.type === type && a.name === name && a.nonResident));
  }
  const runs: DataRun[] = [];
  let size = 0;
  for (const a of parts) {
    runs.push(...dataRuns(a, v.clusters, `MFT record ${n}`));
    if (u64(a.bytes, 16) === 0) size = dataSize(a);
  }
  runs.sort((a, b) => a.vcn - b.vcn);
  return { runs, size };
}

/**
 * Scan the NTFS volume of partition `part`.
 * @throws CorruptError when the boot sector, the MFT or $Bitmap cannot be trusted.
 */
export async function scanNtfs(scan: Scan, part: Block): Promise<{ fs: string; size: number; claimed: number }> {
  const boot = await scan.reader.read(part.pos, 512);
  check(boot !== null, 'ERR_USED_MAP_UNREADABLE', 'the boot sector cannot be read');
  const L = layout(boot, part);
  let size = L.totalSectors * L.bps;
  if (size > part.size) {
    scan.warn('ERR_USED_MAP_FS_TOO_LARGE', `ntfs at byte ${part.pos}: the volume claims ${size} bytes, its partition has ${part.size}`);
    size = part.size;
  }
  const v: NtfsVolume = { base: part.pos, clusterSize: L.clusterSize, clusters: Math.floor(size / L.clusterSize), recordSize: L.recordSize, mftRuns: [] };
  scan.metadata(part.pos, L.bps);
  const backupPos = L.totalSectors * L.bps;
  if (backupPos + L.bps <= part.size) {
    scan.metadata(part.pos + backupPos, L.bps);
    const copy = await scan.reader.read(part.pos + backupPos, 512);
    // The backup boot sector past the volume's last sector must describe the same volume.
    if (copy !== null) {
      for (let i = 11; i < 0x48; ++i) check(copy[i] === boot[i], 'ERR_USED_MAP_BAD_SUPERBLOCK', `the boot sector and its backup at byte ${backupPos} differ at byte ${i}`);
    }
  }
  const mftPos = part.pos + L.mft * L.clusterSize;
  // The system records in one read; record 0 then comes from it.
  await scan.reader.read(mftPos, SYSTEM_RECORDS * L.recordSize);
  v.mftRuns = [{ vcn: 0, lcn: L.mft, count: Math.ceil((SYSTEM_RECORDS * L.recordSize) / L.clusterSize) }];
  let mft: Attribute[];
  try {
    mft = await readRecordAt(scan, mftPos, L.recordSize, 'MFT record 0');
  } catch (err) {
    if (!(err instanceof CorruptError)) throw err;
    scan.warn('ERR_USED_MAP_BAD_METADATA', `ntfs at byte ${part.pos}: ${err.message}; its copy in $MFTMirr is used`);
    mft = await readRecordAt(scan, part.pos + L.mirror * L.clusterSize, L.recordSize, '$MFTMirr record 0');
  }
  const mftData = mft.find((a) => a.type === ATTR_DATA && a.name === '' && a.nonResident);
  check(mftData !== undefined, 'ERR_USED_MAP_BAD_METADATA', 'MFT record 0 has no non-resident $DATA');
  v.mftRuns = dataRuns(mftData, v.clusters, 'MFT record 0');
  v.mftRuns = (await fileRuns(scan, v, 0, mft, ATTR_DATA, '')).runs;
  for (const r of v.mftRuns) if (r.lcn !== null) scan.metadata(part.pos + r.lcn * L.clusterSize, r.count * L.clusterSize);
  check(v.mftRuns.length > 0, 'ERR_USED_MAP_BAD_METADATA', 'the MFT has no data runs');

  const bitmap = await readRecord(scan, v, BITMAP);
  const { runs, size: bitmapBytes } = await fileRuns(scan, v, BITMAP, bitmap, ATTR_DATA, '');
  check(bitmapBytes * 8 >= v.clusters, 'ERR_USED_MAP_BAD_BITMAP', `a $Bitmap of ${bitmapBytes} bytes cannot map ${v.clusters} clusters`);
  await markSystemFiles(scan, v, part);
  const extents: BitmapExtent[] = [];
  for (const r of runs) {
    const first = r.vcn * L.clusterSize * 8;
    if (first >= v.clusters) break;
    const bits = Math.min(r.count * L.clusterSize * 8, v.clusters - first);
    if (r.lcn === null) scan.used(part.pos + first * L.clusterSize, bits * L.clusterSize);
    else extents.push({ pos: part.pos + r.lcn * L.clusterSize, first, bits });
  }
  const mapped = runs.reduce((n, r) => Math.max(n, (r.vcn + r.count) * L.clusterSize * 8), 0);
  if (mapped < v.clusters) {
    scan.warn('ERR_USED_MAP_BAD_BITMAP', `ntfs at byte ${part.pos}: $Bitmap's runs map ${mapped} of ${v.clusters} clusters: the others count as used`);
    scan.used(part.pos + mapped * L.clusterSize, (v.clusters - mapped) * L.clusterSize);
  }
  await scanBitmap(scan, extents, (c, n) => scan.used(part.pos + c * L.clusterSize, n * L.clusterSize));
  return { fs: 'ntfs', size, claimed: L.totalSectors * L.bps };
}

/** The system files' non-resident attributes as metadata; a damaged record there is warned about (its clusters are in $Bitmap). */
async function markSystemFiles(scan: Scan, v: NtfsVolume, part: Block): Promise<void> {
  // record 0's runs ($MFT) are marked already, maybe from its $MFTMirr copy
  for (let n = 1; n < SYSTEM_RECORDS; ++n) {
    if (n === BAD_CLUS) continue;
    try {
      const attrs = await readRecord(scan, v, n);
      if (n === VOLUME) {
        const info = attrs.find((a) => a.type === 0x70 && !a.nonResident);
        if (info !== undefined && u16(residentValue(info), 10) & 1) {
          scan.warn('ERR_USED_MAP_JOURNAL_DIRTY', `ntfs at byte ${part.pos}: the volume is marked dirty: $Bitmap may lag behind $LogFile (files written just before the failure may be missed)`);
        }
      }
      for (const a of attrs) {
        if (!a.nonResident) continue;
        for (const r of dataRuns(a, v.clusters, `MFT record ${n}`)) {
          if (r.lcn !== null) scan.metadata(v.base + r.lcn * v.clusterSize, r.count * v.clusterSize);
        }
      }
    } catch (err) {
      if (!(err instanceof CorruptError)) throw err;
      scan.warn('ERR_USED_MAP_BAD_METADATA', `ntfs at byte ${part.pos}: system file record ${n}: ${err.message}`);
    }
  }
}
