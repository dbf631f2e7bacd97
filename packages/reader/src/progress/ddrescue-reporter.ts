/**
 * The `ddferry-reader ddrescue` reporter: GNU ddrescue 1.27's screen and its three
 * log files, fed by the rescue engine at the moments ddrescue writes them.
 */
import { formatTimestamp } from '@ddferry/mapfile';

import type { RescueReporter, StatusRefresh } from '../engine/reporter.js';
import type { EventLogger } from '../logs/event-logger.js';
import type { RateLogger } from '../logs/rate-logger.js';
import type { ReadLogger } from '../logs/read-logger.js';
import { StatusScreen } from './status-screen.js';

export interface DdrescueReporterOptions {
  /** -1 with `-q`; 0 by default; more with `-v`. The screen is drawn if >= 0. */
  readonly verbosity: number;
  /** `-B`. */
  readonly binaryPrefixes: boolean;
  /** Where the screen goes (stderr in practice). */
  readonly write: (text: string) => void;
  readonly readLog?: ReadLogger;
  readonly rateLog?: RateLogger;
  readonly eventLog?: EventLogger;
}

export class DdrescueReporter implements RescueReporter {
  readonly #verbosity: number;
  readonly #write: (text: string) => void;
  readonly #screen: StatusScreen | null;
  readonly #readLog: ReadLogger | undefined;
  readonly #rateLog: RateLogger | undefined;
  readonly #eventLog: EventLogger | undefined;
  #closed = false;

  constructor(options: DdrescueReporterOptions) {
    this.#verbosity = options.verbosity;
    this.#write = options.write;
    this.#screen = options.verbosity >= 0 ? new StatusScreen({ binaryPrefixes: options.binaryPrefixes, write: options.write }) : null;
    this.#readLog = options.readLog;
    this.#rateLog = options.rateLog;
    this.#eventLog = options.eventLog;
  }

  phaseStarted(elapsed: number, percentRescued: string, message: string): void {
    this.#eventLog?.event(elapsed, percentRescued, message);
    this.#readLog?.phase(elapsed, message);
  }

  readDone(pos: number, size: number, copied: number, error: number): void {
    this.#readLog?.line(pos, size, copied, error);
  }

  statusRefreshed(refresh: StatusRefresh): void {
    this.#screen?.refresh(refresh);
    const s = refresh.snapshot;
    this.#rateLog?.line({
      time: s.runTime, ipos: s.ipos, currentRate: s.currentRate, averageRate: s.averageRate, badAreas: s.badAreas, badSize: s.badSize,
    });
    if (!refresh.forced) this.#readLog?.timeMark(s.runTime);
  }

  /** `Event_logger::echo_msg`: `\n  TEXT` on the screen, 22 spaces and the text in the events log. */
  echo(message: string): void {
    if (this.#verbosity >= 0) this.#write(`\n  ${message}`);
    this.#eventLog?.echo(message);
  }

  /**
   * The `End of run` event. The newline ddrescue's `do_rescue` prints on screen after
   * the stop-cause lines is the caller's (run.ts prints it after `doRescue`).
   */
  endOfRun(elapsed: number, percentRescued: string, currentPos: number, statusName: string): void {
    this.#eventLog?.endOfRun(elapsed, percentRescued, currentPos, statusName);
  }

  /**
   * Close the logs (events, rates, reads, as ddrescue does), all with the same
   * `# End time:`. Only the first call does anything.
   * @returns one warning per log that failed to write or close, as `FILE: warning: ...`.
   */
  close(): string[] {
    if (this.#closed) return [];
    this.#closed = true;
    const endTime = formatTimestamp(new Date());
    const warnings: string[] = [];
    const logs: [{ path: string; close(endTime?: string): boolean } | undefined, string][] = [
      [this.#eventLog, 'events'], [this.#rateLog, 'rates'], [this.#readLog, 'reads'],
    ];
    for (const [log, what] of logs) {
      if (log && !log.close(endTime)) warnings.push(`${log.path}: warning: error closing the ${what} logging file.`);
    }
    return warnings;
  }
}
