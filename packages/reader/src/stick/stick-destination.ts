import type { Piece } from '@ddferry/protocol';

import { type ReaderError, isReaderError } from '../errors.js';
import type { Spool } from '../job/spool.js';
import type { Destination, Pause, Pending, SpoolFigures } from '../run/destination.js';
import type { StickSpool } from './stick-spool.js';

/**
 * A stick trip's destination: a piece is durable once its files are on the stick (and its
 * ledger entry in JOBDIR). When the stick is full, or a write to it fails, or the run is
 * stopping (a signal: the stick may be slow), the pieces already read go to the local
 * spool instead (`JOBDIR/spool`, moved onto a stick at the next trip): what was read is
 * kept, never read again. Reading stops once the stick cannot take another read.
 */
export class StickDestination implements Destination {
  readonly #stick: StickSpool;
  readonly #local: Spool;
  readonly #signal: AbortSignal;
  #stopped = false;
  #since = 0;
  /** The stick failed for another reason than space (EIO, unplugged): the trip reports it. */
  failure: ReaderError | null = null;
  /** The write that found the stick full (ENOSPC while writing a piece), if one did. */
  fullError: ReaderError | null = null;
  /** Pieces that went to the local spool in this run. */
  kept = 0;

  constructor(stick: StickSpool, local: Spool, signal: AbortSignal) {
    this.#stick = stick;
    this.#local = local;
    this.#signal = signal;
  }

  get spool(): SpoolFigures {
    return { count: this.#stick.count, bytes: this.#stick.bytes, capacity: this.#stick.capacity };
  }

  async store(piece: Piece): Promise<'stored' | 'full'> {
    if (!this.#stopped && !this.#signal.aborted) {
      try {
        await this.#stick.put(piece);
        return 'stored';
      } catch (err) {
        if (!isReaderError(err) || (err.code !== 'ERR_STICK_FULL' && err.code !== 'ERR_STICK_WRITE')) throw err;
        if (err.code === 'ERR_STICK_WRITE') this.failure = err;
        else this.fullError = err;
        this.#stopped = true;
        this.#since = Date.now();
      }
    }
    // one piece always fits an empty local spool
    if (this.#local.count > 0 && this.#local.bytes + piece.data.length > this.#local.capacity) return 'full';
    await this.#local.put(piece);
    ++this.kept;
    return 'stored';
  }

  room(pending: Pending): number {
    if (this.#stopped) return 0;
    if (this.#stick.fits(pending, Number.MAX_SAFE_INTEGER / 2)) return Number.POSITIVE_INFINITY;
    // the most data that still fits, with what is pending (raw bytes: compressed at the trip's ratio)
    let lo = 0;
    let hi = Math.max(0, Math.floor(this.#stick.space.free / this.#stick.ratio));
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.#stick.fits(pending, mid)) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  isFull(pending: Pending, nextRead: number): boolean {
    if (this.#stopped || !this.#stick.fits(pending, nextRead)) {
      if (this.#since === 0) this.#since = Date.now();
      return true;
    }
    return false;
  }

  pause(): Pause {
    const since = this.#since || Date.now();
    return { reason: 'stick-full', since, text: 'the stick is full: carry it to PC_B' };
  }

  onRoom(): void {
    // room on a stick comes only from a trip to PC_B
  }
}
