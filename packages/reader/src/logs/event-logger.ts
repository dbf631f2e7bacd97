/**
 * `--log-events=FILE` (spec 4.3, ddrescue's `Event_logger`): pass and phase starts,
 * stop causes, and the end of the run. Appends to the file, after a blank line if it
 * already exists.
 */
import { LogFile, hex8 } from './log-file.js';
import type { LogHeader } from './log-file.js';
import { formatTimeDhms } from './format-time.js';

export class EventLogger {
  readonly #file: LogFile;

  private constructor(file: LogFile) {
    this.#file = file;
  }

  /** @throws ReaderError ERR_LOG_FILE */
  static open(path: string, header: LogHeader): EventLogger {
    return new EventLogger(LogFile.open(path, 'Events Logfile', header, '#         Time  Rescued  Event', true));
  }

  get path(): string {
    return this.#file.path;
  }

  get active(): boolean {
    return this.#file.active;
  }

  /** `%14s  %s  %s`: time, percentage rescued (as on screen), message. */
  event(time: number, percentRescued: string, message: string): void {
    this.#file.write(`${formatTimeDhms(time).padStart(14)}  ${percentRescued}  ${message}\n`);
  }

  /** A stop cause or interruption: 22 spaces and the text (the screen part is the reporter's). */
  echo(message: string): void {
    this.#file.write(`                      ${message}\n`);
  }

  /** `%14s  %s  End of run (0x%08llX  <status name>)`. */
  endOfRun(time: number, percentRescued: string, currentPos: number, statusName: string): void {
    this.event(time, percentRescued, `End of run (${hex8(currentPos)}  ${statusName})`);
  }

  /** Write `# End time:` and close. @returns false if any write or the close failed. */
  close(endTime?: string): boolean {
    return this.#file.close(endTime);
  }
}
