/**
 * What the reading process and the main process say to each other.
 *
 * The reading process (`reading-child.ts`) runs the engine and nothing else: it opens the
 * source, reads, and streams every read's outcome to the main process before it starts
 * the next read, so a read that hangs in the kernel holds nothing but itself: the main
 * process already has every byte and status of the reads before it.
 *
 * Reading process to main process, on its fd 3, binary frames `[u8 type][u32le length][payload]`:
 *
 * | type | payload | when |
 * |---|---|---|
 * | `READ` | f64 pos, f64 size | just before a read of the source starts |
 * | `DATA` | f64 pos, bytes | good data read at `pos` (the engine's sink `write`) |
 * | `STATUS` | f64 pos, f64 size, u8 status | a status change (the sink's `statusChanged`) |
 * | `READ_DONE` | f64 pos, f64 size, f64 copied, f64 error | after each read, only when a reads log is kept |
 * | `EVENT` | UTF-8 JSON, one `ReadingEvent` | rare events: the source opened, refreshes, saves, the end |
 *
 * Main process to reading process, on its stdin: one `ReadingControl` JSON object a line.
 */
import type { MapfileStatus } from '@ddferry/mapfile';

import type { RescueOptions } from '../engine/options.js';
import type { StatusRefresh } from '../engine/reporter.js';
import type { SourceIdentity } from '../source/source.js';
import type { UsedSpace } from '../used/used-space.js';

export const FRAME = { read: 1, data: 2, status: 3, readDone: 4, event: 5 } as const;

/** Bytes before a frame's payload: type and length. */
export const FRAME_HEADER_BYTES = 5;

/** Where the mapfile's status line is (`current_pos`, status, pass) and the phase message. */
export interface EngineState {
  readonly currentPos: number;
  readonly currentStatus: MapfileStatus;
  readonly currentPass: number;
  readonly message: string;
}

/** How a domain's run ended (`doRescue`'s outcome). */
export interface ReadingOutcome {
  readonly status: 0 | 1;
  readonly interrupted: boolean;
  readonly messages: readonly string[];
  readonly finalMessage: string;
}

/** The rare messages of the reading process. */
export type ReadingEvent =
  | { readonly kind: 'opened'; readonly identity: SourceIdentity; readonly size: number }
  /** The source could not be opened (or the test map read): a coded error. */
  | { readonly kind: 'failed'; readonly code: string; readonly message: string }
  | { readonly kind: 'refresh'; readonly refresh: StatusRefresh; readonly state: EngineState }
  | { readonly kind: 'phase'; readonly elapsed: number; readonly percent: string; readonly message: string }
  | { readonly kind: 'echo'; readonly message: string }
  | { readonly kind: 'endOfRun'; readonly elapsed: number; readonly percent: string; readonly currentPos: number; readonly statusName: string }
  /** The engine saves its mapfile (ddrescue's timing): everything sent so far belongs in the next save. */
  | { readonly kind: 'save'; readonly state: EngineState; readonly force: boolean }
  /** The source ended below the map's end: the map is cut at `end`. */
  | { readonly kind: 'truncate'; readonly end: number }
  /** No more data may be sent (the grant is used up): the engine waits before its next read. */
  | { readonly kind: 'waiting'; readonly sent: number }
  /** Domain `index` of the init's list starts (its `-M`/`-A` edits are made now). */
  | { readonly kind: 'domainStart'; readonly index: number }
  /** One domain's run ended. */
  | { readonly kind: 'domainDone'; readonly outcome: ReadingOutcome; readonly state: EngineState }
  /** The used-space scan's result (scan mode). */
  | { readonly kind: 'usedSpace'; readonly used: UsedSpace }
  /** Every domain ran (or one stopped the run); the process exits after this. */
  | { readonly kind: 'done' };

/** A domain of the rescue: one range, or a GNU ddrescue domain mapfile's text (`+` inside). */
export type ReadingDomain = { readonly pos: number; readonly size: number } | { readonly mapText: string };

/** What the reading process is asked to do. */
export interface ReadingInit {
  readonly source: string;
  readonly testMap?: string | undefined;
  /** Reads that block, for tests and demos (`plan --test-slow-reads`). */
  readonly slowReads?: ReadonlyArray<{ readonly pos: number; readonly size: number; readonly seconds: number }> | undefined;
  readonly options: RescueOptions;
  /**
   * Domains rescued one after the other: the whole source, each chunk (`--chunk-at-a-time`),
   * or the used space first (a domain mapfile's text, `+` inside).
   */
  readonly domains: ReadonlyArray<ReadingDomain>;
  /**
   * Scan mode (`used-map`, `plan --used-first`): instead of the domains, read what the
   * used-space scan asks (partition tables, file-system metadata), each read through the
   * engine and streamed like any other, then report the scan's result.
   */
  readonly scan?: boolean | undefined;
  readonly insize: number;
  /** The common map now, as mapfile text. */
  readonly mapText: string;
  readonly state: { readonly currentPos: number; readonly currentStatus: MapfileStatus; readonly currentPass: number };
  /** Seconds (epoch) the command started: the engine's clocks count from it. */
  readonly startTime: number;
  /** Send `READ_DONE` frames (a reads log is kept). */
  readonly readDone: boolean;
  /** Grant units (data bytes, `READ_CHARGE` a read) that may be sent before the first grant. */
  readonly grant: number;
  /** `JOBDIR/reading.pid`: the reading process removes it when it ends, if it still names it. */
  readonly pidFile?: string | undefined;
}

/**
 * What a read costs of a grant beyond its data: a read may end a piece of its own (the map
 * is saved after it, `--mapfile-interval=0`), and a piece's file holds its tar headers and
 * description beyond its data (3 KiB for a piece of one read, more with delta ranges or two
 * chunks). Grants count it so that the spool holds at most `--spool-size` however small the
 * pieces: without it, 8 MiB granted to an empty spool became 128 pieces of 64 KiB, 384 KiB
 * over.
 */
export const READ_CHARGE = 8 << 10;

export type ReadingControl =
  | ({ readonly kind: 'init' } & ReadingInit)
  /** The source is the planned one: read. */
  | { readonly kind: 'start' }
  /** `total` data bytes may be sent since the start (it only grows). */
  | { readonly kind: 'grant'; readonly total: number }
  /** Stop: exit now (everything read so far was sent). */
  | { readonly kind: 'stop' };

/** JSON with the infinities of the engine's options ("no limit") kept. */
export function encodeControl(c: ReadingControl): string {
  return `${JSON.stringify(c, (_k, v: unknown) => (v === Number.POSITIVE_INFINITY ? '+Infinity' : v === Number.NEGATIVE_INFINITY ? '-Infinity' : v))}\n`;
}

export function decodeControl(line: string): ReadingControl {
  return JSON.parse(line, (_k, v: unknown) => (v === '+Infinity' ? Number.POSITIVE_INFINITY : v === '-Infinity' ? Number.NEGATIVE_INFINITY : v)) as ReadingControl;
}

/** The argument that makes `ddferry-reader` the reading process. */
export const READING_PROCESS_ARG = '__reading-process';
