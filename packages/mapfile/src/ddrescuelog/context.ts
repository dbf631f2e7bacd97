import { isAbsolute, resolve } from 'node:path';

import { Domain } from '../domain.js';
import { DDRESCUE_PARSE_MESSAGES, type MapfileParseCode, MAPFILE_PARSE_CODES, isMapfileError } from '../errors.js';
import { formatMapfileChunks } from '../format.js';
import type { MapfileState } from '../format.js';
import { readMapfile } from '../io.js';
import { type Mapfile, parseMapfile } from '../parse.js';
import type { BlockStatus } from '../status.js';

/** What a command needs from the outside world; tests give their own. */
export interface CliIo {
  /** Write to standard output; the caller may reuse `chunk` once this returns (copy it to keep it). */
  stdout(chunk: string | Uint8Array): void;
  stderr(text: string): void;
  readStdin(): Promise<Uint8Array>;
  readonly stdinIsTTY: boolean;
  readonly stdoutIsTTY: boolean;
  /** Folder against which relative file names are resolved. */
  readonly cwd: string;
}

/** Ends a command with an exit status, its messages already printed. */
export class Exit extends Error {
  override readonly name = 'Exit';
  readonly status: number;
  constructor(status: number) {
    super(`exit ${status}`);
    this.status = status;
  }
}

/** The program name in messages, as GNU ddrescuelog prints it. */
export const PROGRAM = 'ddrescuelog';

/** State shared by the operations of one ddrescuelog run. */
export class Context {
  readonly io: CliIo;
  readonly commandLine: string;
  readonly startTime: string;
  verbosity = 0;
  binaryPrefixes = false;
  #stdinUsed = false;

  constructor(io: CliIo, commandLine: string, startTime: string) {
    this.io = io;
    this.commandLine = commandLine;
    this.startTime = startTime;
  }

  /** `show_error`: `ddrescuelog: MSG`, and the help hint if asked. */
  error(msg: string, help = false): void {
    if (this.verbosity < 0) return;
    this.io.stderr(`${PROGRAM}: ${msg}\n`);
    if (help) this.io.stderr(`Try '${PROGRAM} --help' for more information.\n`);
  }

  /** `show_file_error`: `ddrescuelog: FILE: MSG`. */
  fileError(file: string, msg: string): void {
    if (this.verbosity >= 0) this.io.stderr(`${PROGRAM}: ${file}: ${msg}\n`);
  }

  /**
   * Read a mapfile as ddrescuelog does (strict, or loose with a default status), a
   * file in pieces or stdin for `-`; null if it does not exist or cannot be read. A
   * malformed file prints ddrescuelog's message and exits 2.
   */
  async readMapfile(name: string, loose?: BlockStatus): Promise<Mapfile | null> {
    const pname = name === '-' ? '(stdin)' : name;
    const options = { file: pname, ...(loose ? { loose } : {}) };
    try {
      if (name !== '-') return await readMapfile(isAbsolute(name) ? name : resolve(this.io.cwd, name), options);
      const bytes = this.#stdinUsed ? new Uint8Array(0) : await this.io.readStdin();
      this.#stdinUsed = true;
      return parseMapfile(bytes, options);
    } catch (err) {
      if (!isMapfileError(err)) throw err;
      if (err.code === 'ERR_MAPFILE_NOT_FOUND' || err.code === 'ERR_MAPFILE_READ') {
        if ((err.cause as { code?: unknown } | undefined)?.code !== 'EISDIR') return null;
        this.fileError(name, 'Error in mapfile, line 0: Read error.');
        throw new Exit(1);
      }
      if (!MAPFILE_PARSE_CODES.has(err.code)) throw err;
      const reason = err.code === 'ERR_MAPFILE_NUMBER_TOO_LARGE'
        ? 'Number too large; ddferry reads positions and sizes up to 2^53-1.'
        : DDRESCUE_PARSE_MESSAGES[err.code as MapfileParseCode];
      this.fileError(pname, `Error in mapfile, line ${err.line}: ${reason}`);
      throw new Exit(2);
    }
  }

  /** Read a mapfile or exit 1 with "Mapfile does not exist or is not readable." */
  async requireMapfile(name: string, loose?: BlockStatus): Promise<Mapfile> {
    const m = await this.readMapfile(name, loose);
    if (!m) {
      this.fileError(name === '-' ? '(stdin)' : name, 'Mapfile does not exist or is not readable.');
      throw new Exit(1);
    }
    return m;
  }

  /** The domain of `-i`, `-s` and `-m` (read again for each mapfile, as ddrescuelog does). */
  async domain(ipos: number, maxSize: number, domainMapfile: string | undefined, loose: boolean): Promise<Domain> {
    if (domainMapfile === undefined || domainMapfile === '') return Domain.fromOptions(ipos, maxSize);
    const m = await this.readMapfile(domainMapfile, loose ? '?' : undefined);
    if (!m) {
      this.fileError(domainMapfile, 'Mapfile does not exist or is not readable.');
      throw new Exit(1);
    }
    return Domain.fromOptions(ipos, maxSize, m.blocks);
  }

  /** Print "Nothing to do; domain is empty." and return 0. */
  emptyDomain(): number {
    this.error('Nothing to do; domain is empty.');
    return 0;
  }

  /** A mapfile as ddrescuelog writes it, in pieces valid until the next is taken (see `formatMapfileChunks`). */
  format(state: MapfileState, annotate?: Domain): Iterable<Uint8Array> {
    return formatMapfileChunks(state, { program: 'ddrescuelog', commandLine: this.commandLine, startTime: this.startTime }, annotate, this.binaryPrefixes);
  }

  /** Write a mapfile to stdout as ddrescuelog does, a piece at a time from one buffer. */
  writeMapfile(state: MapfileState, annotate?: Domain): void {
    for (const piece of this.format(state, annotate)) this.io.stdout(piece);
  }
}
