/**
 * The state of one used-space scan: the reader, what was found used and what is
 * metadata (absolute byte positions on the source), and the warnings.
 */
import type { Block } from '@ddferry/mapfile';

import { type ByteReader, ScanReader } from './byte-reader.js';
import { RangeList } from './ranges.js';
import { type UsedMapWarningCode, WarningLog } from './warnings.js';

export class Scan {
  readonly reader: ScanReader;
  readonly warnings = new WarningLog();
  readonly #used = new RangeList();
  readonly #metadata = new RangeList();

  constructor(reader: ByteReader, signal?: AbortSignal) {
    this.reader = new ScanReader(reader, this.warnings, signal);
  }

  /** Count `[pos, pos + size)` as used. */
  used(pos: number, size: number): void {
    this.#used.add(pos, size);
  }

  /** Count `[pos, pos + size)` as metadata (and so as used). */
  metadata(pos: number, size: number): void {
    this.#metadata.add(pos, size);
  }

  warn(code: UsedMapWarningCode, message: string): void {
    this.warnings.add(code, message);
  }

  usedBlocks(): Block[] {
    return this.#used.blocks();
  }

  metadataBlocks(): Block[] {
    return this.#metadata.blocks();
  }
}
