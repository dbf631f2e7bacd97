import { isBlockStatus, isMapfileStatus } from '@ddferry/mapfile';

import { HMAC_BYTES } from './auth.js';
import { ProtocolError } from './errors.js';
import type { ErrorContext, ProtocolErrorCode } from './errors.js';
import type { Fingerprint } from './identity.js';
import { isRescueId } from './identity.js';
import type { Limits } from './limits.js';
import type { Message, PieceHeaderMessage } from './messages.js';

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

function checkPieceHeader(ctx: CheckContext, m: PieceHeaderMessage): void {
  const { limits } = ctx;
  checkSeq(ctx, m.seq, 'pieceHeader.seq');
  const seq = m.seq;
  checkUint32(ctx, m.chunk, 'pieceHeader.chunk');
  checkListLength(ctx, m.extents.length, limits.maxExtentsPerPiece, 'pieceHeader.extents', seq);
  checkListLength(ctx, m.delta.length, limits.maxDeltaRanges, 'pieceHeader.delta', seq);
  checkCount(ctx, m.dataSize, 'pieceHeader.dataSize');
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
}

/**
 * Check a message against the schema's domains and the limits: every number
 * an exact integer in its range, every list and string within its limit,
 * nonces and MACs of the right length, statuses and rescue ids well formed.
 * The order of extents and delta ranges, and their place in the plan, are
 * `validatePiece`'s business.
 * @throws ProtocolError `ERR_PROTO_*` (and `ERR_PIECE_SIZE_MISMATCH` when a
 *   header's extents do not add up to its `dataSize`).
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
      checkListLength(ctx, msg.mergedSeqs.length, limits.maxSeqs, 'welcome.mergedSeqs');
      for (const s of msg.mergedSeqs) checkSeq(ctx, s, 'welcome.mergedSeqs element');
      checkCount(ctx, msg.imageSize, 'welcome.imageSize');
      return;
    case 'pieceHeader':
      checkPieceHeader(ctx, msg);
      return;
    case 'pieceData':
      checkSeq(ctx, msg.seq, 'pieceData.seq');
      checkBytes(ctx, msg.data, 'pieceData.data');
      if (msg.data.length > limits.maxFrameBytes) {
        fail(ctx, 'ERR_PROTO_FRAME_TOO_LARGE', `A data frame has ${msg.data.length} bytes; at most ${limits.maxFrameBytes} are accepted.`, { seq: msg.seq, limit: limits.maxFrameBytes });
      }
      checkRange(ctx, msg.offset, msg.data.length, 'pieceData');
      return;
    case 'pieceEnd':
      checkSeq(ctx, msg.seq, 'pieceEnd.seq');
      checkUint64(ctx, msg.xxh64OfHeader, 'pieceEnd.xxh64OfHeader');
      return;
    case 'receipt':
      checkListLength(ctx, msg.merged.length, limits.maxSeqs, 'receipt.merged');
      for (const s of msg.merged) checkSeq(ctx, s, 'receipt.merged element');
      checkListLength(ctx, msg.rejected.length, limits.maxSeqs, 'receipt.rejected');
      for (const r of msg.rejected) {
        checkSeq(ctx, r.seq, 'receipt.rejected.seq');
        checkString(ctx, r.code, 'receipt.rejected.code');
        checkString(ctx, r.reason, 'receipt.rejected.reason');
      }
      return;
    case 'status':
      if (typeof msg.phase !== 'string' || !isMapfileStatus(msg.phase)) fail(ctx, 'ERR_PROTO_BAD_FIELD', `status.phase "${String(msg.phase).slice(0, 8)}" is not one of ? * / - F G +.`);
      checkString(ctx, msg.message, 'status.message');
      checkUint32(ctx, msg.pass, 'status.pass');
      checkUint32(ctx, msg.chunk, 'status.chunk');
      checkUint32(ctx, msg.chunkCount, 'status.chunkCount');
      for (const field of ['pos', 'finishedSize', 'nonTriedSize', 'nonTrimmedSize', 'nonScrapedSize', 'badSectorSize', 'readErrors', 'currentRate', 'averageRate', 'spoolBytes', 'spoolPieces', 'runTime'] as const) {
        checkCount(ctx, msg[field], `status.${field}`);
      }
      return;
    case 'error':
      checkString(ctx, msg.code, 'error.code');
      checkString(ctx, msg.message, 'error.message');
      if (msg.seq !== undefined) checkSeq(ctx, msg.seq, 'error.seq');
      return;
    default:
      fail(ctx, 'ERR_PROTO_UNKNOWN_MESSAGE', `Message type "${String((msg as { type?: unknown }).type)}" is not part of version 1.`);
  }
}
