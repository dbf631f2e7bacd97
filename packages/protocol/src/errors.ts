/**
 * Errors a user can reach from this package. Callers branch on `err.code`.
 * Each code has a hint saying what to do; it ends the message.
 */

const PROTO_HINTS = {
  ERR_PROTO_MESSAGE_TOO_LARGE: 'The peer sends messages larger than this side accepts: check both sides run the same ddferry version and limits.',
  ERR_PROTO_MALFORMED: 'The message is not a ddferry protocol message (truncated or corrupted): check the peer is a ddferry process of the same version.',
  ERR_PROTO_UNKNOWN_MESSAGE: 'The message carries no body this version knows: update the older side.',
  ERR_PROTO_MISSING_FIELD: 'A required field is missing: check both sides run the same ddferry version.',
  ERR_PROTO_NUMBER_TOO_LARGE: 'Positions, sizes and counts above 2^53-1 are refused.',
  ERR_PROTO_TOO_MANY: 'A list is longer than the limit: the sender must seal pieces earlier or raise the receiver\'s limit.',
  ERR_PROTO_FRAME_TOO_LARGE: 'A data frame is larger than maxFrameBytes: split data into smaller frames or raise the limit on both sides.',
  ERR_PROTO_PIECE_TOO_LARGE: 'A piece is larger than maxPieceBytes: the reader must seal pieces earlier, or the receiver raise the limit.',
  ERR_PROTO_STRING_TOO_LONG: 'A text field is longer than maxStringBytes.',
  ERR_PROTO_BAD_NONCE: 'Nonces must be 16 to 64 random bytes: check the peer is a ddferry process.',
  ERR_PROTO_BAD_FIELD: 'A field has a value outside its domain: check both sides run the same ddferry version.',
  ERR_PROTO_BAD_RESCUE_ID: 'A rescue id is a lowercase random UUID (version 4), as written in the plan.',
  ERR_PROTO_VERSION_MISMATCH: 'Both sides must speak the same protocol version: install the same ddferry version on both machines.',
  ERR_PROTO_WRONG_RESCUE: 'This data belongs to another rescue: point the reader at the assembler of the same rescue (same plan).',
  ERR_PROTO_WRONG_DEVICE: 'The source is not the device the rescue was planned for: connect the right disk, or plan a new rescue.',
  ERR_PROTO_OUT_OF_ORDER: 'Piece messages must come as PieceHeader, PieceData in order, PieceEnd: the reader will resend the piece from its spool.',
} as const;

const PIECE_HINTS = {
  ERR_PIECE_WRONG_RESCUE: 'The piece belongs to another rescue: import it into the assembler of its own rescue.',
  ERR_PIECE_BAD_SEQ: 'Sequence numbers are integers from 1 to 2^40; the piece is refused and nothing changes.',
  ERR_PIECE_SEQ_CONFLICT: 'Another piece with this sequence number is merged already: two readers (or a forger with the token) numbered pieces alike. Nothing of this piece is written; check that one reader per rescue holds the token, and keep its spool.',
  ERR_PIECE_UNKNOWN_CHUNK: 'The piece names a chunk the plan does not have: check both sides use the same plan.',
  ERR_PIECE_BAD_EXTENT: 'Extents have integer positions and positive sizes.',
  ERR_PIECE_EXTENTS_NOT_SORTED: 'Extents must be sorted by position and must not overlap.',
  ERR_PIECE_EXTENT_OUTSIDE_CHUNK: 'Every extent must lie inside the piece\'s chunk: check both sides use the same plan.',
  ERR_PIECE_OUTSIDE_SOURCE: 'Every range must lie inside the source: check both sides use the same plan.',
  ERR_PIECE_SIZE_MISMATCH: 'The data length must equal the sum of the extent sizes: the piece is truncated or corrupted; resend it from the spool.',
  ERR_PIECE_CHECKSUM_MISMATCH: 'The data does not match its xxh64: the piece is corrupted; resend it from the spool.',
  ERR_PIECE_BAD_DELTA: 'Delta ranges have integer positions, positive sizes and one status of ? * / - +.',
  ERR_PIECE_DELTA_NOT_SORTED: 'Delta ranges must be sorted by position and must not overlap.',
  ERR_PIECE_DELTA_OUTSIDE_CHUNK: 'Every delta range must lie inside the piece\'s chunk: check both sides use the same plan.',
  ERR_PIECE_EXTENT_NOT_FINISHED: 'Every extent must be marked + in the piece\'s delta.',
  ERR_PIECE_FINISHED_WITHOUT_DATA: 'A range marked + in the delta must be carried by extents; nothing is marked rescued without its data.',
} as const;

