/**
 * The one error class of this package, `MapfileError`, for every error a user can reach.
 * Callers branch on `err.code`, never on `instanceof` or the message text.
 */

/** Codes of malformed mapfiles. GNU ddrescue exits with status 2 on each. */
export type MapfileParseCode =
  | 'ERR_MAPFILE_BAD_STATUS_LINE'
  | 'ERR_MAPFILE_BAD_BLOCK_LINE'
  | 'ERR_MAPFILE_NOT_CONTIGUOUS'
  | 'ERR_MAPFILE_STATUS_OVERLAP'
  | 'ERR_MAPFILE_NUMBER_TOO_LARGE';

/** Codes of mapfiles that do not fit the input they are used with (GNU ddrescue exits 1). */
export type MapfileSizeCode = 'ERR_MAPFILE_BEGINS_PAST_END' | 'ERR_MAPFILE_RESCUED_PAST_END';

/** Codes of file problems around mapfiles. */
export type MapfileIoCode = 'ERR_MAPFILE_NOT_FOUND' | 'ERR_MAPFILE_READ' | 'ERR_MAPFILE_WRITE' | 'ERR_MAPFILE_BAK_NOT_REGULAR';

/** Codes of bad numbers and values given by the user. */
export type ArgumentCode =
  | 'ERR_ARG_BAD_NUMBER'
  | 'ERR_ARG_BAD_MULTIPLIER'
  | 'ERR_ARG_OUT_OF_LIMITS'
  | 'ERR_ARG_TOO_LARGE'
  | 'ERR_ARG_INVALID';

/** Codes of the chunk planner. */
export type PlanCode = 'ERR_PLAN_BAD_SIZE' | 'ERR_PLAN_MEDIUM_TOO_SMALL';

/** Codes of `ddferry-map render`. */
export type RenderCode = 'ERR_RENDER_OUTPUT_TYPE' | 'ERR_RENDER_OVERLAY_SIZE' | 'ERR_RENDER_WRITE';

/** Every code a `MapfileError` carries. */
export type MapfileErrorCode = MapfileParseCode | MapfileSizeCode | MapfileIoCode | ArgumentCode | PlanCode | RenderCode;

/** The codes of malformed mapfiles: the ones GNU ddrescue ends with exit status 2. */
export const MAPFILE_PARSE_CODES: ReadonlySet<MapfileErrorCode> = new Set<MapfileParseCode>([
  'ERR_MAPFILE_BAD_STATUS_LINE', 'ERR_MAPFILE_BAD_BLOCK_LINE', 'ERR_MAPFILE_NOT_CONTIGUOUS', 'ERR_MAPFILE_STATUS_OVERLAP', 'ERR_MAPFILE_NUMBER_TOO_LARGE',
]);

/** The text GNU ddrescue prints for each code, after "Error in mapfile, line N: ". */
export const DDRESCUE_PARSE_MESSAGES: Readonly<Record<MapfileParseCode, string>> = {
  ERR_MAPFILE_BAD_STATUS_LINE: 'Bad or missing status line.',
  ERR_MAPFILE_BAD_BLOCK_LINE: 'Bad block line in list.',
  ERR_MAPFILE_NOT_CONTIGUOUS: 'Blocks are not contiguous.',
  ERR_MAPFILE_STATUS_OVERLAP: 'Blocks of different status overlap.',
  ERR_MAPFILE_NUMBER_TOO_LARGE: 'Bad block line in list.',
};

const PARSE_HINTS: Readonly<Record<MapfileParseCode, string>> = {
  ERR_MAPFILE_BAD_STATUS_LINE: 'the first data line must be "POS STATUS [PASS]"',
  ERR_MAPFILE_BAD_BLOCK_LINE: 'each block line must be "POS SIZE STATUS" with STATUS one of ? * / - +',
  ERR_MAPFILE_NOT_CONTIGUOUS: 'each block must start where the previous one ends; ddrescuelog -C can fill gaps',
  ERR_MAPFILE_STATUS_OVERLAP: 'overlapping blocks must have the same status',
  ERR_MAPFILE_NUMBER_TOO_LARGE: 'positions and sizes above 2^53-1 bytes are refused (a block may still end exactly at 2^63-1, meaning "to the end")',
};

/** What a `MapfileError` tells besides its code and message; each field is set where it applies. */
export interface MapfileErrorDetails {
  /** What to do next; '' when the message says it. */
  readonly hint?: string;
  /** The file concerned. */
  readonly file?: string;
  /** The physical line of a malformed mapfile. */
  readonly line?: number;
  /** GNU ddrescue's words for a malformed mapfile (`Bad block line in list.`). */
  readonly reason?: string;
  /** The option as the user spelled it (`-s`, `--size`). */
  readonly option?: string;
  /** The value given to `option`. */
  readonly value?: string;
  /** The input size a mapfile did not fit. */
  readonly insize?: number;
  readonly cause?: unknown;
}

/**
 * An error a user can reach: a malformed or misfitting mapfile, a file that cannot be
 * read or written, a bad command-line value, a plan or picture that cannot be made.
 * `message` says what is wrong (never the code); `hint` says what to do next. The edge
 * that prints it shows the code, the message and the hint.
 */
export class MapfileError extends Error {
  override readonly name = 'MapfileError';
  readonly code: MapfileErrorCode;
  readonly hint: string;
  readonly file?: string;
  readonly line?: number;
  readonly reason?: string;
  readonly option?: string;
  readonly value?: string;
  readonly insize?: number;

  constructor(code: MapfileErrorCode, message: string, details: MapfileErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.hint = details.hint ?? '';
    if (details.file !== undefined) this.file = details.file;
    if (details.line !== undefined) this.line = details.line;
    if (details.reason !== undefined) this.reason = details.reason;
    if (details.option !== undefined) this.option = details.option;
    if (details.value !== undefined) this.value = details.value;
    if (details.insize !== undefined) this.insize = details.insize;
  }
}

/**
 * True if `err` is a `MapfileError`. The check is by name and code, not `instanceof`,
 * so it also holds for an error from another copy of this package.
 */
export function isMapfileError(err: unknown): err is MapfileError {
  return err instanceof Error && err.name === 'MapfileError' && typeof (err as { code?: unknown }).code === 'string';
}

/** The message followed by the hint, as an edge prints them. */
export function messageWithHint(err: MapfileError): string {
  return err.hint === '' ? err.message : `${err.message} ${err.hint}`;
}

/** A malformed mapfile, naming the file and the physical line. */
export function mapfileParseError(code: MapfileParseCode, file: string, line: number): MapfileError {
  const reason = DDRESCUE_PARSE_MESSAGES[code];
  const what = code === 'ERR_MAPFILE_NUMBER_TOO_LARGE' ? 'Number too large.' : reason;
  return new MapfileError(code, `${file}: line ${line}: ${what}`, { hint: `Fix: ${PARSE_HINTS[code]}.`, file, line, reason });
}

/** A mapfile that describes a larger input than the one given. */
export function mapfileSizeError(code: MapfileSizeCode, file: string, insize: number): MapfileError {
  const what = code === 'ERR_MAPFILE_BEGINS_PAST_END'
    ? 'Last block in mapfile begins past end of input file.'
    : 'Rescued data in mapfile goes past end of input file.';
  return new MapfileError(code, `${file}: ${what} The input is ${insize} bytes.`, {
    hint: 'Check that this mapfile belongs to this input; use -C if reading from a partial copy.', file, insize,
  });
}
