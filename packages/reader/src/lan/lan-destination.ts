import type { Piece } from '@ddferry/protocol';

import type { Spool } from '../job/spool.js';
import type { Destination, Pause, Pending, StoreResult } from '../run/destination.js';
import type { Link } from './link.js';

/** Bytes a spool file takes beyond its data (tar headers, the piece's description). */
const PIECE_OVERHEAD = 16 << 10;

function clock(ms: number): string {
  return new Date(ms).toTimeString().slice(0, 8);
}

/** An unsynced piece without its receipt after this long is fsynced (the link is slower than reading, or down). */
export const UNSYNCED_MAX_MS = 2000;
/** How often unsynced pieces are looked at. */
const SYNC_CHECK_MS = 250;

/**
 * The LAN run's destination: the link ships the local spool and frees it on receipts.
 * While the link is up, a piece goes to the spool without fsync and is durable once
 * the assembler's receipt says the image holds it (or once fsynced, if that receipt
 * takes over `UNSYNCED_MAX_MS` or the link drops): the disk of PC_A then writes
 * nothing while the link keeps up. While it is down, each piece is fsynced into the
 * spool at once. Reading waits while the spool is full (the link down or slower than
 * the disk); it never counts as full for good.
 */
export class LanDestination implements Destination {
  readonly spool: Spool;
  readonly #link: Link;
  #fullSince = 0;
  #timer: NodeJS.Timeout | null = null;
  #failure: Error | null = null;

  constructor(spool: Spool, link: Link) {
    this.spool = spool;
    this.#link = link;
  }

  async store(piece: Piece): Promise<StoreResult> {
    if (this.#failure) throw this.#failure;
    if (this.#link.snapshot().state !== 'connected') {
      await this.spool.put(piece);
      return 'stored';
    }
    const sealed = await this.spool.put(piece, { sync: false });
    this.#watch();
    return { durable: this.spool.durable(sealed.seq) };
  }

  /** fsync the unsynced pieces whose receipt is late, and all of them once the link is down. */
  #watch(): void {
    if (this.#timer !== null) return;
    let busy = false;
    this.#timer = setInterval(() => {
      if (busy) return;
      if (this.spool.unsyncedCount === 0) {
        this.close();
        return;
      }
      busy = true;
      const olderThan = this.#link.snapshot().state === 'connected' ? UNSYNCED_MAX_MS : 0;
      this.spool.sync(olderThan).catch((err: unknown) => {
        this.#failure ??= err as Error;
      }).finally(() => {
        busy = false;
      });
    }, SYNC_CHECK_MS);
    this.#timer.unref();
  }

  async settle(urgent: boolean): Promise<void> {
    // at the end of reading, the receipts of the last pieces usually come within moments: the disk then writes nothing
    const until = Date.now() + UNSYNCED_MAX_MS;
    while (!urgent && this.spool.unsyncedCount > 0 && this.#link.snapshot().state === 'connected' && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await this.spool.sync(0);
  }

  /** Stop watching (the run is over; `settle` first to keep what is unsynced). */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  room(pending: Pending): number {
    const room = this.spool.capacity - this.spool.bytes - pending.bytes - pending.pieces * PIECE_OVERHEAD;
    if (room > 0) this.#fullSince = 0;
    else if (this.#fullSince === 0) this.#fullSince = Date.now();
    // one piece always fits an empty spool
    return this.spool.count === 0 && pending.pieces === 0 ? Math.max(room, this.spool.capacity) : room;
  }

  isFull(): boolean {
    return false;
  }

  pause(): Pause {
    const since = this.#fullSince || Date.now();
    const link = this.#link.snapshot();
    if (link.state === 'connected') {
      return { reason: 'spool-full', since, text: `spool full (${this.spool.count} pieces), waiting since ${clock(since)} for ${link.url} to merge them` };
    }
    const down = link.since;
    return { reason: 'link-down', since: down, text: `spool full, assembler unreachable since ${clock(down)}${link.lastError ? ` (${link.lastError})` : ''}` };
  }

  onRoom(listener: () => void): void {
    this.spool.onRemoved(listener);
  }
}
