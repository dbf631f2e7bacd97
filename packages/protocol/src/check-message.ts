import { isBlockStatus, isMapfileStatus } from '@ddferry/mapfile';

import { HMAC_BYTES } from './auth.js';
import { ProtocolError } from './errors.js';
import { FRAME_RAW, FRAME_ZERO, FRAME_ZSTD, isFrameEncoding, MAX_FRAME_RATIO } from './frame-codec.js';
import type { ErrorContext, ProtocolErrorCode } from './errors.js';
import type { Fingerprint } from './identity.js';
import { isRescueId } from './identity.js';
import { MAX_SEQ } from './limits.js';
import type { Limits } from './limits.js';
import type { Extent, Message, PieceRef, StatusRange } from './messages.js';
import type { PieceMapState } from './piece.js';

const UINT32_MAX = 0xffff_ffff;
const UINT64_MAX = 0xffff_ffff_ffff_ffffn;

/** Where a check runs: the limits, and the peer to name in errors. */
export interface CheckContext {
  readonly limits: Limits;
  readonly peer?: string | undefined;
}

function fail(ctx: CheckContext, code: ProtocolErrorCode, message: string, extra: Omit<ErrorContext, 'peer'> = {}): never {
  throw new ProtocolError(code, message, { ...extra, peer: ctx.peer });
}

/** An exact integer 0..2^53-1. */
export function checkCount(ctx: CheckContext, value: number, field: string): void {
  if (Number.isSafeInteger(value) && value >= 0) return;
  if (Number.isInteger(value) && value > 0) fail(ctx, 'ERR_PROTO_NUMBER_TOO_LARGE', `${field} is ${value}, above 2^53-1.`);
  fail(ctx, 'ERR_PROTO_BAD_FIELD', `${field} is ${String(value)}, not an integer from 0 to 2^53-1.`);
}

function checkUint32(ctx: CheckContext, value: number, field: string): void {
  if (!Number.isInteger(value) || value < 0 || value > UINT32_MAX) fail(ctx, 'ERR_PROTO_BAD_FIELD', `${field} is ${String(value)}, not an integer from 0 to 2^32-1.`);
}

function checkSeq(ctx: CheckContext, value: number, field: string): void {
  checkCount(ctx, value, field);
  if (value === 0) fail(ctx, 'ERR_PROTO_BAD_FIELD', `${field} is 0; sequence numbers start at 1.`);
  if (value > MAX_SEQ) fail(ctx, 'ERR_PROTO_BAD_FIELD', `${field} is ${value}, above 2^40.`);
}

/** Bytes of a GCM tag, at the end of every sealed frame. */
const TAG_BYTES = 16;
const HEADER_HASH = /^[0-9a-f]{32}$/;

function checkHeaderHash(ctx: CheckContext, value: string, field: string, optional = false): void {
  if (typeof value !== 'string' || !(HEADER_HASH.test(value) || (optional && value === ''))) {
    fail(ctx, 'ERR_PROTO_BAD_FIELD', `${field} is not 32 lowercase hex digits (16 bytes).`);
  }
}

function checkPieceRefs(ctx: CheckContext, refs: readonly PieceRef[], field: string): void {
  checkListLength(ctx, refs.length, ctx.limits.maxSeqs, field);
  for (const r of refs) {
    checkSeq(ctx, r.seq, `${field}.seq`);
    checkHeaderHash(ctx, r.headerHash, `${field}.headerHash`);
  }
}

function checkUint64(ctx: CheckContext, value: bigint, field: string): void {
  if (typeof value !== 'bigint' || value < 0n || value > UINT64_MAX) fail(ctx, 'ERR_PROTO_BAD_FIELD', `${field} is not an unsigned 64-bit bigint.`);
}

function checkRange(ctx: CheckContext, pos: number, size: number, field: string): void {
  checkCount(ctx, pos, `${field}.pos`);
  checkCount(ctx, size, `${field}.size`);
  if (!Number.isSafeInteger(pos + size)) fail(ctx, 'ERR_PROTO_NUMBER_TOO_LARGE', `${field} ends at ${pos} + ${size}, above 2^53-1.`);
}

