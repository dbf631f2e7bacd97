/**
 * `--log-reads=FILE` (spec 4.1, ddrescue's `Read_logger`): one TAB-separated line per
 * read, a `# <time>  <message>` line at the start of each pass or phase, and `# <time>`
 * marks at the one-second refreshes. Overwrites the file.
 */
import { LogFile, hex8 } from './log-file.js';
import type { LogHeader } from './log-file.js';
import { formatTimeDhms } from './format-time.js';

export class ReadLogger {
  readonly #file: LogFile;
  /** No read line since the header or the last phase line. */
  #prevIsMessage = true;

  private constructor(file: LogFile) {
    this.#file = file;
  }

  /** @throws ReaderError ERR_LOG_FILE */
  static open(path: string, header: LogHeader): ReadLogger {
    return new ReadLogger(LogFile.open(path, 'Reads Logfile', header, '#  Ipos       Size  Copied_size  Error_size', false));
  }

  get path(): string {
    return this.#file.path;
  }

  get active(): boolean {
    return this.#file.active;
  }

  /** `0x%08llX\t%lld\t%d\t%d`: start of the block, requested size, bytes copied, bytes failed. */
  line(ipos: number, size: number, copied: number, error: number): void {
    this.#file.write(`${hex8(ipos)}\t${size}\t${copied}\t${error}\n`);
    this.#prevIsMessage = false;
  }

  /** `# <time>  <message>`, after an empty line if a read line came since the last one. */
  phase(time: number, message: string): void {
    this.#file.write(`${this.#prevIsMessage ? '' : '\n'}# ${formatTimeDhms(time)}  ${message}\n`);
    this.#prevIsMessage = true;
  }

  /** `# <time>`, only for a time above 0. */
  timeMark(time: number): void {
    if (time > 0) this.#file.write(`# ${formatTimeDhms(time)}\n`);
  }

  /** Write `# End time:` and close. @returns false if any write or the close failed. */
  close(endTime?: string): boolean {
    return this.#file.close(endTime);
  }
}
