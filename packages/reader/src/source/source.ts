/**
 * A rescue source: a disk, a partition, a file, or a simulation of one. Always
 * opened read-only. Reads follow GNU ddrescue's `readblockp`: a loop of `pread`s
 * that stops at end of file or at the first error.
 */

/** The outcome of one read: bytes obtained from the start, and the error that stopped it. */
export interface ReadResult {
  /** Bytes read, from the requested position on. */
  readonly copied: number;
  /** The `errno` code (`EIO`, `ENXIO`, ...) that stopped the read, or null (end of file if short). */
  readonly errno: string | null;
}

/** What the operating system tells about the device behind a source, for fingerprints. */
export interface SourceIdentity {
  /** `block-device`, `file` or `character-device`. */
  readonly kind: 'block-device' | 'file' | 'character-device';
  readonly size: number;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly model?: string;
  readonly serial?: string;
  readonly wwn?: string;
  /** `major:minor` of a block device, or `dev:ino` of a file. */
  readonly deviceId: string;
}

export interface Source {
  /** The name the user gave. */
  readonly name: string;
  /** Size in bytes; 0 if unknown (character devices, some pipes of devices). */
  readonly size: number;
  readonly identity: SourceIdentity;
  /**
   * Read `size` bytes at `pos` into `buf` (from offset 0). Never throws for I/O errors:
   * the error ends the read and is returned.
   */
  read(buf: Uint8Array, size: number, pos: number): ReadResult;
  /** True while the source can still be found by its name (ddrescue's `stat(iname)`). */
  stillThere(): boolean;
  /** Close and open again (ddrescue's `-O`). */
  reopen(): void;
  close(): void;
}
