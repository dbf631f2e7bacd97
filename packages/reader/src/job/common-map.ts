import {
  BlockStatus, Domain, type MapfileStatus, StatusMap, formatTimestamp, normalizeForRescue,
} from '@ddferry/mapfile';
import { readMapfile, removeStaleTemporaries } from '@ddferry/mapfile/io';

import { startEdits } from '../engine/rescuebook.js';
import { MapfileUpdater } from '../engine/mapfile-updater.js';
import type { RescueOptions } from '../engine/options.js';
import { ReaderError } from '../errors.js';

/** Where the map's status line is, and the phase message saved with it. */
export interface MapState {
  currentPos: number;
  currentStatus: MapfileStatus;
  currentPass: number;
  message: string;
}

/** A range of statuses, as a piece's delta holds them. */
export interface StatusRange {
  readonly pos: number;
  readonly size: number;
  readonly status: BlockStatus;
}

/**
 * Set `[pos, pos+size)` to `status` in `map`, block by block, where `when(old)` holds
 * (default: everywhere). Ranges outside `domain` are cut to it.
 * @returns the bytes changed.
 */
export function setRange(map: StatusMap, domain: Domain, pos: number, size: number, status: BlockStatus, when: (old: BlockStatus) => boolean = () => true): number {
  let p = Math.max(pos, domain.pos);
  const end = Math.min(pos + size, domain.end);
  let changed = 0;
  while (p < end) {
    const b = map.sblockAt(p);
    if (!b) break;
    const bEnd = Math.min(b.pos + b.size, end);
    if (b.status !== status && when(b.status) && domain.includes({ pos: p, size: bEnd - p })) {
      map.changeChunkStatus({ pos: p, size: bEnd - p }, status, domain);
      changed += bEnd - p;
    }
    p = bEnd;
  }
  return changed;
}

export interface CommonMapOptions {
  readonly path: string;
  readonly sourceSize: number;
  readonly hardbs: number;
  readonly commandLine: string;
  /** `--mapfile-interval`: seconds between saves (-1 automatic), and between fsync-saves. */
  readonly saveInterval: number;
  readonly syncInterval: number;
}

/**
 * `JOBDIR/common.map`, owned by the main process: the GNU ddrescue mapfile of the
 * whole source, holding only what is safe (R1): the map as loaded, then the deltas of
 * pieces once they are durable (in the spool, on a stick, or merged), in sequence
 * order. Saved atomically with ddrescue's timing and `.bak` rule, and on demand.
 */
export class CommonMap {
  readonly path: string;
  readonly domain: Domain;
  map: StatusMap;
  state: MapState;
  readonly #updater: MapfileUpdater;
  #dirty = false;

  private constructor(o: CommonMapOptions, map: StatusMap, state: MapState, startSeconds: number) {
    this.path = o.path;
    this.domain = Domain.fromOptions(0, o.sourceSize);
    this.map = map;
    this.state = state;
    this.#updater = new MapfileUpdater({
      path: o.path, commandLine: o.commandLine, startTime: formatTimestamp(new Date(startSeconds * 1000)),
      saveInterval: o.saveInterval, syncInterval: o.syncInterval, clock: () => Math.floor(Date.now() / 1000),
    });
  }

  /**
   * Load and normalise the map (ddrescue's load-time rules over the whole source).
   * @throws MapfileError as `readMapfile`; ReaderError `ERR_JOB_BAD` if it is missing.
   */
  static async open(o: CommonMapOptions, startSeconds = Math.floor(Date.now() / 1000)): Promise<CommonMap> {
    await removeStaleTemporaries(o.path);
    const m = await readMapfile(o.path, { file: o.path });
    const whole = Domain.fromOptions(0, o.sourceSize);
    const norm = normalizeForRescue(m.blocks, { insize: o.sourceSize, hardbs: o.hardbs, domain: whole, file: o.path });
    return new CommonMap(o, new StatusMap(norm.blocks), { currentPos: m.currentPos, currentStatus: m.currentStatus, currentPass: m.currentPass, message: '' }, startSeconds);
  }

  /** The map's text now (what a save writes), for the reading process. */
  text(): string {
    return Buffer.from(this.#updater.format({ ...this.state, blocks: this.map })).toString('latin1');
  }

  /** Apply a durable piece's delta. */
  apply(delta: readonly StatusRange[]): void {
    for (const d of delta) setRange(this.map, this.domain, d.pos, d.size, d.status);
    if (delta.length > 0) this.#dirty = true;
  }

  /** Mark ranges the image holds as finished (never read again). @returns bytes changed. */
  markFinished(ranges: ReadonlyArray<{ readonly pos: number; readonly size: number }>): number {
    let n = 0;
    for (const r of ranges) n += setRange(this.map, this.domain, r.pos, r.size, BlockStatus.finished);
    if (n > 0) this.#dirty = true;
    return n;
  }

  /** Give finished ranges back to non-tried (their data was lost on the way). @returns bytes changed. */
  reclaim(ranges: ReadonlyArray<{ readonly pos: number; readonly size: number }>): number {
    let n = 0;
    for (const r of ranges) n += setRange(this.map, this.domain, r.pos, r.size, BlockStatus.nonTried, (st) => st === BlockStatus.finished);
    if (n > 0) this.#dirty = true;
    return n;
  }

  /** The `-M`/`-A` edits the reading process makes at the start of `domain`. */
  startEdits(domain: Domain, options: Pick<RescueOptions, 'retrim' | 'tryAgain'>): void {
    const edits = startEdits(this.map, domain, options);
    if (edits.length > 0) {
      // the raw edits leave equal neighbours apart; the saved map is joined, as ddrescue's final save
      this.map.compact();
      this.#dirty = true;
    }
  }

  /** The source ended at `end`: cut the map there (ddrescue's EOF rule). */
  truncate(end: number): void {
    if (this.map.truncate(end)) this.#dirty = true;
  }

  setState(state: MapState): void {
    this.state = { ...state };
    this.#dirty = true;
  }

  /**
   * Save if ddrescue's interval passed (or `force`).
   * @throws ReaderError `ERR_MAPFILE_WRITE` if the save failed (the previous file is intact).
   */
  async save(force = false): Promise<void> {
    if (!force && !this.#dirty) return;
    const ok = await this.#updater.update(() => ({ ...this.state, blocks: this.map }), this.map.length, () => undefined, force);
    if (!ok) {
      throw new ReaderError('ERR_MAPFILE_WRITE', this.path, `${this.path}: the common map can't be saved (${this.#updater.lastError?.message ?? 'unknown error'}).`, {
        cause: this.#updater.lastError, hint: 'Free space on the disk holding the job folder, then run the same command again: the previous map is intact.',
      });
    }
    if (force) this.#dirty = false;
  }

  /** Save now whatever the interval (the start, the end, a signal). */
  async saveNow(): Promise<void> {
    await this.save(true);
  }

  /** Bytes per status over the whole source. */
  sizeOf(st: BlockStatus): number {
    return this.map.sizeOf(st);
  }
}

