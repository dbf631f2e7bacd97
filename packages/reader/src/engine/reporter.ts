/**
 * What the engine tells the outside world, at the moments GNU ddrescue does: the
 * screen, the logs and (later) the pipeline listen through this interface.
 */

/** The figures of ddrescue's status block (spec 6.2), at one refresh. */
export interface StatusSnapshot {
  /** Start of the most recent read. */
  readonly ipos: number;
  /** `ipos` plus the output offset. */
  readonly opos: number;
  readonly nonTried: number;
  readonly nonTrimmed: number;
  readonly nonScraped: number;
  readonly badSize: number;
  readonly finished: number;
  readonly badAreas: number;
  readonly readErrors: number;
  readonly slowReads: number;
  /** True if `-a` was given: the slow-reads figure is shown. */
  readonly showSlowReads: boolean;
  /** Bytes per second. */
  readonly currentRate: number;
  readonly averageRate: number;
  readonly errorRate: number;
  /** Seconds since the start. */
  readonly runTime: number;
  /** Seconds, or -1 for n/a. */
  readonly remainingTime: number;
  /** Seconds, or -1 for n/a. */
  readonly sinceLastSuccess: number;
  /** `format_percentage(finished, domain size, 3, 2)`: ` 93.71%`. */
  readonly percentRescued: string;
}

export interface StatusRefresh {
  readonly snapshot: StatusSnapshot;
  /** The phase message to show under the block, or null (not shown while a stop condition is pending). */
  readonly message: string | null;
  /** First refresh of a pass or phase: scroll instead of redrawing in place. */
  readonly scroll: boolean;
  /** A forced refresh (end of a pass); no time mark in the read log. */
  readonly forced: boolean;
}

export interface RescueReporter {
  /** First read of a pass or phase (events log, reads log). */
  phaseStarted(elapsed: number, percentRescued: string, message: string): void;
  /** After every read (reads log). */
  readDone(pos: number, size: number, copied: number, error: number): void;
  /** A status refresh (screen, rates log, reads log time mark). */
  statusRefreshed(refresh: StatusRefresh): void;
  /** A stop cause or `Interrupted by user` (events log and screen). */
  echo(message: string): void;
  /** The end of the run (events log). */
  endOfRun(elapsed: number, percentRescued: string, currentPos: number, statusName: string): void;
}

/** A reporter that reports nothing. */
export const SILENT_REPORTER: RescueReporter = {
  phaseStarted() {},
  readDone() {},
  statusRefreshed() {},
  echo() {},
  endOfRun() {},
};
