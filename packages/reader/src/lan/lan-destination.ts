import type { Piece } from '@ddferry/protocol';

import type { Spool } from '../job/spool.js';
import type { Destination, Pause, Pending } from '../run/destination.js';
import type { Link } from './link.js';

/** Bytes a spool file takes beyond its data (tar headers, the piece's description). */
const PIECE_OVERHEAD = 16 << 10;

function clock(ms: number): string {
  return new Date(ms).toTimeString().slice(0, 8);
}

/**
 * The LAN run's destination: a piece is durable once it is in the local spool; the
 * link ships the spool and frees it on receipts. Reading waits while the spool is full
 * (the link down or slower than the disk); it never counts as full for good.
 */
export class LanDestination implements Destination {
  readonly spool: Spool;
  readonly #link: Link;
  #fullSince = 0;

  constructor(spool: Spool, link: Link) {
    this.spool = spool;
    this.#link = link;
  }

  async store(piece: Piece): Promise<'stored' | 'full'> {
    await this.spool.put(piece);
    return 'stored';
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
