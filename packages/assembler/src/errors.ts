/**
 * Errors a user can reach from the assembler. Each has a stable code, names the
 * file or peer concerned, and says what to do next. Callers branch on `err.code`.
 */
import { isMapfileError, messageWithHint } from '@ddferry/mapfile';

export type AssemblerErrorCode =
  | 'ERR_USAGE'
  | 'ERR_IMAGE_OPEN'
  | 'ERR_IMAGE_NOT_REGULAR'
  | 'ERR_IMAGE_DUPLICATE'
  | 'ERR_IMAGE_LOCKED'
  | 'ERR_IMAGE_BINDING_BAD'
  | 'ERR_IMAGE_PIECES_BAD'
  | 'ERR_IMAGE_MAP_MISSING'
  | 'ERR_IMAGE_MAP_SIZE'
  | 'ERR_IMAGE_WRONG_RESCUE'
  | 'ERR_IMAGE_WRONG_DEVICE'
  | 'ERR_IMAGE_WRONG_PLAN'
  | 'ERR_IMAGE_NOT_BOUND'
  | 'ERR_IMAGE_WRITE'
  | 'ERR_IMAGE_SYNC'
  | 'ERR_IMAGE_SAVE'
  | 'ERR_IMAGE_CLOSED'
  | 'ERR_LISTEN'
  | 'ERR_SERVER_BUSY'
  | 'ERR_HANDSHAKE_TIMEOUT'
  | 'ERR_HANDSHAKE_TOO_LARGE'
  | 'ERR_AUTH_THROTTLED'
  | 'ERR_ORIGIN_REFUSED'
  | 'ERR_TOKEN_FILE_WRITE'
  | 'ERR_CHUNK_FILE_OPEN'
  | 'ERR_CHUNK_FILE_READ'
  | 'ERR_CHUNK_FILE_SHORT'
  | 'ERR_CHUNK_FILE_IS_IMAGE'
  | 'ERR_DOMAIN_EMPTY'
  | 'ERR_DOMAIN_OUTSIDE_SOURCE'
  | 'ERR_DOMAIN_SIZE_UNKNOWN'
  | 'ERR_IMPORT_NO_TOKEN'
  | 'ERR_IMPORT_NO_RESCUE'
  | 'ERR_IMPORT_AMBIGUOUS'
  | 'ERR_IMPORT_STICK_READ'
  | 'ERR_IMPORT_BUNDLE_NOT_FILE'
  | 'ERR_IMPORT_RECEIPT_WRITE'
  | 'ERR_PREPARE_NO_READER'
  | 'ERR_PREPARE_PLAN'
  | 'ERR_PREPARE_TOKEN_ON_STICK'
  | 'ERR_PREPARE_WRITE';

/** A refusal or failure of the assembler; the message names `subject` and says what to do. */
export class AssemblerError extends Error {
  override readonly name = 'AssemblerError';
  readonly code: AssemblerErrorCode;
  /** The file, peer or option concerned. */
  readonly subject: string;

  constructor(code: AssemblerErrorCode, subject: string, message: string, options?: { cause?: unknown }) {
    super(`${subject}: ${message}`, options);
    this.code = code;
    this.subject = subject;
  }
}

/** The `errno` code of a Node.js system error, or undefined. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A short text for an unknown thrown value: its message (and a mapfile error's hint), or its string form. */
export function messageOf(err: unknown): string {
  if (isMapfileError(err)) return messageWithHint(err);
  return err instanceof Error ? err.message : String(err);
}
