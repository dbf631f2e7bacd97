import { formatMapfile } from './format.js';
import { MapfileError } from './errors.js';
import { SblockVector } from './sblock-vector.js';

/** A sector-aligned slice of the source, with its own domain mapfile. */
export interface Chunk {
  /** 0-based position in the plan. */
  readonly index: number;
  readonly pos: number;
  readonly size: number;
}

/** A medium that will carry chunks (a USB stick). */
export interface Medium {
  /** Bytes of the medium: the size of the stick, as sold or as `lsblk -b` shows it. */
  readonly capacity: number;
  /** Largest file the medium's file system holds (FAT32: 4 GiB - 1). */
  readonly maxFileSize: number;
  /** The file system it will be formatted with, for what that takes of the capacity (`fileSystemOverhead`). Default `fat32`. */
  readonly fileSystem?: FileSystemName | undefined;
}

export interface PlanOptions {
  /** Size of the source in bytes. */
  readonly sourceSize: number;
  /** Logical sector size in bytes (512 or 4096). */
  readonly sectorSize: number;
  /** Size of every chunk but the last; a multiple of `sectorSize`. */
  readonly chunkSize?: number;
  /** Or: make chunks that fit, one at a time, on this medium. */
  readonly medium?: Medium;
}

/** Largest files of the file systems a stick may carry. */
export const FILE_SIZE_LIMITS = {
  fat32: 4 * 1024 ** 3 - 1,
  exfat: Number.MAX_SAFE_INTEGER,
  ext4: 16 * 1024 ** 4,
} as const;
export type FileSystemName = keyof typeof FILE_SIZE_LIMITS;

const MIB = 1024 * 1024;

/**
 * Bytes a freshly formatted medium of `capacity` bytes does not give to files, at most,
 * for the formatters' defaults (mkfs.vfat, mkfs.exfat, mke2fs; Windows' are not larger):
 *
 * | file system | taken | measured (mkfs on a loop device of the size) |
 * |---|---|---|
 * | all | 1 MiB: the partition table and the first partition's alignment | |
 * | fat32 | 64 KiB (reserved sectors, FSInfo, the root folder) + two FATs of 4 bytes a cluster, for 512-byte clusters (capacity / 64: mkfs.vfat's clusters below 260 MiB, the worst case) | 64 MiB: 1.0 MiB taken; 160 MiB: 2.5 MiB |
 * | exfat | boot regions and the cluster heap's alignment (capacity / 512, from 4 MiB to 32 MiB) + the FAT at 4 bytes a 512-byte cluster (capacity / 128) + the bitmap (capacity / 32768) | 64 MiB and 160 MiB: 2.0 MiB taken; 64 GiB: 3.1 MiB |
 * | ext4 | the journal (capacity / 64, from 4 MiB to 1 GiB) + inode tables (capacity / 64) + 5 % reserved for root | |
 */
export function fileSystemOverhead(capacity: number, fs: FileSystemName): number {
  const partition = MIB;
  switch (fs) {
    case 'fat32':
      return partition + 64 * 1024 + Math.ceil(capacity / 64);
    case 'exfat':
      return partition + Math.min(32 * MIB, Math.max(4 * MIB, Math.ceil(capacity / 512))) + Math.ceil(capacity / 128) + Math.ceil(capacity / 32768);
    case 'ext4':
      return partition + Math.min(1024 * MIB, Math.max(4 * MIB, Math.ceil(capacity / 64))) + Math.ceil(capacity / 64) + Math.ceil(capacity / 20);
  }
}

/**
 * The chunk size for a medium: what fits in one file on it once formatted (the
 * capacity less `fileSystemOverhead`), after a margin of 1 % (at least 1 MiB) for
 * maps and receipts; rounded down to a whole MiB when at least 1 MiB, so chunk
 * borders fall on cluster borders; and always a multiple of the sector size.
 * @throws MapfileError `ERR_PLAN_MEDIUM_TOO_SMALL` if not even one sector fits.
 */
