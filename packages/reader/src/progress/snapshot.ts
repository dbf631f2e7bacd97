/**
 * The progress of `ddferry-reader rescue`: one plain, JSON-ready snapshot of the
 * engine's status block (the figures GNU ddrescue shows), the read in progress, why
 * reading waits, the chunk being read, the spool, and the link to the assembler or the
 * stick trip. The main process makes it from what the reading process reports (at most
 * one refresh a second, as ddrescue's screen) and its own clock, so it keeps coming
 * while a read hangs: nothing is counted per read.
 *
 * | part | from |
 * |---|---|
 * | `rescue` | the engine's last refresh, its times moved on by the time since it came (null before the first) |
 * | `reading` | the read the reading process announced and has not finished, with its duration |
 * | `paused` | why reading waits (the spool full and the link down, the stick full, the source held by an earlier run) |
 * | `chunk` | the chunk holding `rescue.ipos` (binary search in the plan) |
 * | `spool` | the destination's pieces waiting for a receipt |
 * | `link` | the link's state, since when, its last error, pieces merged (null in stick mode) |
 * | `stick` | the stick trip, free space and bundles, bytes rescued onto it and their size there, and the trips still needed at this trip's compression (null over the LAN) |
 * | `carried` | bytes rescued in this run and what they took to carry (sealed, compressed: on the wire, or on the stick) |
 */
import type { Block } from '@ddferry/mapfile';

import type { StatusRefresh, StatusSnapshot } from '../engine/reporter.js';

/** Where the run is. `finished`, `interrupted` and `failed` are final. */
export type ProgressPhase = 'starting' | 'waiting' | 'moving' | 'rescuing' | 'draining' | 'finished' | 'interrupted' | 'failed';

/** The link to the assembler, as the link tells it. */
export type LinkState = 'connecting' | 'connected' | 'waiting';

/** What the LAN link tells (`Link.snapshot()`). */
export interface LinkSource {
  readonly url: string;
  readonly state: LinkState;
  /** Milliseconds since the epoch when the state began. */
  readonly since: number;
  readonly lastError: string | null;
  /** Pieces merged (receipts seen) in this run. */
  readonly merged: number;
}

/** A read the reading process is in. */
export interface ReadingSource {
  readonly pos: number;
  readonly size: number;
  /** Milliseconds since the epoch when it started. */
  readonly since: number;
}

/** Why reading waits. */
export interface PauseSource {
  readonly reason: string;
  /** Milliseconds since the epoch. */
  readonly since: number;
  readonly text: string;
}

/** What the run loop tells progress (`LoopStatus` has these fields). */
export interface LoopSource {
  readonly reading: ReadingSource | null;
  readonly refresh: StatusRefresh | null;
  /** Milliseconds since the epoch when `refresh` came. */
  readonly refreshAt: number;
  /** Milliseconds since the epoch of the last good data, or 0. */
  readonly lastDataAt: number;
  readonly pause: PauseSource | null;
}

/** What a stick shipper tells. */
export interface StickProgress {
  /** Trip number: 1 for the first stick visit of this job; null while the job does not count trips. */
  readonly trip: number | null;
  /** Bytes free on the stick's file system; null when it does not tell (fusefat with 512-byte clusters). */
  readonly freeBytes: number | null;
  /** Bundles of this rescue now on the stick (not yet receipted). */
  readonly bundles: number;
  /** Raw bytes of the pieces written to the stick in this run, and their bytes on the stick. */
  readonly rescuedBytes?: number | undefined;
  readonly carriedBytes?: number | undefined;
  /** Bytes on the stick per raw byte, as planned for what is not written yet (`StickSpool.ratio`). */
  readonly ratio?: number | undefined;
  /** Bytes of the stick a trip can fill (its size less the margin it keeps); null when unknown. */
  readonly usableBytes?: number | null | undefined;
  /** Bytes this stick can still take now (free less the margin); null when unknown. */
  readonly roomBytes?: number | null | undefined;
}

/** Bytes rescued and stored in this run, and what they took to carry. */
export interface CarriedSource {
  readonly rescuedBytes: number;
  readonly carriedBytes: number;
}

/** The spool's figures (`Spool` has these fields). */
export interface SpoolSource {
  readonly count: number;
  readonly bytes: number;
  readonly capacity: number;
}

/**
 * ddrescue's status block in bytes and seconds; `remainingTime` and
 * `sinceLastSuccess` are null for ddrescue's `n/a`.
 */
