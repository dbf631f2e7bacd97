import {
  type Block, BlockStatus, type Domain, MapfileStatus, type StatusMap, formatPercentage, mapfileStatusName, statusOfCode,
} from '@ddferry/mapfile';

import type { Source } from '../source/source.js';
import { strerror } from '../strerror.js';
import type { TestModeSource } from '../source/test-mode-source.js';
import type { MapfileUpdater } from './mapfile-updater.js';
import { MAX_MAX_SKIPBS, MIN_SKIPBS, type RescueOptions } from './options.js';
import { SlidingAverage } from './rates.js';
import type { RescueReporter } from './reporter.js';
import type { RescueSink } from './sink.js';

/** Errors of `copy_block` that stop the rescue when nothing was read (ddrescue's list). */
const FATAL_READ_ERRORS = new Set(['EACCES', 'EBADF', 'EBUSY', 'EISDIR', 'ENOBUFS', 'ENODEV', 'ENOENT', 'ENOMEM', 'ENOSYS', 'ENXIO', 'EPERM', 'ESPIPE']);

/** Bits of ddrescue's `e_code`: why the run stopped. */
export const StopCause = { errorRate: 1, badAreas: 2, timeout: 4, other: 8, readErrors: 16, slowReads: 32 } as const;

/** Result of a read step or a phase: 0 OK, 1 error (stop), -1 interrupted, -2 mapfile error. */
export type StepResult = 0 | 1 | -1 | -2;

/** ddrescue's "pass or phase not finished" return value (-3). */
export const CONTINUE = -3;

export interface ReadOutcome {
  readonly result: StepResult;
  readonly copied: number;
  readonly error: number;
}

export interface RescuebookInit {
  readonly source: Source;
  /** The test-mode view of the source (`-H`), if any. */
  readonly testSource?: TestModeSource;
  readonly sink: RescueSink;
  readonly reporter: RescueReporter;
  /** The normalised map (spec 1.7). */
  readonly map: StatusMap;
  readonly domain: Domain;
  /** Input size; 0 if unknown. */
  readonly insize: number;
  /** Output position minus input position. */
  readonly offset: number;
  readonly currentPos: number;
  readonly currentStatus: MapfileStatus;
  readonly currentPass: number;
  readonly mapfile?: MapfileUpdater;
  readonly options: RescueOptions;
  /** The I/O buffer: at least cluster + 1 sectors, aligned for direct I/O when `-d`. */
  readonly iobuf: Uint8Array;
  /** Seconds, integer (ddrescue's `time(0)`). */
  readonly clock: () => number;
  /** Seconds at program start. */
  readonly startTime: number;
  /** True once SIGINT, SIGTERM or SIGHUP arrived. */
  readonly interrupted: () => boolean;
  /** Sleep for a number of seconds (pauses); tests pass a fake. */
  readonly sleep: (seconds: number) => Promise<void>;
  /**
   * Called just before each read of the source is judged and made (test mode included),
   * with the block asked for: the reading process announces it, so a read that hangs is known.
   */
  readonly beforeRead?: (pos: number, size: number) => void;
  /**
   * A second buffer like `iobuf`: with it, a read of `ASYNC_WRITE_BYTES` or more is written
   * in the thread pool while the next read is made into the other buffer (`sink.writeAsync`).
   * `ddferry-reader ddrescue` gives one with `-d`, where no readahead of the kernel reads
   * on while the output is written.
   */
  readonly spareIobuf?: Uint8Array;
}

/**
 * Reads of at least this many bytes are written in the thread pool while the next read
 * is made (`RescuebookInit.spareIobuf`); smaller ones (trimming, scraping, retrying: a
 * sector at a time) are written at once, where a thread-pool round trip costs more
 * than the write.
 */
export const ASYNC_WRITE_BYTES = 16 << 10;

/** What a read step of trimming, scraping or retrying ended with. */
export interface SectorStep {
  readonly result: number;
  readonly error: number;
}

/** What `#copyBlock` did: bytes copied and failed, or a fatal message (`whole`: it is the final message as is). */
interface CopyResult {
  readonly copied: number;
  readonly error: number;
  readonly fatal?: string;
  readonly whole?: boolean;
}

