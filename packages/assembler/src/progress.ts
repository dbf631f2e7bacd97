/**
 * The progress of the assembler, per reader: what `serve` (and `import`) print at an
 * interval, redraw on a terminal, or give as JSON lines.
 *
 * | figure | from |
 * |---|---|
 * | state, peer, image | the connection's events (`ConnectionProgress`), or the import's |
 * | `piecesMerged` | the image's merged count now minus when this run first saw it |
 * | `bytesMerged` | the image's `+` bytes now minus when this run first saw it (an import: its bundles' piece bytes) |
 * | `rate` | `bytesMerged` gained since the previous snapshot, per second |
 * | `imageRescued`, `pctRescued` | the image's `+` bytes (summed again only when its merged count moved) |
 * | `lastError` | the last refusal, rejected piece or failure on this reader's connections |
 */
import { formatPercentage } from '@ddferry/mapfile';

import type { BundleEvent } from './import.js';

/** Who a connection is: its address (and reader name), and its rescue once its Hello came. */
export interface ReaderIdentity {
  readonly peer: string;
  readonly rescueId?: string | undefined;
}

/** What a connection tells the progress (all optional for the connection: `ctx.progress?.…`). */
export interface ConnectionProgress {
  /** The handshake is done: pieces of `rescueId` go to `image`. */
  connected(who: ReaderIdentity & { readonly rescueId: string; readonly image: string }): void;
  /** A refusal, a rejected piece or a failure (with its code). */
  problem(who: ReaderIdentity, code: string, message: string): void;
  /** The connection closed. */
  disconnected(who: ReaderIdentity): void;
}

/** What the progress reads of an image (`Image` has these members). */
export interface ImageSource {
  readonly path: string;
  readonly size: number;
  readonly mergedCount: number;
  readonly binding?: { readonly rescueId: string } | undefined;
  finishedRanges(): ReadonlyArray<{ readonly size: number }>;
}

/** What an import tells per bundle: the import's own event. */
export type BundleProgressEvent = BundleEvent;

export type ReaderState = 'connected' | 'disconnected' | 'importing' | 'imported';

/** One reader (or one stick import) in a snapshot. Keys are stable (the `--json` lines). */
export interface ReaderProgress {
  readonly rescueId: string | null;
  /** `HOST:PORT (reader name)`, or `stick DIR` for an import. */
  readonly peer: string;
  readonly image: string | null;
  readonly state: ReaderState;
  readonly piecesMerged: number;
  readonly bytesMerged: number;
  /** Bytes per second since the previous snapshot. */
  readonly rate: number;
  readonly imageRescued: number;
  readonly imageSize: number;
  /** `imageRescued` in percent of `imageSize` (2 decimals), 0 for an empty image. */
  readonly pctRescued: number;
  /** For an import: the last bundle looked at (1-based) and how many there are; else null. */
  readonly bundles: { readonly index: number; readonly total: number } | null;
  readonly lastError: { readonly code: string; readonly message: string } | null;
}

export interface AssemblerProgressSnapshot {
  /** Seconds since the command started. */
  readonly time: number;
  readonly readers: readonly ReaderProgress[];
}

/** Readers kept at most (the oldest not connected go first). */
export const MAX_ENTRIES = 64;

interface Entry {
  rescueId: string | null;
  peer: string;
  image: ImageSource | null;
  imagePath: string | null;
  state: ReaderState;
  /** The image's merged count and `+` bytes when this run first saw it. */
  baseCount: number;
  baseBytes: number;
  /** An import counts its own pieces and bytes. */
  importPieces: number;
  importBytes: number;
  bundles: { index: number; total: number } | null;
  lastError: { code: string; message: string } | null;
  prevBytes: number;
  prevMs: number;
}

export interface AssemblerProgressOptions {
  readonly images?: readonly ImageSource[] | undefined;
  /** Milliseconds (`Date.now` in use; tests drive it). */
  readonly clock: () => number;
}

/**
 * The book of readers the command has seen (keyed by rescue id, or by address before
 * a Hello told it): feed it connection events (it is a `ConnectionProgress`) or an
 * import's bundle events, take snapshots.
 */
export class AssemblerProgress implements ConnectionProgress {
  /** The images (serve sets them once they are open). */
  images: readonly ImageSource[];
  readonly #clock: () => number;
  readonly #startMs: number;
  readonly #entries = new Map<string, Entry>();
  readonly #rescued = new Map<ImageSource, { count: number; bytes: number }>();

  constructor(options: AssemblerProgressOptions) {
    this.images = options.images ?? [];
    this.#clock = options.clock;
    this.#startMs = options.clock();
  }

  connected(who: ReaderIdentity & { readonly rescueId: string; readonly image: string }): void {
    const e = this.#entry(who);
    e.imagePath = who.image;
    this.#resolveImage(e);
    e.peer = who.peer;
    e.state = 'connected';
  }