function checkString(ctx: CheckContext, value: string, field: string): void {
  if (typeof value !== 'string') fail(ctx, 'ERR_PROTO_BAD_FIELD', `${field} is not a string.`);
  // UTF-8 takes at most 3 bytes per UTF-16 unit: only long strings need counting.
  if (value.length * 3 > ctx.limits.maxStringBytes && Buffer.byteLength(value, 'utf8') > ctx.limits.maxStringBytes) {
    fail(ctx, 'ERR_PROTO_STRING_TOO_LONG', `${field} has more than ${ctx.limits.maxStringBytes} bytes.`, { limit: ctx.limits.maxStringBytes });
  }
}

function checkBytes(ctx: CheckContext, value: Uint8Array, field: string): void {
  if (!(value instanceof Uint8Array)) fail(ctx, 'ERR_PROTO_BAD_FIELD', `${field} is not a Uint8Array.`);
}

/** A count of list elements against its limit. */
export function checkListLength(ctx: CheckContext, length: number, max: number, field: string, seq?: number): void {
  if (length > max) fail(ctx, 'ERR_PROTO_TOO_MANY', `${field} has ${length} elements; at most ${max} are accepted.`, { limit: max, seq });
}

function checkNonce(ctx: CheckContext, value: Uint8Array, field: string): void {
  checkBytes(ctx, value, field);
  const { minNonceBytes, maxNonceBytes } = ctx.limits;
  if (value.length < minNonceBytes || value.length > maxNonceBytes) {
    fail(ctx, 'ERR_PROTO_BAD_NONCE', `${field} has ${value.length} bytes, not ${minNonceBytes} to ${maxNonceBytes}.`);
  }
}

function checkMac(ctx: CheckContext, value: Uint8Array, field: string): void {
  checkBytes(ctx, value, field);
  if (value.length !== HMAC_BYTES) fail(ctx, 'ERR_PROTO_BAD_FIELD', `${field} has ${value.length} bytes, not ${HMAC_BYTES}.`);
}

function checkFingerprint(ctx: CheckContext, f: Fingerprint): void {
  checkCount(ctx, f.size, 'fingerprint.size');
  checkUint32(ctx, f.logicalSectorSize, 'fingerprint.logicalSectorSize');
  checkUint32(ctx, f.physicalSectorSize, 'fingerprint.physicalSectorSize');
  checkString(ctx, f.model, 'fingerprint.model');
  checkString(ctx, f.serial, 'fingerprint.serial');
  checkString(ctx, f.wwn, 'fingerprint.wwn');
  checkString(ctx, f.kind, 'fingerprint.kind');
}

/** What a sealed header seals (`SealedHeaderBody`). */
export interface HeaderBody {
  readonly chunk: number;
  readonly extents: readonly Extent[];
  readonly delta: readonly StatusRange[];
  /** The sum of the extent sizes. */
  readonly dataSize: number;
  /** Bytes of plaintext per frame, the last frame shorter. */
  readonly frameSize: number;
  /** `ceil(dataSize / frameSize)`: 0 for a piece without data. */
  readonly frameCount: number;
  /** The reader's status line when the piece was sealed, if it tells it. */
  readonly mapState?: PieceMapState | undefined;
  /** Per frame, its encoding (`FRAME_RAW`, `FRAME_ZERO`, `FRAME_ZSTD`; seal version 1: all raw). */
  readonly frameEncodings: Uint8Array;
  /** Per frame, the bytes it carries (the plaintext of its sealed frame). */
  readonly frameBytes: readonly number[];
}

/** The raw size of frame `index` of a piece of `dataSize` bytes cut in frames of `frameSize`. */
export function frameRawSize(dataSize: number, frameSize: number, index: number): number {
  return Math.min(frameSize, dataSize - index * frameSize);
}

