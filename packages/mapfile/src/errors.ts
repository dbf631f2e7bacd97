/**
 * Errors a user can reach from this package. Callers branch on `err.code`.
 */

/** Codes of malformed mapfiles. GNU ddrescue exits with status 2 on each. */
export type MapfileParseCode =
  | 'ERR_MAPFILE_BAD_STATUS_LINE'
  | 'ERR_MAPFILE_BAD_BLOCK_LINE'
  | 'ERR_MAPFILE_NOT_CONTIGUOUS'
  | 'ERR_MAPFILE_STATUS_OVERLAP'
  | 'ERR_MAPFILE_NUMBER_TOO_LARGE';

const PARSE_HINTS: Readonly<Record<MapfileParseCode, string>> = {
  ERR_MAPFILE_BAD_STATUS_LINE: 'the first data line must be "POS STATUS [PASS]"',
  ERR_MAPFILE_BAD_BLOCK_LINE: 'each block line must be "POS SIZE STATUS" with STATUS one of ? * / - +',
  ERR_MAPFILE_NOT_CONTIGUOUS: 'each block must start where the previous one ends; ddrescuelog -C can fill gaps',
  ERR_MAPFILE_STATUS_OVERLAP: 'overlapping blocks must have the same status',
  ERR_MAPFILE_NUMBER_TOO_LARGE: 'positions and sizes above 2^53-1 bytes are refused (a block may still end exactly at 2^63-1, meaning "to the end")',
};

/** The text GNU ddrescue prints for each code, after "Error in mapfile, line N: ". */
export const DDRESCUE_PARSE_MESSAGES: Readonly<Record<MapfileParseCode, string>> = {
  ERR_MAPFILE_BAD_STATUS_LINE: 'Bad or missing status line.',
  ERR_MAPFILE_BAD_BLOCK_LINE: 'Bad block line in list.',
  ERR_MAPFILE_NOT_CONTIGUOUS: 'Blocks are not contiguous.',
  ERR_MAPFILE_STATUS_OVERLAP: 'Blocks of different status overlap.',
  ERR_MAPFILE_NUMBER_TOO_LARGE: 'Bad block line in list.',
};

/** A malformed mapfile: names the file and the physical line. */
export class MapfileParseError extends Error {
  override readonly name = 'MapfileParseError';
  readonly code: MapfileParseCode;
  readonly file: string;
  readonly line: number;
  readonly reason: string;
  constructor(code: MapfileParseCode, file: string, line: number, options?: { cause?: unknown }) {
    const reason = DDRESCUE_PARSE_MESSAGES[code];
    super(`${file}: line ${line}: ${code === 'ERR_MAPFILE_NUMBER_TOO_LARGE' ? 'Number too large.' : reason} Fix: ${PARSE_HINTS[code]}.`, options);
    this.code = code;
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}

/** Codes of mapfiles that do not fit the input they are used with. */
export type MapfileSizeCode = 'ERR_MAPFILE_BEGINS_PAST_END' | 'ERR_MAPFILE_RESCUED_PAST_END';

/** A mapfile that describes a larger input than the one given (GNU ddrescue exits 1). */
export class MapfileSizeError extends Error {
  override readonly name = 'MapfileSizeError';
  readonly code: MapfileSizeCode;
  readonly file: string;
  readonly insize: number;
  constructor(code: MapfileSizeCode, file: string, insize: number) {
    const what = code === 'ERR_MAPFILE_BEGINS_PAST_END'
      ? 'Last block in mapfile begins past end of input file.'
      : 'Rescued data in mapfile goes past end of input file.';
    super(`${file}: ${what} The input is ${insize} bytes. Check that this mapfile belongs to this input; use -C if reading from a partial copy.`);
    this.code = code;
    this.file = file;
    this.insize = insize;
  }
}

/** Codes of file problems around mapfiles. */
export type MapfileIoCode = 'ERR_MAPFILE_NOT_FOUND' | 'ERR_MAPFILE_READ' | 'ERR_MAPFILE_WRITE' | 'ERR_MAPFILE_BAK_NOT_REGULAR';

/** A mapfile that cannot be read or saved; `cause` holds the system error. */
export class MapfileIoError extends Error {
  override readonly name = 'MapfileIoError';
  readonly code: MapfileIoCode;
  readonly file: string;
  constructor(code: MapfileIoCode, file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
    this.code = code;
    this.file = file;
  }
}

/** Codes of bad numbers and values given by the user. */
export type ArgumentCode =
  | 'ERR_ARG_BAD_NUMBER'
  | 'ERR_ARG_BAD_MULTIPLIER'
  | 'ERR_ARG_OUT_OF_LIMITS'
  | 'ERR_ARG_TOO_LARGE'
  | 'ERR_ARG_INVALID';

/** A bad command-line value. `option` is the option as the user spelled it. */
export class ArgumentError extends Error {
  override readonly name = 'ArgumentError';
  readonly code: ArgumentCode;
  readonly option: string;
  readonly value: string;
  constructor(code: ArgumentCode, option: string, value: string, message: string) {
    super(message);
    this.code = code;
    this.option = option;
    this.value = value;
  }
}

/** Codes of the chunk planner. */
export type PlanCode = 'ERR_PLAN_BAD_SIZE' | 'ERR_PLAN_MEDIUM_TOO_SMALL';

/** A chunk plan that cannot be made from the sizes given. */
export class PlanError extends Error {
  override readonly name = 'PlanError';
  readonly code: PlanCode;
  constructor(code: PlanCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Codes of `ddferry-map render`. */
export type RenderCode = 'ERR_RENDER_OUTPUT_TYPE' | 'ERR_RENDER_OVERLAY_SIZE' | 'ERR_RENDER_WRITE';

/** A map picture that cannot be made or written; `file` names the file concerned. */
export class RenderError extends Error {
  override readonly name = 'RenderError';
  readonly code: RenderCode;
  readonly file: string;
  constructor(code: RenderCode, file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
    this.code = code;
    this.file = file;
  }
}