export interface RescueFigures {
  readonly ipos: number;
  readonly opos: number;
  readonly nonTried: number;
  readonly nonTrimmed: number;
  readonly nonScraped: number;
  readonly badSector: number;
  readonly rescued: number;
  /** The engine's domain: the whole source, or the chunk with `--chunk-at-a-time`. */
  readonly domainSize: number;
  /** `rescued` in percent of `domainSize`, as ddrescue prints it (2 decimals). */
  readonly pctRescued: number;
  readonly badAreas: number;
  readonly readErrors: number;
  /** Null unless `-a` was given (ddrescue counts and shows slow reads only then). */
  readonly slowReads: number | null;
  readonly currentRate: number;
  readonly averageRate: number;
  readonly errorRate: number;
  readonly runTime: number;
  readonly remainingTime: number | null;
  readonly sinceLastSuccess: number | null;
  /** The engine's phase message (`Copying non-tried blocks... Pass 1 (forwards)`), or null. */
  readonly message: string | null;
}

/** The progress at one moment; see the module comment. Keys are stable (the `--json` lines). */
export interface ProgressSnapshot {
  /** Seconds since the command started. */
  readonly time: number;
  readonly phase: ProgressPhase;
  readonly sourceSize: number;
  readonly rescue: RescueFigures | null;
  /** `index` counts from 0; `offset` is `rescue.ipos - pos`. Null before the first read. */
  readonly chunk: { readonly index: number; readonly count: number; readonly pos: number; readonly size: number; readonly offset: number } | null;
  readonly spool: { readonly pieces: number; readonly bytes: number; readonly capacity: number };
  /** `since`: seconds in this state; `lastError`: the link's last error, or null. */
  readonly link: { readonly url: string; readonly state: LinkState; readonly since: number; readonly lastError: string | null; readonly merged: number } | null;
  /**
   * `tripsLeft`: about how many more stick trips the rest of the rescue takes at this
   * trip's compression (what is not rescued yet × `ratio`, less the room left on this
   * stick, over `usableBytes`); null when the stick's size or the engine's figures are unknown.
   */
  readonly stick: (StickProgress & { readonly rescuedBytes: number; readonly carriedBytes: number; readonly tripsLeft: number | null }) | null;
  /** Bytes rescued and stored in this run and what they took to carry; null before the destination tells. */
  readonly carried: CarriedSource | null;
  /** The read in progress (`seconds`: how long it has taken so far, one decimal), or null between reads. */
  readonly reading: { readonly pos: number; readonly size: number; readonly seconds: number } | null;
  /** Why reading waits (`since`: local time HH:MM:SS), or null. */
  readonly paused: { readonly reason: string; readonly since: string; readonly text: string } | null;
  /** With a used-space order (`plan --used-first`): bytes rescued of the used space and of the free space; else null. */
  readonly usedSpace: { readonly size: number; readonly rescued: number; readonly freeSize: number; readonly freeRescued: number } | null;
}

/** What `progressSnapshot` is made from. */
export interface ProgressInputs {
  /** Milliseconds since the epoch now. */
  readonly now: number;
  /** Milliseconds since the command started. */
  readonly elapsedMs: number;
  readonly phase: ProgressPhase;
  readonly sourceSize: number;
  /** The plan's chunks, sorted by `pos`. */
  readonly chunks: readonly Block[];
  /** The engine's last refresh, or null. */
  readonly status: StatusSnapshot | null;
  /** Milliseconds since the epoch when `status` came. */
  readonly statusAt: number;
  /** Milliseconds since the epoch of the last good data, or 0. */
  readonly lastDataAt: number;
  readonly message: string | null;
  readonly spool: SpoolSource;
  /** The link, over the LAN. */
  readonly link?: LinkSource | undefined;
  /** The stick's figures, in stick mode. */
  readonly stick?: StickProgress | undefined;
  readonly carried?: CarriedSource | undefined;
  readonly reading?: ReadingSource | null | undefined;
  readonly pause?: PauseSource | null | undefined;
  readonly usedSpace?: { readonly usedSize: number; readonly usedRescued: number; readonly freeSize: number; readonly freeRescued: number } | null | undefined;
}

/** Local time of day, `HH:MM:SS`. */
export function clockTime(ms: number): string {
  return new Date(ms).toTimeString().slice(0, 8);
}

/**
 * The engine's figures moved on to `now`: while the reading process is silent (a read
 * that hangs), its run time and its time since the last good read keep growing.
 */
function movedOn(s: StatusSnapshot, statusAt: number, lastDataAt: number, now: number): StatusSnapshot {
  const late = Math.max(0, Math.floor((now - statusAt) / 1000));
  if (late < 1) return s;
  const sinceData = lastDataAt > 0 ? Math.floor((now - lastDataAt) / 1000) : -1;
  return {
    ...s,
    runTime: s.runTime + late,
    sinceLastSuccess: s.sinceLastSuccess < 0 && sinceData < 0 ? -1 : Math.max(s.sinceLastSuccess + late, sinceData),
    currentRate: 0,
  };
}

