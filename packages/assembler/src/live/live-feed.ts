/**
 * What the live page is told, kept per browser as pending state rather than a
 * queue of messages, so a slow browser gets the latest picture and never a
 * backlog.
 *
 * | source | pending state per viewer | sent as |
 * |---|---|---|
 * | a fresh viewer, a binding | image `i` needs a whole map | `map` (runs of cells over the whole source) |
 * | `Image.onChange` after a commit | dirty cell ranges of image `i`, joined; past `MAX_DIRTY_RANGES`, a whole map | `map-update` (runs of the dirty cells) |
 * | any change of an image | images dirty | `images` (path, rescue, sizes per status, merged pieces) |
 * | a reader's Status, a reader gone | readers dirty | `readers` (the latest Status of each) |
 *
 * `take()` turns the pending state into messages and clears it; the transport
 * (live-server.ts) calls it only when the browser has read what it was sent.
 * Nothing is read from files: everything comes from the serve process's images
 * and connections.
 */
import type { Block } from '@ddferry/mapfile';
import type { StatusMessage } from '@ddferry/protocol';
import { describeFingerprint, printable } from '@ddferry/protocol';

import type { Image } from '../image.js';
import type { CellGrid } from './map-cells.js';
import { cellGrid, cellsOf, DEFAULT_MAX_CELLS, encodeCells } from './map-cells.js';

/** Dirty ranges kept per image and viewer before a whole map is sent instead. */
export const MAX_DIRTY_RANGES = 64;
/** Readers kept after they disconnect (their last Status, marked gone). */
export const MAX_GONE_READERS = 16;

/** Who sent a Status. */
export interface ReaderInfo {
  readonly peer: string;
  readonly rescueId: string;
  /** Path of the image its pieces go to. */
  readonly image: string;
}

/** What connections tell the feed (connection.ts). `key` names one connection. */
export interface ReaderStatusSink {
  readerStatus(key: object, info: ReaderInfo, status: StatusMessage): void;
  readerGone(key: object): void;
}

interface ReaderEntry {
  readonly id: number;
  info: ReaderInfo;
  status: StatusMessage;
  at: number;
  connected: boolean;
}

/** Messages to the page (JSON text). */
export type FeedMessage =
  | { readonly type: 'images'; readonly images: readonly ImageSummary[] }
  | { readonly type: 'map'; readonly image: number; readonly cells: number; readonly cellBytes: number; readonly runs: string }
  | { readonly type: 'map-update'; readonly image: number; readonly from: number; readonly runs: string }
  | { readonly type: 'readers'; readonly readers: readonly ReaderSummary[] };

export interface ImageSummary {
  readonly index: number;
  readonly path: string;
  /** Null while no rescue is bound. */
  readonly rescueId: string | null;
  readonly source: string | null;
  readonly size: number;
  readonly cellBytes: number;
  readonly cells: number;
  /** Bytes per status character `? * / - +`. */
  readonly sizes: Readonly<Record<string, number>>;
  readonly merged: number;
}

export interface ReaderSummary {
  readonly id: number;
  readonly peer: string;
  readonly rescueId: string;
  readonly image: string;
  readonly connected: boolean;
  /** Milliseconds since this Status arrived. */
  readonly ageMs: number;
  readonly status: Omit<StatusMessage, 'type'>;
}

/** One browser's pending state; see the module comment. */
export class ViewerQueue {
  readonly #feed: LiveFeed;
  readonly #whole = new Set<number>();
  readonly #dirty = new Map<number, [number, number][]>();
  #images = true;
  #readers = true;
  #wake: () => void;

  /** @param wake called (synchronously, so it must only schedule) whenever something becomes pending. */
  constructor(feed: LiveFeed, wake: () => void) {
    this.#feed = feed;
    this.#wake = wake;
    for (let i = 0; i < feed.images.length; ++i) this.#whole.add(i);
  }

  /** True if `take` has something to send. */
  get pending(): boolean {
    return this.#images || this.#readers || this.#whole.size > 0 || this.#dirty.size > 0;
  }

