/**
 * `--log-rates=FILE` (spec 4.2, ddrescue's `Rate_logger`): at most one line per
 * second of run time. Overwrites the file.
 */
import { LogFile, hex8 } from './log-file.js';
import type { LogHeader } from './log-file.js';

/** One line of the rates log. */
export interface RateLine {
  /** Seconds since the start. */
  readonly time: number;
  /** Start of the most recent read. */
  readonly ipos: number;
  /** Bytes per second. */
  readonly currentRate: number;
  readonly averageRate: number;
  readonly badAreas: number;
  /** Bytes. */
  readonly badSize: number;
}

export class RateLogger {
  readonly #file: LogFile;
  #lastTime = -1;

  private constructor(file: LogFile) {
    this.#file = file;
  }

  /** @throws ReaderError ERR_LOG_FILE */
  static open(path: string, header: LogHeader): RateLogger {
    return new RateLogger(LogFile.open(path, 'Rates Logfile', header, '#Time  Ipos  Current_rate  Average_rate  Bad_areas  Bad_size', false));
  }

  get path(): string {
    return this.#file.path;
  }

  get active(): boolean {
    return this.#file.active;
  }

  /**
   * `%2lld  0x%08llX  %8lld  %8lld  %7lu  %8lld`, written only if `time` is greater
   * than the time of the last line written.
   */
  line(l: RateLine): void {
    if (!this.#file.active || l.time <= this.#lastTime) return;
    this.#lastTime = l.time;
    this.#file.write(`${String(l.time).padStart(2)}  ${hex8(l.ipos)}  ${String(l.currentRate).padStart(8)}  `
      + `${String(l.averageRate).padStart(8)}  ${String(l.badAreas).padStart(7)}  ${String(l.badSize).padStart(8)}\n`);
  }

  /** Write `# End time:` and close. @returns false if any write or the close failed. */
  close(endTime?: string): boolean {
    return this.#file.close(endTime);
  }
}