const BUNDLE_HINTS = {
  ERR_BUNDLE_UNSAFE_PATH: 'Bundle entries are plain names; this bundle was not made by ddferry and is refused.',
  ERR_BUNDLE_ENTRY_TYPE: 'Bundle entries are regular files; this bundle was not made by ddferry and is refused.',
  ERR_BUNDLE_UNEXPECTED_ENTRY: 'A bundle holds, per piece, piece-NNNNNN.header then its frames piece-NNNNNN.frame-NNNNNN in order.',
  ERR_BUNDLE_ENTRY_TOO_LARGE: 'An entry is larger than the limits allow: the bundle is corrupted, or raise the limit.',
  ERR_BUNDLE_SIZE_MISMATCH: 'An entry\'s size differs from what its header says: the bundle is corrupted; write it again from the spool.',
  ERR_BUNDLE_MISSING_ENTRY: 'The bundle ends before a piece\'s header or frames: it is truncated; write it again from the spool.',
  ERR_BUNDLE_MALFORMED: 'The bundle is not a readable tar stream (truncated or corrupted): write it again from the spool.',
  ERR_BUNDLE_EMPTY: 'A bundle holds at least one piece.',
  ERR_BUNDLE_MIXED_RESCUES: 'All pieces of a bundle belong to one rescue.',
  ERR_BUNDLE_DUPLICATE_SEQ: 'A bundle holds each sequence number once.',
  ERR_BUNDLE_TOO_LARGE: 'The bundle would reach maxBundleBytes (FAT32 holds files under 4 GiB): put fewer pieces in it.',
} as const;

const STICK_HINTS = {
  ERR_STICK_BAD_RESCUE_FILE: 'The stick\'s rescue.json is damaged or was not written by ddferry: run the reader again with --to on this stick to rewrite it.',
  ERR_STICK_BAD_RECEIPT: 'A receipt on the stick is damaged or was not written by ddferry: import the stick on PC_B again to write a new one.',
  ERR_STICK_BUNDLE_NAME: 'A bundle\'s file name differs from its first piece: it was renamed or swapped, and is refused; the reader reads its ranges again.',
  ERR_STICK_RECEIPT_MAC: 'The receipt is not authenticated by this rescue\'s token: it was written without the token (forged) or altered, and is ignored. Import the stick on PC_B again with the same --token-file as PC_A.',
} as const;

const SEAL_HINTS = {
  ERR_SEAL_MALFORMED: 'This is not a sealed ddferry piece of this version (truncated or corrupted): it is refused; the reader sends it again from its spool, or reads its ranges again.',
  ERR_SEAL_AUTH_FAILED: 'The piece header does not authenticate: it was sealed with another token or for another rescue, or altered. Nothing of it is used. Give both sides the same token file (--token-file); if they have it, the piece was tampered with.',
  ERR_SEAL_FRAME_AUTH_FAILED: 'A data frame does not authenticate: altered, reordered, replayed or taken from another piece. Nothing of the piece is merged; the reader sends it again from its spool, or reads its ranges again.',
  ERR_SEAL_FRAME_CORRUPT: 'A frame authenticates but its compressed data does not decode: it was sealed by a token holder that is not a ddferry reader of this version, or by a faulty one. Nothing of the piece is merged; keep the token secret.',
  ERR_SEAL_FRAME_BOMB: 'A frame would decode beyond the limits (more than its raw size or maxFrameBytes, or a ratio no zstd frame reaches): a crafted piece. Nothing was allocated for it and nothing of the piece is merged; keep the token secret.',
  ERR_SEAL_FRAME_RAW_SIZE: 'A frame decodes to another size than its raw size in the sealed header: a crafted or faulty piece. Nothing of the piece is merged; the reader sends it again from its spool, or reads its ranges again.',
} as const;