/** A write error is fatal, as in ddrescue; the data read is not marked rescued. */
function writeFailed(err: unknown): CopyResult {
  return { copied: 0, error: 0, fatal: (err as Error).message, whole: true };
}

/**
 * Bytes of consecutive small reads gathered into one write (a sink that allows it,
 * `RescueSink.gathersWrites`): trimming, scraping and retrying read a sector at a time,
 * and a write of 512 bytes cost more than its read (scraping-heavy test mode: 26 % of
 * the time in `writeSync`).
 */
export const GATHER_BYTES = 256 << 10;

/** A read gathered, not yet written: where, and the status it had before it was marked finished. */
interface GatheredRead {
  readonly pos: number;
  readonly size: number;
  readonly was: BlockStatus;
}

/** A write under way in the thread pool: the read it holds, and its status before. */
interface WriteInFlight {
  readonly done: Promise<void>;
  readonly pos: number;
  readonly size: number;
  readonly was: BlockStatus;
}

/**
 * The raw status edits of `-M` (retrim: `/` and `-` become `*`) and `-A` (try again:
 * `/` and `*` become `?`) over the domain's blocks, in order, as the Rescuebook
 * constructor makes them (one block at a time, no joining).
 */
export function startEdits(map: StatusMap, domain: Domain, o: Pick<RescueOptions, 'retrim' | 'tryAgain'>): Array<{ pos: number; size: number; status: BlockStatus }> {
  const edits: Array<{ pos: number; size: number; status: BlockStatus }> = [];
  const pass = (match: (st: BlockStatus) => boolean, to: BlockStatus): void => {
    const found: Array<{ pos: number; size: number }> = [];
    map.forEachBlock((pos, end, code) => {
      if (domain.includes({ pos, size: end - pos }) && match(statusOfCode(code))) found.push({ pos, size: end - pos });
    });
    for (const b of found) {
      map.setBlockStatus(b.pos, to);
      edits.push({ ...b, status: to });
    }
  };
  if (o.retrim) pass((st) => st === BlockStatus.nonScraped || st === BlockStatus.badSector, BlockStatus.nonTrimmed);
  if (o.tryAgain) pass((st) => st === BlockStatus.nonScraped || st === BlockStatus.nonTrimmed, BlockStatus.nonTried);
  return edits;
}

function roundUp(size: number, hardbs: number): number {
  const rem = size % hardbs;
  return rem ? size - rem + hardbs : size;
}

/**
 * The state of one rescue run, and the read step every phase shares: GNU ddrescue's
 * `Rescuebook` (spec 2). The phases live in their own files and drive it.
 */
export class Rescuebook {
  readonly source: Source;
  readonly testSource: TestModeSource | undefined;
  readonly sink: RescueSink;
  readonly reporter: RescueReporter;
  readonly map: StatusMap;
  domain: Domain;
  readonly offset: number;
  readonly options: RescueOptions;
  readonly hardbs: number;
  readonly softbs: number;
  readonly skipbs: number;
  readonly maxSkipbs: number;
  readonly mapfile: MapfileUpdater | undefined;

  currentPos: number;
  currentStatus: MapfileStatus;
  currentPass: number;
  currentMessage = '';

  nonTried = 0;
  nonTrimmed = 0;
  nonScraped = 0;
  badSize = 0;
  finished = 0;
  badAreas = 0;
  readErrors = 0;
  slowReads = 0;
  errorSum = 0;
  eCode = 0;
  maxBadAreas: number;
  minReadRate: number;
  /** A message for the end (ddrescue's `final_msg`). */
  finalMessage = '';

