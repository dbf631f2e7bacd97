/**
 * The one run loop of `ddferry-reader rescue`, for the LAN and the stick alike: the
 * reading process reads; this loop (in the main process) turns its reads into pieces,
 * stores them at the destination one after the other, commits each durable piece's
 * delta to the common map (R1), grants the reading process room to read on, and saves
 * the map with ddrescue's timing. It never waits on a source read: a read that hangs
 * holds only the reading process, and a stop (the AbortSignal) ends the loop within
 * seconds, the map saved with everything durable.
 *
 * | event | what the loop does |
 * |---|---|
 * | a read starts | seal the open pieces if due (size, age, ranges); note the read for progress |
 * | data, a status change | into the open piece of its chunk |
 * | the engine saves its map | seal, then once those pieces are durable, save `common.map` |
 * | the reading process is silent for `IDLE_SEAL_MS` inside a read | seal and store what it sent (a hung read holds nothing back) |
 * | the reading process waits for room | seal and store what is open, unless a store in progress will make room (the piece then fills on) |
 * | a piece is stored | grant more room; once it is durable (at once, or a LAN piece on its receipt or fsync), commit its delta, in sequence order |
 * | no room (a full stick) | once the pieces in flight are durable: stop reading; seal and store what was read (however slow the stick); end `full` |
 * | the signal aborts | stop reading; store what was read within `STOP_BUDGET_MS`; save; end `aborted` |
 */
import type { Chunk } from '@ddferry/mapfile';
import type { Piece, PieceMapState } from '@ddferry/protocol';
import { droppedBuffers } from '@ddferry/protocol';

import type { RescueReporter, StatusRefresh } from '../engine/reporter.js';
import { ReaderError } from '../errors.js';
import type { CommonMap, MapState } from '../job/common-map.js';
import type { SeqCounter } from '../job/seq-counter.js';
import type { SourceIdentity } from '../source/source.js';
import type { UsedSpace } from '../used/used-space.js';
import type { Destination, Pause, Pending } from './destination.js';
import { DEFAULT_SEAL_BYTES, PieceBuilder } from './piece-builder.js';
import { domainOf } from './reading-domain.js';
import { ReadingProcess } from './reading-process.js';
import { READ_CHARGE, type ReadingInit, type ReadingOutcome } from './reading-messages.js';

/** A read the reading process is in: since when (ms). */
export interface ReadInProgress {
  readonly pos: number;
  readonly size: number;
  readonly since: number;
}

/** What the loop tells progress displays, read at each draw. */
export interface LoopStatus {
  /** The read in progress, or null between reads. */
  reading: ReadInProgress | null;
  /** The engine's last status refresh, and when it came (ms). */
  refresh: StatusRefresh | null;
  refreshAt: number;
  /** When the last good data came (ms), or 0. */
  lastDataAt: number;
  /** Why reading waits, or null. */
  pause: Pause | null;
  /** The engine's state (status line, phase message). */
  state: MapState | null;
  /** Pieces stored and committed in this run. */
  piecesStored: number;
  /** Pieces sealed and not yet durable, and their data bytes. */
  storing: number;
  storingBytes: number;
  /** The reading process's pid, once started. */
  readerPid: number | null;
  /** True while the reading process lives (after the loop: it was left in a read the kernel holds). */
  readerAlive: boolean;
}

export interface RunLoopOptions {
  readonly rescueId: string;
  readonly chunks: readonly Chunk[];
  /** The reading process's init, but for what the loop fills in (grant, map). */
  readonly reading: Omit<ReadingInit, 'grant' | 'mapText' | 'state' | 'readDone'>;
  readonly map: CommonMap;
  readonly seq: SeqCounter;
  readonly destination: Destination;
  /** Checks the source the reading process opened (the job's fingerprint). @throws ReaderError. */
  readonly checkSource: (identity: SourceIdentity) => void;
  /** Seal pieces at this many bytes and milliseconds (defaults: 8 MiB, 2 s). */
  readonly sealBytes?: number;
  readonly sealMillis?: number;
  /** The logs (events, rates, reads), as ddrescue writes them; no screen. */
  readonly reporter: RescueReporter;
  /** True if a reads log is kept (the reading process then reports every read). */
  readonly readLog: boolean;
  /** Called when the pid of the reading process is known (for `JOBDIR/reading.pid`). */
  readonly onStarted?: (pid: number) => Promise<void>;
  readonly status: LoopStatus;
  readonly log: (line: string) => void;
  readonly signal: AbortSignal;
}

