/**
 * The Status messages the shipper sends the assembler about once a second (its
 * live page shows them), built from the engine's Rescuebook counters: nothing
 * is counted per read.
 *
 * | field | from |
 * |---|---|
 * | `phase`, `message`, `pass`, `pos` | `currentStatus`, `currentMessage`, `currentPass`, `currentPos` (what the mapfile's status line says) |
 * | `*Size` | the map's sizes per status over the whole source (with `--chunk-at-a-time` too) |
 * | `readErrors`, `currentRate`, `averageRate` | ddrescue's counters and rates |
 * | `chunk`, `chunkCount` | the plan's chunk holding `pos` (from 0) |
 * | `spoolBytes`, `spoolPieces` | the spool |
 * | `runTime` | seconds since the command started |
 * | `paused*` | why reading waits, what for, and for how long ('' while it reads) |
 * | `reading*` | the read the reading process is in and its seconds so far (size 0: none) |
 */
import type { Block, BlockStatus, MapfileStatus } from '@ddferry/mapfile';
import type { StatusMessage } from '@ddferry/protocol';

/** How often the shipper sends a Status while connected. */
export const STATUS_INTERVAL_MS = 1000;

/** Longest `message` sent (the limit on the wire is 4 KiB). */
const MAX_MESSAGE_CHARS = 200;

/** What a Status is made from (a `Rescuebook` has these fields). */
export interface StatusFigures {
  readonly currentStatus: MapfileStatus;
  readonly currentMessage: string;
  readonly currentPass: number;
  readonly currentPos: number;
  readonly readErrors: number;
  readonly cRate: number;
  readonly aRate: number;
  readonly map: { sizeOf(st: BlockStatus): number };
}

export interface StatusContext {
  /** The plan's chunks, sorted by `pos`. */
  readonly chunks: readonly Block[];
  readonly spool: { readonly count: number; readonly bytes: number };
  /** Seconds since the rescue command started. */
  readonly runTime: number;
  /** Why reading waits, or null. `since`: milliseconds since the epoch. */
  readonly pause?: { readonly reason: string; readonly text: string; readonly since: number } | null | undefined;
  /** The read the reading process is in, or null. `since`: milliseconds since the epoch. */
  readonly reading?: { readonly pos: number; readonly size: number; readonly since: number } | null | undefined;
  /** Milliseconds since the epoch now (default `Date.now()`). */
  readonly now?: number | undefined;
}

/** A count fit for the wire: an integer from 0 to 2^53-1 (an unbounded size counts as 0). */
function count(n: number): number {
  return Number.isSafeInteger(n) && n > 0 ? n : Number.isFinite(n) && n > 0 ? Math.min(Math.floor(n), Number.MAX_SAFE_INTEGER) : 0;
}

/** Index of the chunk holding `pos` (the last one past the end), 0 without chunks. */
function chunkAt(chunks: readonly Block[], pos: number): number {
  let lo = 0;
  let hi = chunks.length - 1;
  if (hi < 0) return 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (chunks[mid]!.pos <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The Status for the engine's figures now. */
export function statusMessage(rb: StatusFigures, ctx: StatusContext): StatusMessage {
  const message = clip(rb.currentMessage);
  const now = ctx.now ?? Date.now();
  const pause = ctx.pause ?? null;
  const reading = ctx.reading ?? null;
  return {
    type: 'status',
    phase: rb.currentStatus,
    message,
    pass: Math.min(count(rb.currentPass), 0xffffffff),
    pos: count(rb.currentPos),
    finishedSize: count(rb.map.sizeOf('+')),
    nonTriedSize: count(rb.map.sizeOf('?')),
    nonTrimmedSize: count(rb.map.sizeOf('*')),
    nonScrapedSize: count(rb.map.sizeOf('/')),
    badSectorSize: count(rb.map.sizeOf('-')),
    readErrors: count(rb.readErrors),
    currentRate: count(rb.cRate),
    averageRate: count(rb.aRate),
    chunk: Math.min(chunkAt(ctx.chunks, rb.currentPos), 0xffffffff),
    chunkCount: Math.min(ctx.chunks.length, 0xffffffff),
    spoolBytes: count(ctx.spool.bytes),
    spoolPieces: count(ctx.spool.count),
    runTime: count(ctx.runTime),
    paused: pause ? clip(pause.reason) : '',
    pausedText: pause ? clip(pause.text) : '',
    pausedSeconds: pause ? count(Math.floor((now - pause.since) / 1000)) : 0,
    readingPos: reading ? count(reading.pos) : 0,
    readingSize: reading ? count(reading.size) : 0,
    readingSeconds: reading ? count(Math.floor((now - reading.since) / 1000)) : 0,
  };
}

/** `text` cut to `MAX_MESSAGE_CHARS`. */
function clip(text: string): string {
  return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS - 1)}…` : text;
}