  #iobuf: Uint8Array;
  /** The buffer a write in flight holds (or the next to read into), when writes overlap reads. */
  #spareIobuf: Uint8Array | null;
  #inFlight: WriteInFlight | null = null;
  /** Consecutive small reads not written yet (`GATHER_BYTES`), when the sink gathers writes. */
  readonly #gather: Uint8Array | null;
  #gatherPos = 0;
  #gathered = 0;
  #gatheredReads: GatheredRead[] = [];
  /** A write that failed while the map was saved: fatal at the next read. */
  #writeFailure: string | null = null;
  readonly #clock: () => number;
  readonly #startTime: number;
  readonly #interrupted: () => boolean;
  readonly sleep: (seconds: number) => Promise<void>;
  readonly #beforeRead: ((pos: number, size: number) => void) | undefined;
  #lastYield = Date.now();

  // update_rates
  aRate = 0;
  cRate = 0;
  errorRate = 0;
  #firstSize = 0;
  #lastSize = 0;
  t0 = 0;
  t1 = 0;
  ts = 0;
  /** Accumulated simulated pause (seconds). */
  tp = 0;
  ratesUpdated = false;
  currentSlow = false;
  prevSlow = false;
  // show_status
  #lastIpos = 0;
  readonly #slidingAverage = new SlidingAverage(30);
  firstPost = true;
  firstRead = true;

  constructor(init: RescuebookInit) {
    const o = init.options;
    this.source = init.source;
    this.testSource = init.testSource;
    this.sink = init.sink;
    this.reporter = init.reporter;
    this.map = init.map;
    this.domain = init.domain;
    this.offset = init.offset;
    this.options = o;
    this.hardbs = o.hardbs;
    this.softbs = o.cluster * o.hardbs;
    this.mapfile = init.mapfile;
    this.currentPos = init.currentPos;
    this.currentStatus = init.currentStatus;
    this.currentPass = init.currentPass;
    this.#iobuf = init.iobuf;
    this.#gather = init.sink.gathersWrites === true ? new Uint8Array(GATHER_BYTES) : null;
    this.#spareIobuf = init.spareIobuf !== undefined && init.spareIobuf.length >= init.iobuf.length && init.sink.writeAsync !== undefined ? init.spareIobuf : null;
    this.#clock = init.clock;
    this.#startTime = init.startTime;
    this.#interrupted = init.interrupted;
    this.sleep = init.sleep;
    this.#beforeRead = init.beforeRead;
    this.maxBadAreas = o.maxBadAreas;
    this.minReadRate = o.minReadRate;

    // skip sizes (Rescuebook constructor)
    const insize = init.insize;
    let skipbs = o.skipbs < 0 ? roundUp(Math.max(Math.trunc(insize / 100000), MIN_SKIPBS), MIN_SKIPBS) : o.skipbs;
    let maxSkipbs = o.maxSkipbs < 0 ? MAX_MAX_SKIPBS : o.maxSkipbs;
    const csize = Math.trunc(insize / 100);
    if (insize > 0 && skipbs > 0 && o.maxSkipbs < 0 && csize < maxSkipbs) maxSkipbs = Math.max(skipbs, csize);
    skipbs = roundUp(skipbs, this.hardbs);
    maxSkipbs = roundUp(maxSkipbs, this.hardbs);
    this.skipbs = skipbs;
    this.maxSkipbs = maxSkipbs;

    // -M and -A: raw status edits, one block at a time, no joining
    startEdits(this.map, this.domain, o);
    this.initializeSizes();
    if (o.newBadAreasOnly) this.maxBadAreas += this.badAreas;
  }

  /** Call `fn` for each block inside the domain, in order. */
  forEachDomainBlock(fn: (pos: number, end: number, st: BlockStatus) => void): void {
    this.map.forEachBlock((pos, end, code) => {
      if (this.domain.includes({ pos, size: end - pos })) fn(pos, end, statusOfCode(code));
    });
  }

  /** Count sizes and bad areas over the domain (ddrescue's `initialize_sizes`). */
  initializeSizes(): void {
    this.nonTried = this.nonTrimmed = this.nonScraped = this.badSize = this.finished = 0;
    this.badAreas = 0;
    let good = true;
    let prevEnd = -1;
    this.forEachDomainBlock((pos, end, st) => {
      if (pos !== prevEnd) good = true; // a block outside the domain came between
      prevEnd = end;
      const size = end - pos;
      switch (st) {
        case BlockStatus.nonTried: this.nonTried += size; good = true; break;
        case BlockStatus.nonTrimmed: this.nonTrimmed += size; good = true; break;
        case BlockStatus.nonScraped: this.nonScraped += size; good = true; break;
        case BlockStatus.badSector:
          this.badSize += size;
          if (good) {
            good = false;
            ++this.badAreas;
          }
          break;
        case BlockStatus.finished: this.finished += size; good = true; break;
      }
    });
  }

