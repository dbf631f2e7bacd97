import { type BlockWalker, type MapfileStatus, formatMapfile, formatMapfileChunks, formatTimestamp } from '@ddferry/mapfile';
import { saveMapfile } from '@ddferry/mapfile/io';

/** What a mapfile save writes. */
export interface MapfileSnapshot {
  readonly currentPos: number;
  readonly currentStatus: MapfileStatus;
  readonly currentPass: number;
  readonly message: string;
  readonly blocks: BlockWalker;
}

export interface MapfileUpdaterOptions {
  readonly path: string;
  readonly commandLine: string;
  /** Local time at start, as the header shows it. */
  readonly startTime: string;
  /** `--mapfile-interval SAVE`: seconds, -1 = automatic (30 s to 5 min by block count). */
  readonly saveInterval: number;
  /** `--mapfile-interval ,SYNC`: seconds. */
  readonly syncInterval: number;
  /** Seconds, integer (ddrescue's `time(0)`). */
  readonly clock: () => number;
  /**
   * How a save is made (default: the mapfile text, saved atomically at `path`). The
   * reading process hands its saves to the main process instead, which owns the map.
   */
  readonly save?: (snapshot: MapfileSnapshot, backup: boolean, force: boolean) => Promise<void>;
}

/**
 * GNU ddrescue's `update_mapfile` timing (spec 1.11): a save after a read once the save
 * interval has passed, `.bak` kept when the previous save was an fsync-save. Unlike
 * ddrescue, every save is atomic and durable (temporary file, fsync, rename, fsync of
 * the folder), and the data sink is synced first, so the map never says `+` for data
 * that is not durable.
 */
export class MapfileUpdater {
  readonly path: string;
  readonly #o: MapfileUpdaterOptions;
  #t1 = 0;
  #t1s = 0;
  #prevSync = false;
  /** The error of the last failed save. */
  lastError: Error | null = null;

  constructor(options: MapfileUpdaterOptions) {
    this.#o = options;
    this.path = options.path;
  }

  /** The mapfile text for `snapshot`, in pieces from one reused buffer (a large map is never whole in memory). */
  chunks(snapshot: MapfileSnapshot): Iterable<Uint8Array> {
    return formatMapfileChunks(
      { currentPos: snapshot.currentPos, currentStatus: snapshot.currentStatus, currentPass: snapshot.currentPass, blocks: snapshot.blocks },
      { program: 'ddferry', commandLine: this.#o.commandLine, startTime: this.#o.startTime, currentTime: formatTimestamp(new Date()), message: snapshot.message },
    );
  }

  /** The mapfile text for `snapshot`. */
  format(snapshot: MapfileSnapshot, withCurrentTime = true): Uint8Array {
    return formatMapfile(
      { currentPos: snapshot.currentPos, currentStatus: snapshot.currentStatus, currentPass: snapshot.currentPass, blocks: snapshot.blocks },
      {
        program: 'ddferry',
        commandLine: this.#o.commandLine,
        startTime: this.#o.startTime,
        currentTime: withCurrentTime ? formatTimestamp(new Date()) : undefined,
        message: snapshot.message,
      },
    );
  }

  /** Write the mapfile now, without touching the interval clocks (the initial write). */
  async write(snapshot: MapfileSnapshot): Promise<boolean> {
    try {
      await saveMapfile(this.path, this.chunks(snapshot));
      return true;
    } catch (err) {
      this.lastError = err as Error;
      return false;
    }
  }

  /**
   * True if the save interval has passed (`update` saves): checked before each read's
   * `update` without a promise (a scraping run makes half a million of them). The first
   * call starts the interval's clock.
   */
  due(blockCount: number): boolean {
    return this.#due(blockCount, this.#o.clock());
  }

  #due(blockCount: number, t2: number): boolean {
    const interval = this.#o.saveInterval >= 0 ? this.#o.saveInterval : 30 + Math.min(270, Math.trunc(blockCount / 38));
    if (this.#t1 === 0 || this.#t1 > t2) this.#t1 = this.#t1s = t2;
    return t2 - this.#t1 >= interval;
  }

  /**
   * Save if the interval has passed, or if `force`. `beforeSave` runs first (fsync the output).
   * @returns false only if a save was attempted and failed.
   */
  async update(snapshot: () => MapfileSnapshot, blockCount: number, beforeSave: () => void | Promise<void>, force = false): Promise<boolean> {
    const t2 = this.#o.clock();
    if (!this.#due(blockCount, t2) && !force) return true;
    const sync = force || t2 - this.#t1s >= this.#o.syncInterval;
    try {
      await beforeSave();
    } catch (err) {
      // the data is not durable: the map must not say so
      this.lastError = err as Error;
      return false;
    }
    const backup = this.#prevSync;
    this.#prevSync = sync;
    try {
      if (this.#o.save) await this.#o.save(snapshot(), backup, force);
      else await saveMapfile(this.path, this.chunks(snapshot()), { backup });
    } catch (err) {
      this.lastError = err as Error;
      return false;
    }
    this.lastError = null;
    this.#t1 = this.#o.clock();
    if (sync) this.#t1s = this.#t1;
    return true;
  }
}