/**
 * Check a sealed header's body against the schema's domains and the limits:
 * counts, ranges, the data size (`maxPieceBytes`), the largest frame
 * (`maxFrameBytes`) and the frame count the frame size implies. Order and place in the plan
 * are `checkPieceAgainstPlan`'s business.
 * @throws ProtocolError `ERR_PROTO_*`, `ERR_PIECE_SIZE_MISMATCH`, `ERR_SEAL_MALFORMED`.
 */
export function checkHeaderBody(ctx: CheckContext, m: HeaderBody, seq: number): void {
  const { limits } = ctx;
  checkUint32(ctx, m.chunk, 'header.chunk');
  checkListLength(ctx, m.extents.length, limits.maxExtentsPerPiece, 'header.extents', seq);
  checkListLength(ctx, m.delta.length, limits.maxDeltaRanges, 'header.delta', seq);
  checkCount(ctx, m.dataSize, 'header.dataSize');
  if (m.dataSize > limits.maxPieceBytes) {
    fail(ctx, 'ERR_PROTO_PIECE_TOO_LARGE', `The piece has ${m.dataSize} bytes of data; at most ${limits.maxPieceBytes} are accepted.`, { seq, limit: limits.maxPieceBytes });
  }
  let sum = 0;
  for (const e of m.extents) {
    checkRange(ctx, e.pos, e.size, 'extent');
    checkUint64(ctx, e.xxh64, 'extent.xxh64');
    sum += e.size;
  }
  if (sum !== m.dataSize) {
    fail(ctx, 'ERR_PIECE_SIZE_MISMATCH', `The extents hold ${sum} bytes but dataSize is ${m.dataSize}.`, { seq });
  }
  for (const d of m.delta) {
    checkRange(ctx, d.pos, d.size, 'delta range');
    if (typeof d.status !== 'string' || !isBlockStatus(d.status)) fail(ctx, 'ERR_PROTO_BAD_FIELD', `A delta range has status "${String(d.status).slice(0, 8)}", not one of ? * / - +.`, { seq });
  }
  checkUint32(ctx, m.frameSize, 'header.frameSize');
  checkUint32(ctx, m.frameCount, 'header.frameCount');
  // the largest frame is frameSize bytes, or the whole data when that is less
  if (Math.min(m.frameSize, m.dataSize) > limits.maxFrameBytes) {
    fail(ctx, 'ERR_PROTO_FRAME_TOO_LARGE', `The piece is cut in frames of ${m.frameSize} bytes; at most ${limits.maxFrameBytes} are accepted.`, { seq, limit: limits.maxFrameBytes });
  }
  if (m.frameSize === 0 || m.frameCount !== Math.ceil(m.dataSize / m.frameSize)) {
    fail(ctx, 'ERR_SEAL_MALFORMED', `The header says ${m.frameCount} frames of ${m.frameSize} bytes for ${m.dataSize} bytes of data.`, { seq });
  }
  if (m.mapState !== undefined) {
    checkCount(ctx, m.mapState.currentPos, 'header.mapState.currentPos');
    checkUint32(ctx, m.mapState.currentPass, 'header.mapState.currentPass');
    const st = m.mapState.currentStatus;
    if (typeof st !== 'string' || !isMapfileStatus(st)) fail(ctx, 'ERR_PROTO_BAD_FIELD', `header.mapState.currentStatus is "${String(st).slice(0, 8)}", not one of ? * / - F G +.`, { seq });
  }
  checkFrames(ctx, m, seq);
}

/**
 * Each frame's encoding and carried bytes against its raw size: raw carries its raw
 * size, a zero run nothing, zstd at least 1 byte, less than the raw size, and at least
 * raw / `MAX_FRAME_RATIO` (a frame claiming more is a bomb, refused before any frame
 * is read).
 */
