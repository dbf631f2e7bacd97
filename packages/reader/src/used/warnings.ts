/**
 * The used-space scan's coded warnings. None stops the scan: each says what was found
 * wrong and what was counted as used instead (the domain may grow, never shrink).
 */

/** Every warning code the scan gives, with what it means for the domain. */
export const USED_MAP_WARNING_CODES = {
  /** A read failed (bad sectors): what those bytes describe counts as used. */
  ERR_USED_MAP_UNREADABLE: 'unreadable sectors',
  /** No partition table and no known file system at byte 0: the whole disk counts as used. */
  ERR_USED_MAP_NO_TABLE: 'no partition table',
  /** An MBR entry is implausible: the space outside the partitions counts as used. */
  ERR_USED_MAP_BAD_MBR: 'bad MBR entry',
  /** An extended boot record is missing, outside its extended partition or one too many: the rest of the extended partition counts as used. */
  ERR_USED_MAP_BAD_EBR: 'bad extended boot record',
  /** The chain of extended boot records loops: the rest of the extended partition counts as used. */
  ERR_USED_MAP_EBR_LOOP: 'extended partition chain loops',
  /** The primary GPT (header or entries) is damaged: the backup GPT is used. */
  ERR_USED_MAP_GPT_PRIMARY_BAD: 'primary GPT damaged',
  /** The backup GPT is damaged or missing: the primary is used. */
  ERR_USED_MAP_GPT_BACKUP_BAD: 'backup GPT damaged',
  /** Neither GPT is usable: the whole disk counts as used. */
  ERR_USED_MAP_BAD_GPT: 'no usable GPT',
  /** A partition lies outside the disk or overlaps another: the space outside the partitions counts as used. */
  ERR_USED_MAP_BAD_PARTITION: 'implausible partition',
  /** A file system's superblock or boot sector is implausible: its whole partition counts as used. */
  ERR_USED_MAP_BAD_SUPERBLOCK: 'bad superblock or boot sector',
  /** A file system claims more space than its partition has: what lies inside the partition is scanned. */
  ERR_USED_MAP_FS_TOO_LARGE: 'file system larger than its partition',
  /** An ext block group descriptor is damaged: the group counts as used. */
  ERR_USED_MAP_BAD_GROUP: 'bad block group descriptor',
  /** An allocation bitmap fails its checksum or free count, or a FAT entry is out of range: the area it maps counts as used. */
  ERR_USED_MAP_BAD_BITMAP: 'bad allocation bitmap',
  /** The copies of a FAT differ: a cluster used in any copy counts as used. */
  ERR_USED_MAP_FAT_COPIES_DIFFER: 'FAT copies differ',
  /** An MFT record, directory, inode or extent tree is damaged: the file system counts as used. */
  ERR_USED_MAP_BAD_METADATA: 'bad file system metadata',
  /** An ext journal needs recovery: the groups whose bitmaps or descriptors it holds count as used. */
  ERR_USED_MAP_JOURNAL_DIRTY: 'journal needs recovery',
  /** An exFAT volume without an allocation bitmap: the whole partition counts as used. */
  ERR_USED_MAP_NO_BITMAP: 'no allocation bitmap',
} as const;

export type UsedMapWarningCode = keyof typeof USED_MAP_WARNING_CODES;

export interface UsedMapWarning {
  readonly code: UsedMapWarningCode;
  readonly message: string;
}

/** Warnings kept per code; past it one line counts the rest, so a disk with 10 000 bad groups stays readable. */
export const MAX_WARNINGS_PER_CODE = 20;

/** Collects warnings, at most `MAX_WARNINGS_PER_CODE` of each code plus a count of the others. */
export class WarningLog {
  readonly #list: UsedMapWarning[] = [];
  readonly #counts = new Map<UsedMapWarningCode, number>();

  add(code: UsedMapWarningCode, message: string): void {
    const n = (this.#counts.get(code) ?? 0) + 1;
    this.#counts.set(code, n);
    if (n <= MAX_WARNINGS_PER_CODE) this.#list.push({ code, message });
  }

  /** The warnings in the order given, then one line per code that had more. */
  list(): UsedMapWarning[] {
    const out = [...this.#list];
    for (const [code, n] of this.#counts) {
      if (n > MAX_WARNINGS_PER_CODE) out.push({ code, message: `${n - MAX_WARNINGS_PER_CODE} more warning(s) of this kind` });
    }
    return out;
  }
}