/** How the loop ended. */
export type RunEnd =
  | { readonly kind: 'done'; readonly outcome: ReadingOutcome; readonly used?: UsedSpace | undefined }
  | { readonly kind: 'full' }
  | { readonly kind: 'aborted' };

/** Silence of the reading process inside a read after which what it sent is sealed and stored. */
export const IDLE_SEAL_MS = 2000;
/** After a stop, how long the loop waits for the reading process's last frames. */
const STOP_LISTEN_MS = 300;
/** After a stop, how long stores may still take before they are given up (not durable, not claimed). */
const STOP_BUDGET_MS = 1800;
/**
 * Bytes read and not yet stored (open and sealed pieces) at most: when storing lags
 * (sealing, a slow spool disk), reading waits rather than filling memory (peak RSS).
 * Raised to a whole piece and `BIG_PIECE_AHEAD_BYTES` more where pieces are bigger (a
 * stick's, up to 16 MiB), so a piece can always fill and reading goes on while one is stored.
 * 40 MiB before: the LAN took as long (512 MiB, 5 pairs) and the reader's peak RSS was
 * 15-20 MiB higher; 24 MiB then: LAN of 1 GiB, 6 pairs (farm-bench), peak RSS 147 → 137
 * MiB (medians) at 16, wall 0.98x.
 */
const MEMORY_AHEAD_BYTES = 16 << 20;
/**
 * Where pieces are bigger than the LAN's (a stick's, up to 16 MiB; tests seal 32), the bound is a whole
 * piece and this much more: the open piece grows to it while the one before is stored,
 * and is sealed when the reading process waits. 12 MiB, half the bound before it was
 * lowered to 16 MiB, keeps a stick's pieces as they were (at 8 MiB a 512 MiB trip wrote
 * 32 bundles of 8, 16 and 32 MiB instead of 26 mostly of 32 and 12, and the import of
 * such a stick took 175 MiB instead of 144).
 */
const BIG_PIECE_AHEAD_BYTES = 12 << 20;
/** Grants go out when they grow by this much (or at once when the reading process waits). */
const GRANT_STEP = 1 << 20;

export function newLoopStatus(): LoopStatus {
  return { reading: null, refresh: null, refreshAt: 0, lastDataAt: 0, pause: null, state: null, piecesStored: 0, storing: 0, storingBytes: 0, readerPid: null, readerAlive: false };
}

/**
 * Run the reading process over the domains, storing and committing its pieces.
 * @throws ReaderError (the source is not the planned one, the reading process failed,
 *   the destination failed); the map is saved with everything durable first.
 */
