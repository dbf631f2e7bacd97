export { authHmac, HMAC_BYTES, makeNonce, MAX_TOKEN_FILE_BYTES, NONCE_BYTES, readTokenFile, safeEqual, serverProof, verifyAuthHmac, verifyServerProof } from './auth.js';
export type { Secret } from './auth.js';
export { bundleSize, frameEntryName, headerEntryName, readBundle, readSealedBundle, writeBundle } from './bundle.js';
export type { ReadBundleOptions, ReadSealedBundleOptions, WriteBundleOptions } from './bundle.js';
export { checkMessage } from './check-message.js';
export type { CheckContext } from './check-message.js';
export { decodeEnvelope, encodeEnvelope, peekMessageType } from './codec.js';
export { isProtocolError, PROTOCOL_ERROR_HINTS, ProtocolError } from './errors.js';
export { DEFAULT_ZSTD_LEVEL, FRAME_RAW, FRAME_ZERO, FRAME_ZSTD, isAllZero, MAX_FRAME_RATIO, MIN_SAVING } from './frame-codec.js';
export type { FrameEncodeOptions, FrameEncoding } from './frame-codec.js';
export type { AuthCode, BundleCode, ErrorContext, FileCode, PieceCode, ProtoCode, ProtocolErrorCode, SealCode, StickCode } from './errors.js';
export { assertSameRescue, describeFingerprint, isRescueId, makeRescueId, parseRescueId, sameDevice } from './identity.js';
export type { Fingerprint, RescueId, RescueIdentity } from './identity.js';
export { deriveRescueKeys, KEY_BYTES, receiptMac, verifyReceiptMac } from './keys.js';
export type { RescueKeys } from './keys.js';
export { DEFAULT_LIMITS, MAX_SEQ, pieceRefsPerMessage, resolveLimits } from './limits.js';
export type { Limits } from './limits.js';
export { raiseMallocThresholds } from './malloc-thresholds.js';
export { collectAfterCallbacks, countDroppedBuffers, droppedBuffers, SCAVENGE_EVERY_BYTES } from './young-garbage.js';
export { MESSAGE_TYPES } from './messages.js';
export type {
  AnswerMessage, AuthMessage, ChallengeMessage, ErrorMessage, Extent, HelloMessage, Message, MessageType, PieceDataMessage, PieceEndMessage,
  PieceHeaderMessage, PieceRef, QueryMessage, ReceiptMessage, Rejected, StatusMessage, StatusRange, WelcomeMessage,
} from './messages.js';
export { checkPieceAgainstPlan, checkPieceShape, checkSeq, findChunk, makeExtent, validatePiece, verifyPieceData } from './piece.js';
export type { OpenedPiece, Piece, PieceContext, PieceDescription, PieceMapState, PiecePlan } from './piece.js';
export { encodePieceFrames, PieceCollector } from './piece-frames.js';
export type { PieceBufferPool, PieceCollectorOptions, PieceDataOptions } from './piece-frames.js';
export { RecycledBuffers } from './recycled-buffers.js';
export { checkRealFolder, describeFileType, openSafeFile, readSafeFile, readSafeFileInto } from './safe-file.js';
export type { SafeOpenOptions } from './safe-file.js';
export {
  FRAME_ROOM_BYTES, headerHashOf, isHeaderHash, openSealedPiece, PieceOpener, readSealedHeaderFields, SALT_BYTES, SEAL_VERSION, sealPiece, sealPieceAsync, TAG_BYTES,
} from './seal.js';
export type { OpenedHeader, PieceOpenerOptions, SealedFrame, SealedHeaderFields, SealedPiece, SealOptions } from './seal.js';
export { envelopeSchema, PROTO_TEXT, PROTOCOL_VERSION } from './schema.js';
export { checkSecretStrength, estimateSecretBits, makeSecretText, MIN_SECRET_BITS, normalizeSecretText } from './secret-text.js';
export {
  BUNDLE_NAME, bundleFileName, bundleSeqOf, fitJsonText, formatReceipt, formatStickRescue, MAX_RECEIPT_ENTRIES, MAX_STICK_FILE_BYTES, maxReceiptBytes,
  parseReceipt, parseStickRescue, RECEIPT_BASE_BYTES, RECEIPT_BYTES_PER_BUNDLE, RECEIPT_NAME, RECEIPT_TEXT_BYTES, STICK_FOLDER, STICK_RECEIPTS_FOLDER, STICK_RESCUE_FILE, stickRescueParts,
} from './stick.js';
export type { Receipt, ReceiptRejection, StickRescue } from './stick.js';
export { fileSystemTypeOf, spaceFromStatfs, statStickSpace } from './stick-space.js';
export type { StatfsFigures, StickSpace } from './stick-space.js';
export { DEFAULT_PROGRESS_INTERVAL, ProgressDisplay, TTY_REDRAW_MS } from './progress-display.js';
export type { ProgressDisplayOptions, ProgressMode, ProgressView } from './progress-display.js';
export { printable, PRINTABLE_DEFAULT_MAX } from './text.js';
export { createXxh64, hexOf, parseHex64, xxh64, XXH64_LIBRARY, XXH64_SLICE_BYTES } from './xxh64.js';
export type { Xxh64Hasher } from './xxh64.js';
