/**
 * Errors a user can reach from the reader: one class, `ReaderError`. Each has a stable
 * `code`, names the file, device or peer (`subject`), says what happened (`message`,
 * never holding the code) and what to do next (`hint`). Callers branch on `err.code`;
 * only the command line's edge prints them, as `code: message hint`.
 */
export type ReaderErrorCode =
  | 'ERR_SOURCE_OPEN'
  | 'ERR_SOURCE_NOT_SEEKABLE'
  | 'ERR_SOURCE_SHORTER_THAN_DOMAIN'
  | 'ERR_SOURCE_FATAL_READ'
  | 'ERR_SOURCE_UNALIGNED_READ'
  | 'ERR_SOURCE_VANISHED'
  | 'ERR_SOURCE_EOF_BELOW_MAPFILE'
  | 'ERR_SOURCE_BUSY'
  | 'ERR_SOURCE_NO_SERIAL'
  | 'ERR_READING_PROCESS'
  | 'ERR_OUTPUT_IS_SOURCE'
  | 'ERR_OUTPUT_OPEN'
  | 'ERR_OUTPUT_NOT_REGULAR'
  | 'ERR_OUTPUT_WRITE'
  | 'ERR_MAPFILE_FOLDER_MISSING'
  | 'ERR_MAPFILE_SAME_AS_DATA'
  | 'ERR_MAPFILE_WRITE'
  | 'ERR_TEST_MAP'
  | 'ERR_LOG_FILE'
  | 'ERR_OPTION_UNSUPPORTED'
  | 'ERR_JOB_NOT_FOUND'
  | 'ERR_JOB_BAD'
  | 'ERR_JOB_EXISTS'
  | 'ERR_JOB_WRONG_DEVICE'
  | 'ERR_SPOOL'
  | 'ERR_LINK'
  | 'ERR_LEDGER_BAD'
  | 'ERR_STICK_NOT_A_FOLDER'
  | 'ERR_STICK_WRONG_RESCUE'
  | 'ERR_STICK_FULL'
  | 'ERR_STICK_WRITE'
  | 'ERR_STICK_NO_TOKEN'
  | 'ERR_CHUNK_RECEIPTS';

export class ReaderError extends Error {
  override readonly name = 'ReaderError';
  readonly code: ReaderErrorCode;
  /** The file, device, option or peer concerned. */
  readonly subject: string;
  /** What to do next ('' when the message says it). */
  readonly hint: string;

  constructor(code: ReaderErrorCode, subject: string, message: string, options?: { cause?: unknown; hint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.subject = subject;
    this.hint = options?.hint ?? '';
  }
}

/** True for a `ReaderError` (by its name and code: callers never use instanceof). */
export function isReaderError(err: unknown): err is ReaderError {
  return err instanceof Error && err.name === 'ReaderError' && typeof (err as { code?: unknown }).code === 'string';
}

/** The `errno` code of a Node.js system error, or undefined. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