export async function runLoop(o: RunLoopOptions): Promise<RunEnd> {
  const { map, destination: dest, status } = o;
  const e = o.reading.options;
  const readMax = e.cluster * e.hardbs;
  const builder = new PieceBuilder({ rescueId: o.rescueId, chunks: o.chunks, nextSeq: () => o.seq.next(), sealBytes: o.sealBytes, sealMillis: o.sealMillis });

  // pieces are stored one after the other (`chain`), and their deltas committed in the
  // same order once each is durable (`commits`); map operations follow the commits of
  // the pieces stored before them
  let chain: Promise<void> = Promise.resolve();
  let commits: Promise<void> = Promise.resolve();
  let failure: Error | null = null;
  /** Reading stops: the destination can take no more. */
  let full = false;
  /** A piece could be stored nowhere: later ones are not tried. */
  let nowhere = false;
  /** A piece accepted never became durable: no later delta is committed. */
  let broken = false;
  const fail = (err: unknown): void => {
    failure ??= err as Error;
  };
  const queue = (op: () => Promise<void> | void): void => {
    chain = chain.then(async () => {
      if (failure === null) await op();
    }).catch(fail);
  };
  const afterCommits = (op: () => Promise<void> | void): void => {
    commits = commits.then(async () => {
      if (failure === null) await op();
    }).catch(fail);
  };
  /** A map operation, once every piece stored before it is committed. */
  const queueMap = (op: () => Promise<void> | void): void => queue(() => afterCommits(op));
  /**
   * Commit a stored piece's delta once it is durable, after the pieces stored before it.
   * Made here, not in `store`: a closure there would keep the piece (its data) alive until
   * its receipt, and a LAN run whose receipts lag (the assembler's disk behind) held
   * dozens of MiB of pieces whose buffers the builder had already let go.
   */
  const commitWhenDurable = (delta: Piece['delta'], durable: Promise<void> | null): void => {
    // a durable piece is committed whatever fails later; after one that never became durable, none is (their order)
    commits = commits.then(async () => {
      if (broken) return;
      try {
        if (durable !== null) await durable;
      } catch (err) {
        broken = true;
        throw err;
      }
      map.apply(delta);
      status.piecesStored += 1;
    }).catch(fail);
  };
  const store = (piece: Piece): void => {
    const bytes = piece.data.length;
    status.storing += 1;
    status.storingBytes += bytes;
    queue(async () => {
      try {
        if (nowhere) return; // nothing could take the last piece: this one stays unclaimed too, read again later
        const r = await dest.store(piece);
        if (r === 'full') {
          nowhere = true;
          full = true;
          return;
        }
        // stored: sealed into its own buffers or written; its data's memory serves the next piece
        builder.release(piece);
        commitWhenDurable(piece.delta, r === 'stored' ? null : r.durable);
      } finally {
        status.storing -= 1;
        status.storingBytes -= bytes;
        // full only once what is in flight is durable: the free space is then what the writes left, not an estimate
        if (!full && started && status.storing === 0 && dest.isFull(pending(), readMax)) full = true;
        if (full) poke();
        else regrant();
      }
    });
  };
  /** Every piece stored, made durable and committed. */
  const settled = async (urgent: boolean): Promise<void> => {
    await chain;
    await dest.settle?.(urgent).catch(fail);
    await commits;
  };
  const lineOf = (st: MapState | null): PieceMapState | undefined => (st === null ? undefined : { currentPos: st.currentPos, currentStatus: st.currentStatus, currentPass: st.currentPass });
  /**
   * The status line the last sealed piece carried (PC_B's image map follows it); at the
   * start, common.map's, which the last piece of the run before carried: a run with
   * nothing to do makes no piece.
   */
  let carried: PieceMapState | null = lineOf(map.state) ?? null;
  const sealAndStore = (state: MapState | null = status.state): void => {
    const line = lineOf(state);
    const pieces = builder.seal(line);
    for (const p of pieces) store(p);
    if (pieces.length > 0 && line !== undefined) carried = line;
  };
  /**
   * At a map save: seal what is open with the save's status line; when nothing was open
   * and the phase or pass changed since the last piece (the run's end, `+`), a piece of
   * its own carries the line, so the image map ends as common.map does.
   */
  const sealAtSave = (state: MapState): void => {
    sealAndStore(state);
    const line = lineOf(state)!;
    if (carried !== null && carried.currentStatus === line.currentStatus && carried.currentPass === line.currentPass) return;
    store(builder.sealState(line));
    carried = line;
  };
  const pending = (): Pending => {
    const b = builder.pending();
    return { pieces: b.pieces + status.storing, bytes: b.bytes + status.storingBytes, ranges: b.ranges };
  };

  /**
   * What may be read now, in grant units (data, and `READ_CHARGE` a read): the destination's
   * room (each read may end a piece, whose file takes more than its data), and at most
   * `MEMORY_AHEAD_BYTES` of data held in memory before they are stored (reads of `readMax`).
   */
  const roomNow = (): number => {
    const p = pending();
    const seal = o.sealBytes ?? DEFAULT_SEAL_BYTES;
    const memory = Math.max(MEMORY_AHEAD_BYTES, seal > DEFAULT_SEAL_BYTES ? seal + BIG_PIECE_AHEAD_BYTES : 0, 2 * readMax) - p.bytes;
    return Math.min(dest.room(p), (memory * (readMax + READ_CHARGE)) / readMax);
  };
  /** Grant units received: data bytes, and `READ_CHARGE` a read (as the reading process counts them). */
  let received = 0;
  let granted = 0;
  let waiting = false;
  let child: ReadingProcess | null = null;
  let started = false;
  let outcome: ReadingOutcome | null = null;
  let used: UsedSpace | undefined;
  let done = false;
  let opened: ((identity: SourceIdentity) => void) | null = null;
  /** The source's identity, kept when the reading process sends it before the loop waits for it (while `onStarted` writes the pid file). */
  let openedEarly: SourceIdentity | null = null;
  let wake: (() => void) | null = null;
  const poke = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  const regrant = (): void => {
    if (child === null || !started) return;
    // the reading process waits and nothing is being stored: only sealing and storing what is
    // open can make room. While a store is in progress its end makes room, and the open piece
    // fills on: sealed at every wait, an 8 GiB LAN run whose spool writes were throttled by
    // write-back cut its pieces to about 1 MiB (365 spool blocks allocated instead of 15)
    if (waiting && status.storing === 0 && builder.pending().pieces > 0 && roomNow() < readMax + READ_CHARGE) sealAndStore();
    const room = roomNow();
    const allowed = room === Number.POSITIVE_INFINITY ? Number.MAX_SAFE_INTEGER : received + Math.max(0, Math.floor(room));
    if (allowed >= granted + GRANT_STEP || (waiting && allowed > granted)) {
      child.grant(allowed);
      granted = allowed;
    }
    if (waiting && granted - received >= readMax + READ_CHARGE) waiting = false;
    if (waiting) {
      status.pause = dest.pause();
      if (dest.isFull(pending(), readMax) && status.storing === 0) {
        full = true;
        poke();
      }
    } else {
      status.pause = null;
    }
  };
  dest.onRoom(regrant);

  const init: ReadingInit = {
    ...o.reading, mapText: map.text(), state: map.state, readDone: o.readLog, grant: 0,
  };
  const abort = (): void => poke();
  o.signal.addEventListener('abort', abort);
  try {
    child = ReadingProcess.start({ ...init, grant: Math.max(0, Math.floor(Math.min(roomNow(), Number.MAX_SAFE_INTEGER))) }, {
      read(pos, size) {
        received += READ_CHARGE;
        if (builder.isDue()) sealAndStore();
        status.reading = { pos, size, since: Date.now() };
      },
      data(pos, data) {
        builder.write(pos, data);
        // copied into the piece: the pipe's chunk is garbage now
        droppedBuffers(data.length);
        received += data.length;
        status.reading = null;
        status.lastDataAt = Date.now();
      },
      status(pos, size, st) {
        builder.statusChanged(pos, size, st as never);
        status.reading = null;
      },
      readDone(pos, size, copied, error) {
        o.reporter.readDone(pos, size, copied, error);
      },
      event(ev) {
        switch (ev.kind) {
          case 'opened':
            if (opened !== null) opened(ev.identity);
            else openedEarly = ev.identity;
            break;
          case 'failed':
            failure ??= new ReaderError(ev.code as never, o.reading.source, ev.message.replace(/^ERR_[A-Z_]+: /, ''));
            poke();
            break;
          case 'refresh':
            status.refresh = ev.refresh;
            status.refreshAt = Date.now();
            status.state = ev.state;
            o.reporter.statusRefreshed(ev.refresh);
            break;
          case 'phase':
            o.reporter.phaseStarted(ev.elapsed, ev.percent, ev.message);
            break;
          case 'echo':
            o.reporter.echo(ev.message);
            break;
          case 'endOfRun':
            o.reporter.endOfRun(ev.elapsed, ev.percent, ev.currentPos, ev.statusName);
            break;
          case 'save': {
            const state = ev.state;
            sealAtSave(state);
            status.state = state;
            queueMap(async () => {
              map.setState(state);
              await map.save(ev.force);
            });
            break;
          }
          case 'truncate': {
            sealAndStore();
            const end = ev.end;
            queueMap(() => map.truncate(end));
            break;
          }
          case 'domainStart': {
            const d = o.reading.domains[ev.index];
            if (d && (e.retrim || e.tryAgain)) {
              sealAndStore();
              queueMap(() => map.startEdits(domainOf(d), e));
            }
            break;
          }
          case 'waiting':
            // the reading process waits between reads for room: what it sent is sealed and
            // stored if nothing else can make room (`regrant`)
            waiting = true;
            status.reading = null;
            regrant();
            break;
          case 'domainDone':
            outcome = ev.outcome;
            status.state = ev.state;
            break;
          case 'usedSpace':
            used = ev.used;
            break;
          case 'done':
            done = true;
            poke();
            break;
        }
      },
    });
    status.readerPid = child.pid;
    status.readerAlive = true;
    void child.exited.then(() => {
      status.readerAlive = false;
    });
    await o.onStarted?.(child.pid);

    // the source must be the planned one before anything is read
    const identity = await Promise.race([
      new Promise<SourceIdentity>((resolve) => {
        if (openedEarly !== null) resolve(openedEarly);
        else opened = resolve;
      }),
      child.exited.then(() => null),
      new Promise<null>((resolve) => {
        wake = () => resolve(null);
      }),
    ]);
    if (identity === null) {
      if (failure) throw failure;
      if (o.signal.aborted) {
        child.abandon();
        return { kind: 'aborted' };
      }
      throw readingProcessFailed(o.reading.source, child);
    }
    o.checkSource(identity);
    started = true;
    child.start();
    regrant();

    // until the reading is done, stopped by a full destination, aborted, or failed
    const timer = setInterval(() => {
      const r = status.reading;
      if (r !== null && Date.now() - child!.lastHeard >= IDLE_SEAL_MS && builder.pending().pieces > 0) sealAndStore();
      if (waiting) regrant();
    }, 500);
    timer.unref();
    try {
      while (!done && !full && !o.signal.aborted && failure === null && !child.hasExited) {
        await Promise.race([
          new Promise<void>((resolve) => {
            wake = resolve;
          }),
          child.exited,
        ]);
      }
    } finally {
      clearInterval(timer);
    }
    if (done || child.hasExited) {
      // every frame it sent is in: seal the rest and make it durable
      await child.exited;
      sealAndStore();
      await settled(false);
      if (failure) throw failure;
      if (!done) throw readingProcessFailed(o.reading.source, child);
      await map.saveNow();
      return full ? { kind: 'full' } : { kind: 'done', outcome: outcome ?? { status: 0, interrupted: false, messages: [], finalMessage: '' }, used };
    }
    // stopped: a full destination, a signal, or a failure
    child.stop();
    await Promise.race([child.exited, sleep(STOP_LISTEN_MS)]);
    if (!child.hasExited) child.abandon();
    status.reading = null;
    sealAndStore();
    // a full destination: what was read is stored, however slow the stick (FAT with 512-byte clusters under fusefat
    // writes a few MB/s); a signal: within STOP_BUDGET_MS, also when it comes while waiting here
    const budget = new Promise<false>((resolve) => {
      const giveUp = (): void => void sleep(STOP_BUDGET_MS).then(() => resolve(false));
      if (o.signal.aborted) giveUp();
      else o.signal.addEventListener('abort', giveUp, { once: true });
    });
    const stored = await Promise.race([settled(true).then(() => true), budget]);
    if (!stored) o.log('ddferry-reader: pieces still being written were given up (not claimed in common.map: their ranges are read again next time).');
    if (failure && !o.signal.aborted) throw failure;
    if (status.state) map.setState({ ...status.state, message: status.state.message });
    await map.saveNow();
    return o.signal.aborted ? { kind: 'aborted' } : { kind: 'full' };
  } catch (err) {
    // the map says what is durable, whatever went wrong
    if (child && !child.hasExited) child.abandon();
    await Promise.race([settled(true), sleep(STOP_BUDGET_MS)]);
    try {
      await map.saveNow();
    } catch (saveErr) {
      o.log(`ddferry-reader: ${(saveErr as ReaderError).code ?? 'ERR_MAPFILE_WRITE'}: ${(saveErr as Error).message}`);
    }
    throw err;
  } finally {
    o.signal.removeEventListener('abort', abort);
    status.reading = null;
  }
}

/** Resolves once `signal` is aborted (at once if it is). */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });
}

function readingProcessFailed(source: string, child: ReadingProcess): ReaderError {
  const why = child.stderr.trim().split('\n').slice(-6).join('\n  ');
  return new ReaderError('ERR_READING_PROCESS', source, `the reading process of ${source} ended unexpectedly${why ? `:\n  ${why}` : ''}.`, {
    hint: 'Run the same command again: everything it sent is saved. If it happens again, report the message above.',
  });
}
