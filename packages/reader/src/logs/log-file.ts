/**
 * The file side shared by GNU ddrescue's three loggers (loggers.cc, spec 4): the
 * name checks, the header, synchronous buffered writes, and the `# End time:` line.
 */
import { closeSync, openSync, statSync, writeSync } from 'node:fs';

import { DDRESCUE_VERSION, formatTimestamp } from '@ddferry/mapfile';

import { ReaderError } from '../errors.js';

/** The first lines of a log file. */
export interface LogHeader {
  /** argv[0] and every argument joined with single spaces. */
  readonly commandLine: string;
  /** `%Y-%m-%d %H:%M:%S`, local time at program start (`formatTimestamp`). */
  readonly startTime: string;
}

/** The file type named in the first header line. */
export type LogFileType = 'Reads Logfile' | 'Rates Logfile' | 'Events Logfile';

/** What the log records, as in ddrescue's "Can't open file for logging ..." message. */
const LOGGING_WHAT: Record<LogFileType, string> = {
  'Reads Logfile': 'reads',
  'Rates Logfile': 'rates',
  'Events Logfile': 'events',
};

/** Buffered text is written out once it reaches this many characters. */
const FLUSH_AT = 64 * 1024;

/**
 * `Logger::set_filename`: refuse `-` and an existing file that is not a regular file.
 * @throws ReaderError ERR_LOG_FILE
 */
export function checkLogFileName(path: string): void {
  if (path === '-') throw new ReaderError('ERR_LOG_FILE', path, "I won't write log data to standard output.");
  let regular = true;
  try {
    regular = statSync(path).isFile();
  } catch {
    // does not exist (or cannot be examined): opening it reports any problem
  }
  if (!regular) throw new ReaderError('ERR_LOG_FILE', path, `${path}: Logfile exists and is not a regular file.`);
}

/** `0x%08llX`. */
export function hex8(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(8, '0')}`;
}

/** `write_file_header` with ddferry named as the creator. */
export function formatLogHeader(type: LogFileType, header: LogHeader): string {
  return `# ${type}. Created by ddferry in the format of GNU ddrescue ${DDRESCUE_VERSION}\n`
    + `# Command line: ${header.commandLine}\n`
    + `# Start time:   ${header.startTime}\n`;
}

/**
 * One open log file. Text is buffered and written synchronously at 64 KiB and at
 * close. As in ddrescue, the first write error stops all further output and makes
 * `close` report failure.
 */
export class LogFile {
  readonly path: string;
  #fd: number | null;
  #buffer = '';
  #error = false;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
  }

  /**
   * Check the name, open the file (`append`: add a blank line first if it exists;
   * else truncate) and buffer the header and the column line.
   * @throws ReaderError ERR_LOG_FILE
   */
  static open(path: string, type: LogFileType, header: LogHeader, columns: string, append: boolean): LogFile {
    checkLogFileName(path);
    let exists = false;
    if (append) {
      try {
        statSync(path);
        exists = true;
      } catch {
        // a new file: no separating blank line
      }
    }
    let fd: number;
    try {
      fd = openSync(path, append ? 'a' : 'w', 0o666);
    } catch (err) {
      throw new ReaderError('ERR_LOG_FILE', path,
        `${path}: Can't open file for logging ${LOGGING_WHAT[type]}: ${(err as Error).message}. Check that its folder exists and is writable.`,
        { cause: err });
    }
    const file = new LogFile(path, fd);
    file.write(`${exists ? '\n' : ''}${formatLogHeader(type, header)}${columns}\n`);
    return file;
  }

  /** True while the file is open and no write has failed (ddrescue's `active()`). */
  get active(): boolean {
    return this.#fd !== null && !this.#error;
  }

  /** Buffer `text`; written out once 64 KiB have gathered. */
  write(text: string): void {
    if (this.#fd === null || this.#error) return;
    this.#buffer += text;
    if (this.#buffer.length >= FLUSH_AT) this.flush();
  }

  /** Write out the buffered text now. @returns false once a write has failed. */
  flush(): boolean {
    if (this.#fd === null || this.#error) return !this.#error;
    if (this.#buffer.length > 0) {
      const data = Buffer.from(this.#buffer, 'utf8');
      this.#buffer = '';
      try {
        let done = 0;
        while (done < data.length) done += writeSync(this.#fd, data, done, data.length - done);
      } catch {
        this.#error = true;
      }
    }
    return !this.#error;
  }

  /**
   * `Logger::close_file`: write `# End time:` (with `endTime`, default now), flush and
   * close. Closes even after an error. Does nothing if already closed.
   * @returns false if any write or the close failed.
   */
  close(endTime: string = formatTimestamp(new Date())): boolean {
    if (this.#fd === null) return !this.#error;
    this.write(`# End time:     ${endTime}\n`);
    this.flush();
    try {
      closeSync(this.#fd);
    } catch {
      this.#error = true;
    }
    this.#fd = null;
    return !this.#error;
  }
}
