/**
 * Errors a user can reach from the reader. Each has a stable code, names the file or
 * device, and says what to do next. Callers branch on `err.code`.
 */
export type ReaderErrorCode =
  | 'ERR_SOURCE_OPEN'
  | 'ERR_SOURCE_NOT_SEEKABLE'
  | 'ERR_SOURCE_SHORTER_THAN_DOMAIN'
  | 'ERR_SOURCE_FATAL_READ'
  | 'ERR_SOURCE_UNALIGNED_READ'
  | 'ERR_SOURCE_VANISHED'
  | 'ERR_SOURCE_EOF_BELOW_MAPFILE'
  | 'ERR_OUTPUT_IS_SOURCE'
  | 'ERR_OUTPUT_OPEN'
  | 'ERR_OUTPUT_NOT_REGULAR'
  | 'ERR_OUTPUT_WRITE'
  | 'ERR_MAPFILE_FOLDER_MISSING'
  | 'ERR_MAPFILE_SAME_AS_DATA'
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
  /** The file, device or option concerned. */
  readonly subject: string;

  constructor(code: ReaderErrorCode, subject: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.subject = subject;
  }
}

/** The `errno` code of a Node.js system error, or undefined. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