function checkFrames(ctx: CheckContext, m: HeaderBody, seq: number): void {
  if (m.frameEncodings.length !== m.frameCount || m.frameBytes.length !== m.frameCount) {
    fail(ctx, 'ERR_SEAL_MALFORMED', `The header has ${m.frameCount} frames but ${m.frameEncodings.length} encodings and ${m.frameBytes.length} sizes.`, { seq });
  }
  for (let i = 0; i < m.frameCount; i++) {
    const raw = frameRawSize(m.dataSize, m.frameSize, i);
    const encoding = m.frameEncodings[i]!;
    const bytes = m.frameBytes[i]!;
    checkUint32(ctx, bytes, 'header.frameBytes');
    if (!isFrameEncoding(encoding)) fail(ctx, 'ERR_SEAL_MALFORMED', `Frame ${i} has encoding ${encoding}; this ddferry knows 0 (raw), 1 (zero run) and 2 (zstd).`, { seq });
    if (encoding === FRAME_ZSTD && bytes * MAX_FRAME_RATIO < raw) {
      fail(ctx, 'ERR_SEAL_FRAME_BOMB', `Frame ${i} would decode ${bytes} compressed bytes to ${raw}: a ratio over ${MAX_FRAME_RATIO}, which no zstd frame reaches.`, { seq, limit: MAX_FRAME_RATIO });
    }
    const ok = encoding === FRAME_RAW ? bytes === raw : encoding === FRAME_ZERO ? bytes === 0 : bytes > 0 && bytes < raw;
    if (!ok) fail(ctx, 'ERR_SEAL_MALFORMED', `Frame ${i} (encoding ${encoding}, ${raw} raw bytes) says it carries ${bytes} bytes.`, { seq });
  }
}

/**
 * Check a message against the schema's domains and the limits: every number
 * an exact integer in its range, every list and string within its limit,
 * nonces, MACs and header hashes of the right length, statuses and rescue
 * ids well formed, sealed headers and frames within their limits. What a
 * sealed header says is checked once it is opened (`checkHeaderBody`).
 * @throws ProtocolError `ERR_PROTO_*`.
 */