  /** Image `index` changed at `cells` (cell ranges), or as a whole. */
  mapChanged(index: number, cells: readonly [number, number][] | 'whole'): void {
    this.#images = true;
    if (cells === 'whole') {
      this.#whole.add(index);
      this.#dirty.delete(index);
    } else if (!this.#whole.has(index)) {
      const list = this.#dirty.get(index) ?? [];
      for (const r of cells) addRange(list, r);
      if (list.length > MAX_DIRTY_RANGES) {
        this.#dirty.delete(index);
        this.#whole.add(index);
      } else {
        this.#dirty.set(index, list);
      }
    }
    this.#wake();
  }

  readersChanged(): void {
    this.#readers = true;
    this.#wake();
  }

  /** The messages for what is pending, in order (images, maps, readers); clears it. */
  take(): FeedMessage[] {
    const out: FeedMessage[] = [];
    if (this.#images) out.push({ type: 'images', images: this.#feed.summaries() });
    for (const i of [...this.#whole].sort((a, b) => a - b)) {
      const m = this.#feed.wholeMap(i);
      if (m !== undefined) out.push(m);
    }
    for (const [i, list] of this.#dirty) {
      for (const [from, to] of list) {
        const runs = this.#feed.cellRuns(i, from, to);
        if (runs !== undefined) out.push({ type: 'map-update', image: i, from, runs });
      }
    }
    if (this.#readers) out.push({ type: 'readers', readers: this.#feed.readerSummaries() });
    this.#images = false;
    this.#readers = false;
    this.#whole.clear();
    this.#dirty.clear();
    return out;
  }
}

/** Add `[from, to)` to the sorted, disjoint `list`, joining what touches it. */
function addRange(list: [number, number][], r: readonly [number, number]): void {
  let [from, to] = r;
  if (to <= from) return;
  let i = 0;
  while (i < list.length && list[i]![1] < from) ++i;
  let j = i;
  while (j < list.length && list[j]![0] <= to) {
    from = Math.min(from, list[j]![0]);
    to = Math.max(to, list[j]![1]);
    ++j;
  }
  list.splice(i, j - i, [from, to]);
}

export interface LiveFeedOptions {
  /** Most cells of one map (see map-cells.ts). Default 65 536. */
  readonly maxCells?: number | undefined;
  /** Now in milliseconds (tests). Default `Date.now`. */
  readonly now?: (() => number) | undefined;
}

/**
 * The serve process's state for the live page: its images (through
 * `Image.onChange`) and the readers' latest Status (through the connections).
 */
export class LiveFeed implements ReaderStatusSink {
  readonly images: readonly Image[];
  readonly #maxCells: number;
  readonly #now: () => number;
  readonly #grids: (CellGrid | undefined)[];
  /** A whole map per image, kept until the image changes: many viewers share one. */
  readonly #wholeCache = new Map<number, FeedMessage>();
  readonly #viewers = new Set<ViewerQueue>();
  readonly #readers = new Map<object, ReaderEntry>();
  readonly #stops: (() => void)[] = [];
  #nextReader = 1;

  constructor(images: readonly Image[], options: LiveFeedOptions = {}) {
    this.images = images;
    this.#maxCells = options.maxCells ?? DEFAULT_MAX_CELLS;
    if (!Number.isSafeInteger(this.#maxCells) || this.#maxCells <= 0) throw new RangeError(`live maxCells must be a positive integer, not ${String(options.maxCells)}`);
    this.#now = options.now ?? Date.now;
    this.#grids = images.map(() => undefined);
    images.forEach((image, i) => this.#stops.push(image.onChange((changed) => this.#imageChanged(i, changed))));
  }

  /** Stop listening to the images. */
  close(): void {
    for (const stop of this.#stops.splice(0)) stop();
    this.#viewers.clear();
  }

  /** A new browser: it gets everything first, then changes. Call `remove` when it goes. */
  add(wake: () => void): ViewerQueue {
    const v = new ViewerQueue(this, wake);
    this.#viewers.add(v);
    return v;
  }

  remove(v: ViewerQueue): void {
    this.#viewers.delete(v);
  }

  get viewerCount(): number {
    return this.#viewers.size;
  }

  readerStatus(key: object, info: ReaderInfo, status: StatusMessage): void {
    let e = this.#readers.get(key);
    if (e === undefined) {
      // a reconnected reader replaces its own earlier, gone entry
      for (const [k, old] of this.#readers) if (!old.connected && old.info.rescueId === info.rescueId) this.#readers.delete(k);
      e = { id: this.#nextReader++, info, status, at: this.#now(), connected: true };
      this.#readers.set(key, e);
    } else {
      e.info = info;
      e.status = status;
      e.at = this.#now();
    }
    for (const v of this.#viewers) v.readersChanged();
  }

  readerGone(key: object): void {
    const e = this.#readers.get(key);
    if (e === undefined || !e.connected) return;
    e.connected = false;
    const gone = [...this.#readers].filter(([, r]) => !r.connected);
    for (const [k] of gone.slice(0, Math.max(0, gone.length - MAX_GONE_READERS))) this.#readers.delete(k);
    for (const v of this.#viewers) v.readersChanged();
  }

  #grid(i: number): CellGrid | undefined {
    const image = this.images[i]!;
    const binding = image.binding;
    if (binding === undefined) return undefined;
    let g = this.#grids[i];
    if (g === undefined || g.size !== image.size) {
      g = cellGrid(image.size, binding.sectorSize, this.#maxCells);
      this.#grids[i] = g;
    }
    return g;
  }

  #imageChanged(i: number, changed: readonly Block[]): void {
    this.#wholeCache.delete(i);
    const grid = this.#grid(i);
    if (grid === undefined) return;
    const whole = changed.some((b) => b.pos === 0 && b.size === grid.size);
    const cells = whole ? 'whole' : changed.map((b) => cellsOf(grid, b));
    for (const v of this.#viewers) v.mapChanged(i, cells);
  }

  /** The whole map of image `i`, or undefined while it is unbound. */
  wholeMap(i: number): FeedMessage | undefined {
    const cached = this.#wholeCache.get(i);
    if (cached !== undefined) return cached;
    const grid = this.#grid(i);
    if (grid === undefined) return undefined;
    const m: FeedMessage = { type: 'map', image: i, cells: grid.cells, cellBytes: grid.cellBytes, runs: encodeCells(this.images[i]!, grid, 0, grid.cells) };
    this.#wholeCache.set(i, m);
    return m;
  }

  /** Runs of cells `[from, to)` of image `i`, or undefined while it is unbound. */
  cellRuns(i: number, from: number, to: number): string | undefined {
    const grid = this.#grid(i);
    return grid === undefined ? undefined : encodeCells(this.images[i]!, grid, from, to);
  }

  summaries(): ImageSummary[] {
    return this.images.map((image, index) => {
      const b = image.binding;
      const grid = this.#grid(index);
      return {
        index,
        path: image.path,
        rescueId: b?.rescueId ?? null,
        source: b === undefined ? null : describeFingerprint(b.fingerprint),
        size: image.size,
        cellBytes: grid?.cellBytes ?? 0,
        cells: grid?.cells ?? 0,
        sizes: image.statusSizes(),
        merged: image.mergedCount,
      };
    });
  }

  readerSummaries(): ReaderSummary[] {
    const now = this.#now();
    return [...this.#readers.values()].map((e) => {
      const s = e.status;
      const status: ReaderSummary['status'] = {
        phase: s.phase, message: printable(s.message, 500), pass: s.pass, pos: s.pos, finishedSize: s.finishedSize, nonTriedSize: s.nonTriedSize,
        nonTrimmedSize: s.nonTrimmedSize, nonScrapedSize: s.nonScrapedSize, badSectorSize: s.badSectorSize, readErrors: s.readErrors,
        currentRate: s.currentRate, averageRate: s.averageRate, chunk: s.chunk, chunkCount: s.chunkCount, spoolBytes: s.spoolBytes,
        spoolPieces: s.spoolPieces, runTime: s.runTime, paused: printable(s.paused, 40), pausedText: printable(s.pausedText, 300),
        pausedSeconds: s.pausedSeconds, readingPos: s.readingPos, readingSize: s.readingSize, readingSeconds: s.readingSeconds,
      };
      // the reader's texts, shown by the page: no control or bidi characters
      return { id: e.id, ...e.info, peer: printable(e.info.peer, 200), connected: e.connected, ageMs: Math.max(0, now - e.at), status };
    });
  }
}