/** Index of the chunk holding `pos` (the last one if `pos` is past the end), or -1 if there is none. */
export function chunkIndexAt(chunks: readonly Block[], pos: number): number {
  let lo = 0;
  let hi = chunks.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (chunks[mid]!.pos <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The snapshot, from plain inputs (no I/O, O(log chunks)). Exported for the Status
 * messages of the shipper, which tell the assembler the same figures.
 */
export function progressSnapshot(i: ProgressInputs): ProgressSnapshot {
  const s = i.status === null ? null : movedOn(i.status, i.statusAt, i.lastDataAt, i.now);
  let chunk: ProgressSnapshot['chunk'] = null;
  // the chunk being read, only while reading (at the end there is none)
  if (s && (i.phase === 'rescuing' || i.phase === 'starting')) {
    const index = chunkIndexAt(i.chunks, s.ipos);
    const c = i.chunks[index];
    if (c) chunk = { index, count: i.chunks.length, pos: c.pos, size: c.size, offset: Math.max(0, Math.min(s.ipos - c.pos, c.size)) };
  }
  const rescue: RescueFigures | null = s === null ? null : {
    ipos: s.ipos,
    opos: s.opos,
    nonTried: s.nonTried,
    nonTrimmed: s.nonTrimmed,
    nonScraped: s.nonScraped,
    badSector: s.badSize,
    rescued: s.finished,
    domainSize: s.nonTried + s.nonTrimmed + s.nonScraped + s.badSize + s.finished,
    pctRescued: parsePercent(s.percentRescued),
    badAreas: s.badAreas,
    readErrors: s.readErrors,
    slowReads: s.showSlowReads ? s.slowReads : null,
    currentRate: s.currentRate,
    averageRate: s.averageRate,
    errorRate: s.errorRate,
    runTime: s.runTime,
    remainingTime: s.remainingTime < 0 ? null : s.remainingTime,
    sinceLastSuccess: s.sinceLastSuccess < 0 ? null : s.sinceLastSuccess,
    message: i.message,
  };
  return {
    time: Math.max(0, Math.floor(i.elapsedMs / 1000)),
    phase: i.phase,
    sourceSize: i.sourceSize,
    rescue,
    chunk,
    spool: { pieces: i.spool.count, bytes: i.spool.bytes, capacity: i.spool.capacity },
    link: i.link ? { url: i.link.url, state: i.link.state, since: Math.max(0, Math.floor((i.now - i.link.since) / 1000)), lastError: i.link.lastError, merged: i.link.merged } : null,
    stick: i.stick ? {
      trip: i.stick.trip, freeBytes: i.stick.freeBytes, bundles: i.stick.bundles,
      rescuedBytes: i.stick.rescuedBytes ?? 0, carriedBytes: i.stick.carriedBytes ?? 0,
      tripsLeft: s === null ? null : tripsLeft(s.nonTried + s.nonTrimmed + s.nonScraped, i.stick),
    } : null,
    carried: i.carried ? { rescuedBytes: i.carried.rescuedBytes, carriedBytes: i.carried.carriedBytes } : null,
    reading: i.reading ? { pos: i.reading.pos, size: i.reading.size, seconds: Math.max(0, Math.floor((i.now - i.reading.since) / 100) / 10) } : null,
    paused: i.pause ? { reason: i.pause.reason, since: clockTime(i.pause.since), text: i.pause.text } : null,
    usedSpace: i.usedSpace ? { size: i.usedSpace.usedSize, rescued: i.usedSpace.usedRescued, freeSize: i.usedSpace.freeSize, freeRescued: i.usedSpace.freeRescued } : null,
  };
}

/**
 * More stick trips after this one for `remaining` bytes not rescued yet: they take
 * `remaining × ratio` on sticks; this stick still takes `roomBytes`, each later trip
 * `usableBytes`. Null when the stick does not tell its size.
 */
export function tripsLeft(remaining: number, stick: StickProgress): number | null {
  const usable = stick.usableBytes;
  if (usable === null || usable === undefined || usable <= 0) return null;
  const need = Math.ceil(remaining * Math.min(1, stick.ratio ?? 1));
  const room = Math.max(0, stick.roomBytes ?? 0);
  return need <= room ? 0 : Math.ceil((need - room) / usable);
}

/** True for the phases a run ends in. */
export function isFinal(phase: ProgressPhase): boolean {
  return phase === 'finished' || phase === 'interrupted' || phase === 'failed';
}

/** ` 93.71%` → 93.71; ddrescue's `+INF`/`NAN` (empty domain) → 100. */
function parsePercent(text: string): number {
  const n = Number.parseFloat(text);
  return Number.isFinite(n) ? n : 100;
}


