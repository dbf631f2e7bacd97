import type { Piece } from '@ddferry/protocol';

/** What the main process holds and has not yet made durable. */
export interface Pending {
  /** Open and sealed pieces not yet stored. */
  readonly pieces: number;
  /** Their data bytes. */
  readonly bytes: number;
  /** Their extents plus delta ranges. */
  readonly ranges: number;
}

/** Why reading waits: for progress and the live page. */
export interface Pause {
  readonly reason: 'spool-full' | 'link-down' | 'stick-full' | 'source-busy';
  /** Milliseconds since the epoch. */
  readonly since: number;
  /** For people: "spool full, assembler unreachable since 14:02:07". */
  readonly text: string;
}

/** Where pieces wait for their receipt: figures for progress. */
export interface SpoolFigures {
  readonly count: number;
  readonly bytes: number;
  readonly capacity: number;
}

/**
 * What `store` did: `'stored'` (durable now), `'full'` (nothing of it is kept), or
 * accepted with `durable` settling once it is durable (a LAN piece on its way: the
 * assembler's receipt, or an fsync of the spool if the receipt is slow).
 */
export type StoreResult = 'stored' | 'full' | { readonly durable: Promise<void> };

/**
 * Where a run's pieces become durable: the local spool (then shipped over the LAN), or
 * a stick. The run loop (run-loop.ts) stores pieces one after the other, in sequence
 * order, and commits each piece's delta to the common map once it is durable, in the
 * same order (R1). LAN code and stick code each implement it; the loop knows neither.
 */
export interface Destination {
  /**
   * Make `piece` durable, or accept it and say when it is (see `StoreResult`). `'full'`
   * if it does not fit (the loop stops reading). Other failures throw coded errors.
   */
  store(piece: Piece): Promise<StoreResult>;
  /**
   * Make every accepted piece durable: `urgent` (a stop) now, else (the end of reading)
   * after waiting a little for what makes it durable anyway (receipts).
   */
  settle?(urgent: boolean): Promise<void>;
  /**
   * Data bytes that may still be read beyond `pending` before reading must wait
   * (`Infinity` if no limit is known).
   */
  room(pending: Pending): number;
  /**
   * True once waiting cannot bring room for a read of `nextRead` bytes beyond `pending`
   * (a full stick: only a trip to PC_B frees it). Reading then stops.
   */
  isFull(pending: Pending, nextRead: number): boolean;
  /** Why reading waits, when it does. */
  pause(): Pause | null;
  /** Call `listener` when room may have grown (receipts freed the spool). */
  onRoom(listener: () => void): void;
  /** The pieces waiting for a receipt. */
  readonly spool: SpoolFigures;
}