const AUTH_HINTS = {
  ERR_AUTH_FAILED: 'The reader\'s token differs from the assembler\'s: copy the same token file to both machines.',
  ERR_AUTH_BAD_PROOF: 'The assembler could not prove it knows the token: check the address and copy the same token file to both machines.',
  ERR_AUTH_TOKEN_EMPTY: 'Make a token file on one machine and copy it to the other: ddferry-assembler token TOKEN (or: openssl rand -hex 16 > TOKEN; chmod 600 TOKEN).',
  ERR_AUTH_TOKEN_WEAK: 'Make a strong token on one machine and copy it to the other: ddferry-assembler token TOKEN (or: openssl rand -hex 16 > TOKEN; chmod 600 TOKEN).',
  ERR_AUTH_TOKEN_PERMISSIONS: 'Only the owner may read the token file: chmod 600 it.',
  ERR_AUTH_TOKEN_READ: 'Check the path of the token file; it must be a regular file (not a link) of at most 4 KiB.',
} as const;

const FILE_HINTS = {
  ERR_FILE_SYMLINK: 'Symbolic links are never followed in files that come from a stick or hold a token: give the file itself (readlink -f shows where the link points).',
  ERR_FILE_NOT_REGULAR: 'Only regular files are read here (a FIFO, socket or device could block or lie): give the file itself.',
  ERR_FILE_TOO_LARGE: 'The file is larger than a file of its kind can be: it is not what its name claims; check it.',
  ERR_FILE_NOT_FOLDER: 'A folder is expected at this name: move what is there away, then try again.',
} as const;

const HINTS = { ...PROTO_HINTS, ...PIECE_HINTS, ...BUNDLE_HINTS, ...STICK_HINTS, ...SEAL_HINTS, ...AUTH_HINTS, ...FILE_HINTS };

export type ProtoCode = keyof typeof PROTO_HINTS;
export type PieceCode = keyof typeof PIECE_HINTS;
export type BundleCode = keyof typeof BUNDLE_HINTS;
export type StickCode = keyof typeof STICK_HINTS;
export type SealCode = keyof typeof SEAL_HINTS;
export type AuthCode = keyof typeof AUTH_HINTS;
export type FileCode = keyof typeof FILE_HINTS;
export type ProtocolErrorCode = ProtoCode | PieceCode | BundleCode | StickCode | SealCode | AuthCode | FileCode;

/** Every code with what to do about it (the README lists the same). */
export const PROTOCOL_ERROR_HINTS: Readonly<Record<ProtocolErrorCode, string>> = HINTS;

/** Where an error happened, as far as known. */
export interface ErrorContext {
  /** The remote side (address or reader name). */
  readonly peer?: string | undefined;
  /** The file (bundle, token file). */
  readonly file?: string | undefined;
  /** The piece's sequence number. */
  readonly seq?: number | undefined;
  /** The limit that was exceeded. */
  readonly limit?: number | undefined;
  readonly cause?: unknown;
}

/**
 * Refused input or failed authentication. The message names the peer or file,
 * the piece when known, what was wrong, and what to do (`hint`).
 */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  readonly peer: string | undefined;
  readonly file: string | undefined;
  readonly seq: number | undefined;
  readonly limit: number | undefined;
  /** What to do about it. */
  readonly hint: string;
  constructor(code: ProtocolErrorCode, message: string, context: ErrorContext = {}) {
    const where = context.file ?? context.peer;
    const piece = context.seq === undefined ? '' : `piece ${context.seq}: `;
    const hint = HINTS[code];
    super(`${where === undefined ? '' : `${where}: `}${piece}${message} ${hint}`, context.cause === undefined ? undefined : { cause: context.cause });
    this.code = code;
    this.peer = context.peer;
    this.file = context.file;
    this.seq = context.seq;
    this.limit = context.limit;
    this.hint = hint;
  }
}

/** True if `err` is a `ProtocolError` (by shape: its `name` and a string `code`). */
export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof Error && err.name === 'ProtocolError' && typeof (err as { code?: unknown }).code === 'string';
}
