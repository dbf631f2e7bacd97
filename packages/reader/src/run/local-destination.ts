import type { Piece } from '@ddferry/protocol';

import type { Spool } from '../job/spool.js';
import type { Destination, Pause, SpoolFigures } from './destination.js';

/**
 * The job's local spool alone, without a link or a stick: what planning reads (the
 * used-space scan's partition tables and file-system maps) is kept there, durable, and
 * carried by the next LAN run or stick trip like any other piece (never read twice).
 * It takes what comes: the scan reads little (the maps of a file system are a small
 * part of it).
 */
export class LocalDestination implements Destination {
  readonly #spool: Spool;

  constructor(spool: Spool) {
    this.#spool = spool;
  }

  get spool(): SpoolFigures {
    return this.#spool;
  }

  async store(piece: Piece): Promise<'stored' | 'full'> {
    await this.#spool.put(piece);
    return 'stored';
  }

  room(): number {
    return Number.POSITIVE_INFINITY;
  }

  isFull(): boolean {
    return false;
  }

  pause(): Pause | null {
    return null;
  }

  onRoom(): void {
    // never waits
  }
}