export function checkMessage(msg: Message, ctx: CheckContext): void {
  const { limits } = ctx;
  switch (msg.type) {
    case 'hello':
      checkUint32(ctx, msg.protocolVersion, 'hello.protocolVersion');
      if (typeof msg.rescueId !== 'string' || !isRescueId(msg.rescueId)) {
        fail(ctx, 'ERR_PROTO_BAD_RESCUE_ID', `hello.rescueId "${String(msg.rescueId).slice(0, 64)}" is not a rescue id.`);
      }
      checkFingerprint(ctx, msg.fingerprint);
      checkNonce(ctx, msg.clientNonce, 'hello.clientNonce');
      checkString(ctx, msg.readerName, 'hello.readerName');
      checkCount(ctx, msg.chunkSize, 'hello.chunkSize');
      checkUint32(ctx, msg.sectorSize, 'hello.sectorSize');
      if (msg.chunkSize <= 0 || msg.sectorSize <= 0 || msg.chunkSize % msg.sectorSize !== 0) {
        fail(ctx, 'ERR_PROTO_BAD_FIELD', `hello.chunkSize ${msg.chunkSize} must be a positive multiple of hello.sectorSize ${msg.sectorSize}.`);
      }
      return;
    case 'challenge':
      checkNonce(ctx, msg.serverNonce, 'challenge.serverNonce');
      checkUint32(ctx, msg.protocolVersion, 'challenge.protocolVersion');
      return;
    case 'auth':
      checkMac(ctx, msg.hmac, 'auth.hmac');
      return;
    case 'welcome':
      checkMac(ctx, msg.serverProof, 'welcome.serverProof');
      checkListLength(ctx, msg.finished.length, limits.maxFinishedRanges, 'welcome.finished');
      {
        let end = 0;
        for (const b of msg.finished) {
          checkRange(ctx, b.pos, b.size, 'welcome.finished range');
          if (b.pos < end) fail(ctx, 'ERR_PROTO_BAD_FIELD', `welcome.finished is not sorted: a range at ${b.pos} starts before ${end}.`);
          end = b.pos + b.size;
        }
      }
      checkCount(ctx, msg.imageSize, 'welcome.imageSize');
      checkCount(ctx, msg.maxMergedSeq, 'welcome.maxMergedSeq');
      if (msg.maxMergedSeq > MAX_SEQ) fail(ctx, 'ERR_PROTO_BAD_FIELD', `welcome.maxMergedSeq is ${msg.maxMergedSeq}, above 2^40.`);
      return;
    case 'query':
      checkListLength(ctx, msg.seqs.length, limits.maxSeqs, 'query.seqs');
      for (const s of msg.seqs) checkSeq(ctx, s, 'query.seqs element');
      return;
    case 'answer':
      checkPieceRefs(ctx, msg.merged, 'answer.merged');
      if (typeof msg.more !== 'boolean') fail(ctx, 'ERR_PROTO_BAD_FIELD', 'answer.more is not a boolean.');
      return;
    case 'pieceHeader':
      checkBytes(ctx, msg.sealedHeader, 'pieceHeader.sealedHeader');
      if (msg.sealedHeader.length > limits.maxHeaderBytes) {
        fail(ctx, 'ERR_PROTO_PIECE_TOO_LARGE', `A sealed header has ${msg.sealedHeader.length} bytes; at most ${limits.maxHeaderBytes} are accepted.`, { limit: limits.maxHeaderBytes });
      }
      return;
    case 'pieceData':
      checkSeq(ctx, msg.seq, 'pieceData.seq');
      checkCount(ctx, msg.index, 'pieceData.index');
      checkBytes(ctx, msg.sealedFrame, 'pieceData.sealedFrame');
      if (msg.sealedFrame.length > limits.maxFrameBytes + TAG_BYTES) {
        fail(ctx, 'ERR_PROTO_FRAME_TOO_LARGE', `A sealed frame has ${msg.sealedFrame.length} bytes; at most ${limits.maxFrameBytes + TAG_BYTES} are accepted.`, { seq: msg.seq, limit: limits.maxFrameBytes });
      }
      return;
    case 'pieceEnd':
      checkSeq(ctx, msg.seq, 'pieceEnd.seq');
      return;
    case 'receipt':
      checkPieceRefs(ctx, msg.merged, 'receipt.merged');
      checkListLength(ctx, msg.rejected.length, limits.maxSeqs, 'receipt.rejected');
      for (const r of msg.rejected) {
        checkSeq(ctx, r.seq, 'receipt.rejected.seq');
        checkString(ctx, r.code, 'receipt.rejected.code');
        checkString(ctx, r.reason, 'receipt.rejected.reason');
        checkHeaderHash(ctx, r.headerHash, 'receipt.rejected.headerHash', true);
      }
      return;
    case 'status':
      if (typeof msg.phase !== 'string' || !isMapfileStatus(msg.phase)) fail(ctx, 'ERR_PROTO_BAD_FIELD', `status.phase "${String(msg.phase).slice(0, 8)}" is not one of ? * / - F G +.`);
      checkString(ctx, msg.message, 'status.message');
      checkUint32(ctx, msg.pass, 'status.pass');
      checkUint32(ctx, msg.chunk, 'status.chunk');
      checkUint32(ctx, msg.chunkCount, 'status.chunkCount');
      checkString(ctx, msg.paused, 'status.paused');
      checkString(ctx, msg.pausedText, 'status.pausedText');
      for (const field of ['pos', 'finishedSize', 'nonTriedSize', 'nonTrimmedSize', 'nonScrapedSize', 'badSectorSize', 'readErrors', 'currentRate', 'averageRate', 'spoolBytes', 'spoolPieces', 'runTime', 'pausedSeconds', 'readingPos', 'readingSize', 'readingSeconds'] as const) {
        checkCount(ctx, msg[field], `status.${field}`);
      }
      return;
    case 'error':
      checkString(ctx, msg.code, 'error.code');
      checkString(ctx, msg.message, 'error.message');
      if (msg.seq !== undefined) checkSeq(ctx, msg.seq, 'error.seq');
      return;
    default:
      fail(ctx, 'ERR_PROTO_UNKNOWN_MESSAGE', `Message type "${String((msg as { type?: unknown }).type)}" is not part of version 2.`);
  }
}