  /** Find the entry's image among `images` (they may be set after the first connection) and take its baseline. */
  #resolveImage(e: Entry): void {
    if (e.image !== null || e.imagePath === null) return;
    const image = this.images.find((i) => i.path === e.imagePath);
    if (image === undefined) return;
    e.image = image;
    e.baseCount = image.mergedCount;
    e.baseBytes = this.#rescuedBytes(image);
  }

  problem(who: ReaderIdentity, code: string, message: string): void {
    this.#entry(who).lastError = { code, message };
  }

  disconnected(who: ReaderIdentity): void {
    const e = this.#entries.get(keyOf(who));
    if (e && e.state === 'connected') e.state = 'disconnected';
  }

  /**
   * An import's bundle event (the import's `onBundle`): the entry `stick FOLDER` for
   * `image`, its pieces and bytes, its refusals as the last error.
   */
  bundle(folder: string, image: ImageSource, e: BundleProgressEvent): void {
    const entry = this.#entry({ peer: `stick ${folder}`, rescueId: image.binding?.rescueId });
    if (entry.image === null) {
      entry.image = image;
      entry.imagePath = image.path;
      entry.baseCount = image.mergedCount;
      entry.baseBytes = this.#rescuedBytes(image);
    }
    entry.state = e.index >= e.total ? 'imported' : 'importing';
    entry.bundles = { index: e.index, total: e.total };
    if (e.outcome === 'merged') {
      entry.importPieces += e.pieces;
      entry.importBytes += e.bytes;
    }
    if (e.outcome === 'refused' || e.outcome === 'unreadable') {
      entry.lastError = { code: e.code ?? 'ERR_BUNDLE', message: `${e.bundle}: ${e.reason ?? e.outcome}` };
    }
  }

  /** The readers now, in the order first seen; each rate is over the time since the previous snapshot. */
  snapshot(): AssemblerProgressSnapshot {
    const now = this.#clock();
    const readers: ReaderProgress[] = [];
    for (const e of this.#entries.values()) {
      this.#resolveImage(e);
      const image = e.image;
      const imageRescued = image ? this.#rescuedBytes(image) : 0;
      const imported = e.bundles !== null;
      const piecesMerged = imported ? e.importPieces : image ? Math.max(0, image.mergedCount - e.baseCount) : 0;
      const bytesMerged = imported ? e.importBytes : Math.max(0, imageRescued - e.baseBytes);
      const dt = (now - e.prevMs) / 1000;
      const rate = dt > 0 ? Math.max(0, Math.round((bytesMerged - e.prevBytes) / dt)) : 0;
      e.prevBytes = bytesMerged;
      e.prevMs = now;
      const imageSize = image?.size ?? 0;
      readers.push({
        rescueId: e.rescueId,
        peer: e.peer,
        image: image?.path ?? e.imagePath,
        state: e.state,
        piecesMerged,
        bytesMerged,
        rate,
        imageRescued,
        imageSize,
        pctRescued: imageSize > 0 ? Number.parseFloat(formatPercentage(imageRescued, imageSize, 3, 2, false)) : 0,
        bundles: e.bundles ? { ...e.bundles } : null,
        lastError: e.lastError ? { ...e.lastError } : null,
      });
    }
    return { time: Math.max(0, Math.floor((now - this.#startMs) / 1000)), readers };
  }

  #entry(who: ReaderIdentity): Entry {
    const key = keyOf(who);
    let e = this.#entries.get(key);
    if (e === undefined) {
      e = {
        rescueId: who.rescueId ?? null, peer: who.peer, image: null, imagePath: null, state: 'disconnected', baseCount: 0, baseBytes: 0,
        importPieces: 0, importBytes: 0, bundles: null, lastError: null, prevBytes: 0, prevMs: this.#clock(),
      };
      this.#entries.set(key, e);
      if (this.#entries.size > MAX_ENTRIES) this.#evict();
    }
    return e;
  }

  /** Drop the oldest entry not connected: unauthenticated peers can make entries (S2), so the book stays bounded. */
  #evict(): void {
    for (const [key, e] of this.#entries) {
      if (e.state !== 'connected' && e.state !== 'importing') {
        this.#entries.delete(key);
        return;
      }
    }
  }

  /** The image's `+` bytes, summed again only when its merged count moved. */
  #rescuedBytes(image: ImageSource): number {
    const cached = this.#rescued.get(image);
    if (cached && cached.count === image.mergedCount) return cached.bytes;
    let bytes = 0;
    for (const r of image.finishedRanges()) bytes += r.size;
    this.#rescued.set(image, { count: image.mergedCount, bytes });
    return bytes;
  }
}

function keyOf(who: ReaderIdentity): string {
  return who.rescueId !== undefined ? `rescue ${who.rescueId}` : `peer ${who.peer}`;
}