  #addSize(st: BlockStatus, delta: number): void {
    switch (st) {
      case BlockStatus.nonTried: this.nonTried += delta; break;
      case BlockStatus.nonTrimmed: this.nonTrimmed += delta; break;
      case BlockStatus.nonScraped: this.nonScraped += delta; break;
      case BlockStatus.badSector: this.badSize += delta; break;
      case BlockStatus.finished: this.finished += delta; break;
    }
  }

  /** Change the status of a chunk inside one block, keeping the counters (ddrescue's wrapper). */
  changeChunkStatus(b: Block, st: BlockStatus): void {
    const old = this.map.sblockAt(b.pos)?.status ?? st;
    this.badAreas += this.map.changeChunkStatus(b, st, this.domain);
    if (old === st) return;
    this.sink.statusChanged?.(b.pos, b.size, st);
    this.#addSize(old, -b.size);
    this.#addSize(st, b.size);
  }

  /**
   * Give the whole block at `pos` status `st` without joining neighbours and without
   * updating the counters (ddrescue's `change_sblock_status`, the trimming shortcut).
   */
  setBlockStatusRaw(pos: number, st: BlockStatus): void {
    const before = this.map.setBlockStatus(pos, st);
    if (before && before.status !== st) this.sink.statusChanged?.(before.pos, before.size, st);
  }

  /** Status of the block at `pos`, or null. */
  statusAt(pos: number): BlockStatus | null {
    return this.map.sblockAt(pos)?.status ?? null;
  }

  /** The domain size (`domain().in_size()`). */
  domainSize(): number {
    return this.domain.inSize();
  }

  percentRescued(): string {
    const den = this.domain.inSizeExact();
    return formatPercentage(this.finished, den, 3, 2, false);
  }

  rescueFinished(): boolean {
    return this.finished >= this.domainSize();
  }

  errorsOrTimeout(): boolean {
    if (this.badAreas > this.maxBadAreas) this.eCode |= StopCause.badAreas;
    return this.eCode !== 0;
  }

  setStatus(st: MapfileStatus, message = ''): void {
    this.currentStatus = st;
    this.currentMessage = st === MapfileStatus.finished ? 'Finished' : message;
  }

  statusName(): string {
    return mapfileStatusName(this.currentStatus);
  }

  /**
   * `copy_block`: read `b`, write what was read, log the read. Without a promise when
   * the write is done at once (a scraping run makes half a million reads).
   * @returns copied and failed byte counts, or a fatal message.
   */
  #copyBlock(b: Block): CopyResult | Promise<CopyResult> {
    let copied = 0;
    let error = 0;
    const test = this.testSource;
    this.#beforeRead?.(b.pos, b.size);
    if (!test || test.isGood(b.pos, b.size)) {
      const read = test ? test.readData.bind(test) : this.source.read.bind(this.source);
      let errno: string | null;
      if (this.options.directIn) {
        const hardbs = this.hardbs;
        const pre = b.pos % hardbs;
        const disp = (b.pos + b.size) % hardbs;
        const post = disp > 0 ? hardbs - disp : 0;
        const size = pre + b.size + post;
        if (size > this.#iobuf.length) throw new Error('internal error: (size > iobuf_size) copying a Block.');
        const r = read(this.#iobuf, size, b.pos - pre);
        errno = r.errno;
        copied = r.copied - Math.min(pre, r.copied);
        if (copied > b.size) copied = b.size;
        if (pre > 0 && copied > 0) this.#iobuf.copyWithin(0, pre, pre + copied);
      } else {
        const r = read(this.#iobuf, b.size, b.pos);
        errno = r.errno;
        copied = r.copied;
      }
      error = errno ? b.size - copied : 0;
      if (copied <= 0 && errno) {
        if (errno === 'ENXIO' || errno === 'ENODEV') {
          return { copied, error, fatal: `ERR_SOURCE_VANISHED: ${this.source.name}: Fatal error reading the input file: ${strerror(errno)}. The device is gone: the mapfile is saved; reconnect it and run the same command to resume.`, whole: true };
        }
        if (FATAL_READ_ERRORS.has(errno)) {
          return { copied, error, fatal: `ERR_SOURCE_FATAL_READ: ${this.source.name}: Fatal error reading the input file: ${strerror(errno)}. The mapfile is saved; fix the cause and run the same command to resume.`, whole: true };
        }
        if (errno === 'EINVAL') {
          return { copied, error, fatal: `ERR_SOURCE_UNALIGNED_READ: ${this.source.name}: Unaligned read error. Is sector size correct? Give the device's logical sector size with -b, or run without -d.`, whole: true };
        }
      }
    } else {
      error = b.size;
    }
    if (copied > 0) {
      let w: void | Promise<void>;
      try {
        w = this.#write(b.pos, copied);
      } catch (err) {
        return writeFailed(err);
      }
      if (w) return w.then(() => this.#readDone(b, copied, error), writeFailed);
    }
    return this.#readDone(b, copied, error);
  }

  #readDone(b: Block, copied: number, error: number): CopyResult {
    this.reporter.readDone(b.pos, b.size, copied, error);
    return { copied, error };
  }

  /**
   * Write the `copied` bytes read into the buffer at `pos`: in the thread pool while the
   * next read is made (a large read, with a spare buffer), else at once. The write before
   * it is settled first, so one is in flight at most, in order.
   */
  #write(pos: number, copied: number): void | Promise<void> {
    if (this.#inFlight !== null) return this.#settleWrites().then(() => this.#writeNow(pos, copied));
    return this.#writeNow(pos, copied);
  }

  #writeNow(pos: number, copied: number): void | Promise<void> {
    const data = this.#iobuf.subarray(0, copied);
    const gather = this.#gather;
    if (gather !== null && copied < ASYNC_WRITE_BYTES) {
      const was = this.#statusBefore(pos, copied);
      if (was !== null) {
        if (this.#gathered > 0 && (pos !== this.#gatherPos + this.#gathered || this.#gathered + copied > gather.length)) this.#flushGathered();
        if (this.#gathered === 0) this.#gatherPos = pos;
        gather.set(data, this.#gathered);
        this.#gathered += copied;
        this.#gatheredReads.push({ pos, size: copied, was });
        return;
      }
    }
    this.#flushGathered();
    const spare = this.#spareIobuf;
    if (spare !== null && copied >= ASYNC_WRITE_BYTES) {
      const was = this.#statusBefore(pos, copied);
      if (was !== null) {
        const done = this.sink.writeAsync!(pos, data);
        done.catch(() => undefined); // settled, and its error handled, in #settleWrites
        this.#inFlight = { done, pos, size: copied, was };
        this.#spareIobuf = this.#iobuf;
        this.#iobuf = spare;
        return;
      }
    }
    return this.sink.write(pos, data);
  }

  /**
   * The status `[pos, pos+size)` has until it is marked finished, the one it gets back if
   * its deferred write fails; null unless one block holds it all (then it is written at once).
   */
  #statusBefore(pos: number, size: number): BlockStatus | null {
    const sb = this.map.sblockAt(pos);
    return sb !== null && sb.pos <= pos && sb.pos + sb.size >= pos + size ? sb.status : null;
  }

  /**
   * Write the gathered reads, in one write. If it fails, each of them gets back the status
   * it had before (none is in the output for sure), and the error is thrown.
   * @throws ReaderError `ERR_OUTPUT_WRITE`.
   */
  #flushGathered(): void {
    if (this.#gathered === 0) return;
    const reads = this.#gatheredReads;
    const data = this.#gather!.subarray(0, this.#gathered);
    this.#gathered = 0;
    this.#gatheredReads = [];
    try {
      // a sink that gathers writes writes at once (`gathersWrites`)
      void this.sink.write(this.#gatherPos, data);
    } catch (err) {
      for (const r of reads) this.changeChunkStatus({ pos: r.pos, size: r.size }, r.was);
      throw err;
    }
  }

  /**
   * Write what is gathered, and wait for the write in flight, if any. If one failed, its
   * reads get back the status they had before (they are not in the output), and the error
   * is thrown.
   */
  async #settleWrites(): Promise<void> {
    this.#flushGathered();
    const f = this.#inFlight;
    if (f === null) return;
    this.#inFlight = null;
    try {
      await f.done;
    } catch (err) {
      this.changeChunkStatus({ pos: f.pos, size: f.size }, f.was);
      throw err;
    }
  }

  /**
   * Before a mapfile save and the run's last one: wait for the write in flight.
   * @returns the message of a write that failed (now or at an earlier save), or null.
   */
  async finishWrites(): Promise<string | null> {
    try {
      await this.#settleWrites();
    } catch (err) {
      this.#writeFailure ??= (err as Error).message;
    }
    return this.#writeFailure;
  }

  /**
   * One read step (`copy_and_update`, spec 2.3): phase bookkeeping, the stop checks,
   * the read, and the status changes. `fst` is the status a failed read of more than
   * one sector gets.
   */
  copyAndUpdate(b: Block, message: string, phase: MapfileStatus, pass: number, forward: boolean, fst: BlockStatus = BlockStatus.badSector): ReadOutcome | Promise<ReadOutcome> {
    if (this.firstPost && !this.firstRead && this.options.pauseOnPass > 0) {
      return (async () => {
        this.showStatus(-1, 'Paused', true);
        await this.sleep(this.options.pauseOnPass);
        const t2 = this.#clock();
        if (this.t1 < t2) this.t1 = t2;
        this.ts = Math.min(this.ts + this.options.pauseOnPass, t2);
        return this.#stepAfterPause(b, message, phase, pass, forward, fst);
      })();
    }
    return this.#stepAfterPause(b, message, phase, pass, forward, fst);
  }

  /** `copyAndUpdate` from the phase's first post on; a promise only where it waits (a yield, an overlapped write). */
  #stepAfterPause(b: Block, message: string, phase: MapfileStatus, pass: number, forward: boolean, fst: BlockStatus): ReadOutcome | Promise<ReadOutcome> {
    if (this.firstPost) {
      this.setStatus(phase, message);
      this.currentPass = pass;
      this.reporter.phaseStarted(this.t1 - this.t0, this.percentRescued(), message);
    }
    this.currentPos = forward ? b.pos : b.pos + b.size;
    this.showStatus(b.pos, message);
    if (this.errorsOrTimeout()) return { result: 1, copied: 0, error: 0 };
    if (Date.now() - this.#lastYield > 50) {
      // let signal handlers run between reads
      return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.#lastYield = Date.now();
        return this.#readAndJudge(b, fst);
      });
    }
    return this.#readAndJudge(b, fst);
  }

  #readAndJudge(b: Block, fst: BlockStatus): ReadOutcome | Promise<ReadOutcome> {
    if (this.#interrupted()) return { result: -1, copied: 0, error: 0 };
    if (this.#writeFailure !== null) {
      this.finalMessage = this.#writeFailure;
      this.eCode |= StopCause.other;
      return { result: 1, copied: 0, error: 0 };
    }
    const c = this.#copyBlock(b);
    return c instanceof Promise ? c.then((r) => this.#judge(b, r, fst)) : this.#judge(b, c, fst);
  }

  /** The status changes of a read (spec 2.3 steps 5 to 7). */
  #judge(b: Block, r: CopyResult, fst: BlockStatus): ReadOutcome {
    if (r.fatal !== undefined) {
      this.finalMessage = r.whole ? r.fatal : `${this.source.name}: ${r.fatal}`;
      this.eCode |= StopCause.other;
      return { result: 1, copied: r.copied, error: r.error };
    }
    let result: StepResult = 0;
    const { copied, error } = r;
    if (copied + error < b.size) {
      // EOF
      const eof = b.pos + copied + error;
      if (this.options.completeOnly) {
        this.domain = this.domain.crop({ pos: 0, size: eof });
      } else if (!this.map.truncate(eof)) {
        this.finalMessage = `ERR_SOURCE_EOF_BELOW_MAPFILE: ${this.source.name}: EOF found below the size calculated from mapfile. The source is smaller than the mapfile says: check it is the same disk, or use -C.`;
        result = 1;
      }
      this.initializeSizes();
    }
    if (copied > 0) this.changeChunkStatus({ pos: b.pos, size: copied }, BlockStatus.finished);
    if (error > 0) {
      this.errorSum += error;
      ++this.readErrors;
      if (this.readErrors > this.options.maxReadErrors) {
        this.eCode |= StopCause.readErrors;
        result = 1;
      }
      this.changeChunkStatus({ pos: b.pos + copied, size: error }, error > this.hardbs ? fst : BlockStatus.badSector);
      if (!this.source.stillThere()) {
        this.finalMessage = `ERR_SOURCE_VANISHED: ${this.source.name}: Input file disappeared. The mapfile is saved; reconnect the disk and run the same command to resume.`;
        result = 1;
      }
    }
    return { result, copied, error };
  }

  /**
   * The read step of trimming, scraping and retrying: `copyAndUpdate`, then the rates,
   * the pause on error and the periodic mapfile save. A promise only where it waits.
   * @returns the step result (non-zero ends the phase: 1, -1 or -2) and the failed bytes.
   */
  readSectorStep(b: Block, message: string, phase: MapfileStatus, pass: number, forward: boolean): SectorStep | Promise<SectorStep> {
    const c = this.copyAndUpdate(b, message, phase, pass, forward);
    return c instanceof Promise ? c.then((r) => this.#afterSectorRead(r)) : this.#afterSectorRead(c);
  }

  #afterSectorRead(r: ReadOutcome): SectorStep | Promise<SectorStep> {
    if (r.result) return r;
    this.updateRates();
    if (r.error > 0 && this.options.pauseOnError > 0) return this.pauseOnError().then(() => this.#saveAfterRead(r));
    return this.#saveAfterRead(r);
  }

  #saveAfterRead(r: ReadOutcome): SectorStep | Promise<SectorStep> {
    if (!this.saveDue()) return r;
    return this.updateMapfile().then((saved) => (saved ? r : { result: -2, error: r.error }));
  }

  /** `--pause-on-error` after a failed read. */
  async pauseOnError(): Promise<void> {
    const p = this.options.pauseOnError;
    if (this.options.simulatedPauseOnError) this.tp += p;
    else if (p >= 1) await this.sleep(Math.trunc(p));
  }

  /** `-O`: reopen the source after an error. @returns false if it cannot be reopened. */
  reopenSource(): boolean {
    try {
      this.source.reopen();
      return true;
    } catch (err) {
      this.finalMessage = (err as Error).message;
      return false;
    }
  }

  /**
   * `update_rates`: recompute the rates once per wall-clock second.
   * @returns true if the last second was a slow read (`-a`).
   */
  updateRates(force = false): boolean {
    if (this.t0 === 0) {
      this.t0 = this.t1 = this.ts = this.#startTime;
      this.#firstSize = this.#lastSize = this.finished;
      this.ratesUpdated = true;
    }
    let t2 = this.#clock();
    if (t2 < this.t1) {
      const delta = Math.min(this.t0 - 1, this.t1 - t2);
      this.t0 -= delta;
      this.ts -= delta;
      this.t1 = t2;
    }
    const forceUpdate = force && t2 <= this.t1;
    if (forceUpdate) t2 = this.t1 + 1;
    if (t2 > this.t1) {
      if (this.tp > 0) {
        const delta = Math.min(this.t0 - 1, Math.round(this.tp));
        this.t0 -= delta;
        this.t1 -= delta;
        this.ts -= delta;
        this.tp = 0;
      }
      this.aRate = Math.trunc((this.finished - this.#firstSize) / (t2 - this.t0));
      this.cRate = Math.trunc((this.finished - this.#lastSize) / (t2 - this.t1));
      if (!(this.eCode & StopCause.timeout)) {
        if (this.finished !== this.#lastSize) {
          this.#lastSize = this.finished;
          this.ts = t2;
        } else if (!forceUpdate && this.options.timeout >= 0 && t2 - this.ts > this.options.timeout && this.t1 > this.t0) {
          this.eCode |= StopCause.timeout;
        }
      }
      if (!(this.eCode & StopCause.errorRate)) {
        this.errorRate = Math.trunc(this.errorSum / (t2 - this.t1));
        this.errorSum = 0;
        if (this.options.maxErrorRate >= 0 && this.errorRate > this.options.maxErrorRate) this.eCode |= StopCause.errorRate;
      }
      this.ratesUpdated = true;
      if (!forceUpdate) {
        this.t1 = t2;
        this.prevSlow = this.currentSlow;
        this.currentSlow = this.t1 - this.t0 > this.options.delaySlow
          && ((this.minReadRate > 0 && this.cRate < this.minReadRate) || (this.minReadRate === 0 && this.cRate < this.aRate / 10));
        if (!this.currentSlow && this.options.resetSlow) this.slowReads = 0;
        return this.currentSlow;
      }
    }
    return false;
  }

  /** `show_status`: refresh the screen and the logs when the rates changed, or if forced. */
  showStatus(ipos: number, message: string | null, force = false): void {
    if (ipos >= 0) this.#lastIpos = ipos;
    if (!(this.ratesUpdated || force || this.firstPost)) return;
    const scroll = this.firstPost && !this.firstRead && !this.rescueFinished();
    if (this.firstPost) this.#slidingAverage.reset();
    else this.#slidingAverage.add(this.cRate);
    const sRate = this.domain.end === Number.POSITIVE_INFINITY ? 0 : this.#slidingAverage.value();
    const left = this.nonTried + this.nonTrimmed + this.nonScraped + (this.options.maxRetries !== 0 ? this.badSize : 0);
    const remainingTime = sRate <= 0 ? -1 : Math.min(315359999968464000, Math.trunc((left + sRate - 1) / sRate));
    this.reporter.statusRefreshed({
      snapshot: {
        ipos: this.#lastIpos,
        opos: this.#lastIpos + this.offset,
        nonTried: this.nonTried,
        nonTrimmed: this.nonTrimmed,
        nonScraped: this.nonScraped,
        badSize: this.badSize,
        finished: this.finished,
        badAreas: this.badAreas,
        readErrors: this.readErrors,
        slowReads: this.slowReads,
        showSlowReads: this.minReadRate >= -1,
        currentRate: this.cRate,
        averageRate: this.aRate,
        errorRate: this.errorRate,
        runTime: this.t1 - this.t0,
        remainingTime,
        sinceLastSuccess: this.ts > this.t0 ? this.t1 - this.ts : -1,
        percentRescued: this.percentRescued(),
      },
      message: message && !this.errorsOrTimeout() ? message : null,
      scroll,
      forced: force || this.firstPost,
    });
    this.ratesUpdated = false;
    this.firstPost = false;
    this.firstRead = false;
  }

  /** The mapfile state now. */
  snapshot(): { currentPos: number; currentStatus: MapfileStatus; currentPass: number; message: string; blocks: StatusMap } {
    return { currentPos: this.currentPos, currentStatus: this.currentStatus, currentPass: this.currentPass, message: this.currentMessage, blocks: this.map };
  }

  /** True if `updateMapfile()` would save now (checked without a promise before each call of it after a read). */
  saveDue(): boolean {
    return this.mapfile !== undefined && this.mapfile.due(this.map.length);
  }

  /** `update_mapfile`: save if the interval has passed (or `force`), after syncing the output. */
  async updateMapfile(force = false): Promise<boolean> {
    if (!this.mapfile) return true;
    return this.mapfile.update(() => this.snapshot(), this.map.length, async () => {
      // the write in flight first; if it failed, its read is no longer finished in the map saved
      await this.finishWrites();
      await this.sink.sync();
    }, force);
  }
}
