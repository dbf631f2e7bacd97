/**
 * What a partition holds, told by the signatures in its first sectors: an NTFS, exFAT or
 * FAT boot sector, or an ext2/3/4 superblock. Only the signatures and the few BPB fields
 * that tell a FAT boot sector from anything else are looked at here; each file system's
 * reader checks the rest.
 */
import { ascii, isPowerOfTwo, u16, u32, u8 } from './bytes.js';
import { hasBootSignature } from './mbr.js';
import type { Scan } from './scan.js';

export type ProbedFs = 'ext' | 'ntfs' | 'fat' | 'exfat' | 'unknown' | 'unreadable';


/** True if `sector` is a FAT boot sector: a jump, and a BPB whose numbers a FAT volume can have. */
export function looksLikeFat(sector: Uint8Array): boolean {
  if (!hasBootSignature(sector) && u16(sector, 11) === 0) return false;
  const jump = u8(sector, 0);
  if (jump !== 0xeb && jump !== 0xe9) return false;
  const total = u16(sector, 19) || u32(sector, 32);
  const fatSize = u16(sector, 22) || u32(sector, 36);
  const media = u8(sector, 21);
  return isPowerOfTwo(u16(sector, 11), 512, 4096) && isPowerOfTwo(u8(sector, 13), 1, 128) && u16(sector, 14) >= 1
    && u8(sector, 16) >= 1 && u8(sector, 16) <= 4 && total > 0 && fatSize > 0 && (media === 0xf0 || media >= 0xf8);
}

/**
 * What lies at `pos` (a partition of `size` bytes): its first sector, then the ext
 * superblock at byte 1024, each read alone so that a bad sector in one does not hide
 * the other.
 */
export async function probeFileSystem(scan: Scan, pos: number, size: number): Promise<ProbedFs> {
  const n = Math.min(size, scan.reader.size - pos);
  if (n < 512) return 'unknown';
  const head = await scan.reader.read(pos, 512);
  if (head !== null) {
    if (ascii(head, 3, 8) === 'NTFS    ') return 'ntfs';
    if (ascii(head, 3, 8) === 'EXFAT   ') return 'exfat';
    if (looksLikeFat(head)) return 'fat';
  }
  if (n >= 2048) {
    const sb = await scan.reader.read(pos + 1024, 1024);
    if (sb !== null && u16(sb, 56) === 0xef53) return 'ext';
  }
  return head === null ? 'unreadable' : 'unknown';
}