export function chunkSizeForMedium(medium: Medium, sectorSize: number): number {
  const usable = medium.capacity - fileSystemOverhead(medium.capacity, medium.fileSystem ?? 'fat32') - Math.max(MIB, Math.ceil(medium.capacity / 100));
  let size = Math.min(usable, medium.maxFileSize);
  const unit = size >= MIB && MIB % sectorSize === 0 ? MIB : sectorSize;
  size -= size % unit;
  if (size < sectorSize) {
    throw new MapfileError('ERR_PLAN_MEDIUM_TOO_SMALL', `A medium of ${medium.capacity} bytes cannot hold a chunk of even one ${sectorSize}-byte sector once formatted ${medium.fileSystem ?? 'fat32'}, after the 1 MiB margin.`, { hint: 'Use a larger stick or give --chunk-size.' });
  }
  return size;
}

/**
 * Split `[0, sourceSize)` into chunks: in order, never overlapping, covering the
 * source exactly, every border a multiple of the sector size except the source's end.
 * @throws MapfileError `ERR_PLAN_BAD_SIZE` for sizes that are not positive exact integers,
 *   a sector size that is not a power of two, or a chunk size that is not a multiple of it.
 */
export function planChunks(options: PlanOptions): Chunk[] {
  const { sourceSize, sectorSize } = options;
  const bad = (msg: string): never => {
    throw new MapfileError('ERR_PLAN_BAD_SIZE', msg);
  };
  if (!Number.isSafeInteger(sourceSize) || sourceSize <= 0) bad(`Source size ${sourceSize} is not a positive number of bytes.`);
  if (!Number.isSafeInteger(sectorSize) || sectorSize < 1 || (sectorSize & (sectorSize - 1)) !== 0) bad(`Sector size ${sectorSize} is not a power of two.`);
  let chunkSize: number;
  if (options.chunkSize !== undefined) {
    chunkSize = options.chunkSize;
    if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0 || chunkSize % sectorSize !== 0) {
      const near = Math.max(sectorSize, chunkSize - (chunkSize % sectorSize));
      bad(`Chunk size ${chunkSize} is not a positive multiple of the sector size ${sectorSize}; try ${near}.`);
    }
  } else if (options.medium) {
    chunkSize = chunkSizeForMedium(options.medium, sectorSize);
  } else {
    chunkSize = bad('Give a chunk size or a medium.');
  }
  const chunks: Chunk[] = [];
  for (let pos = 0, index = 0; pos < sourceSize; pos += chunkSize, ++index) {
    chunks.push({ index, pos, size: Math.min(chunkSize, sourceSize - pos) });
  }
  return chunks;
}

/** `chunk0007.map`: four digits, or more when the plan has more than 9999 chunks. */
export function chunkMapName(index: number, count: number): string {
  return `chunk${String(index).padStart(Math.max(4, String(count - 1).length), '0')}.map`;
}

/**
 * The domain mapfile of a chunk, in GNU ddrescue's format: `?` before the chunk,
 * `+` over it, `?` after it up to the source's end. `ddrescue -m` accepts it as is.
 */
export function formatChunkMap(chunk: Chunk, sourceSize: number, commandLine = 'ddferry-map plan'): Uint8Array {
  const blocks = new SblockVector(3);
  const end = chunk.pos + chunk.size;
  if (chunk.pos > 0) blocks.push(0, chunk.pos, 0);
  blocks.push(chunk.pos, end, 4);
  if (end < sourceSize) blocks.push(end, sourceSize, 0);
  return formatMapfile(
    { currentPos: 0, currentStatus: '+', currentPass: 1, blocks },
    { program: 'ddferry', commandLine, startTime: '', message: `Domain of chunk ${chunk.index}: bytes ${chunk.pos} to ${end} of ${sourceSize}` },
  );
}
