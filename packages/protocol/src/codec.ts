import type { Block, BlockStatus, MapfileStatus } from '@ddferry/mapfile';

import { checkHeaderBody, checkListLength, checkMessage, frameRawSize } from './check-message.js';
import type { CheckContext, HeaderBody } from './check-message.js';
import { ProtocolError } from './errors.js';
import type { Fingerprint } from './identity.js';
import { DEFAULT_LIMITS } from './limits.js';
import type { Limits } from './limits.js';
import type { Extent, Message, MessageType, PieceRef, Rejected, StatusRange } from './messages.js';
import type { PieceMapState } from './piece.js';
import { envelopeSchema, headerBodySchema } from './schema.js';

/** The envelope field of each message type. */
const FIELD_OF: Readonly<Record<MessageType, string>> = {
  hello: 'hello',
  challenge: 'challenge',
  auth: 'auth',
  welcome: 'welcome',
  pieceHeader: 'pieceHeader',
  pieceData: 'pieceData',
  pieceEnd: 'pieceEnd',
  receipt: 'receipt',
  status: 'status',
  error: 'error',
  query: 'query',
  answer: 'answer',
};
const TYPES = Object.keys(FIELD_OF) as MessageType[];
/** Messages of the handshake: at most `maxHandshakeBytes` each. */
const HANDSHAKE: ReadonlySet<MessageType> = new Set(['hello', 'challenge', 'auth']);
/** Envelope field numbers, in the order of `TYPES` (src/ddferry.proto). */
const FIELD_NUMBER_TYPES: readonly MessageType[] = [
  'hello', 'challenge', 'auth', 'welcome', 'pieceHeader', 'pieceData', 'pieceEnd', 'receipt', 'status', 'error',
];

type Obj = Record<string, unknown>;

/** A uint64 for protobufjs: numbers as they are, bigints as decimal text (exact). */
function wire64(v: number | bigint): number | string {
  return typeof v === 'bigint' ? v.toString() : v;
}

/** A header hash (32 hex digits, or '' for none) as its 16 bytes. */
function hashBytes(hex: string): Uint8Array {
  return Buffer.from(hex, 'hex');
}

function refsToWire(refs: readonly PieceRef[]): Obj[] {
  return refs.map((r) => ({ seq: r.seq, headerHash: hashBytes(r.headerHash) }));
}

function toWire(msg: Message): Obj {
  switch (msg.type) {
    case 'hello':
      return { ...msg, fingerprint: { ...msg.fingerprint } };
    case 'challenge':
    case 'auth':
    case 'pieceData':
    case 'pieceHeader':
    case 'pieceEnd':
    case 'query':
    case 'status':
      return { ...msg };
    case 'welcome':
      return { ...msg, finished: msg.finished.map((b) => ({ pos: b.pos, size: b.size })) };
    case 'answer':
      return { merged: refsToWire(msg.merged), more: msg.more };
    case 'receipt':
      return {
        merged: refsToWire(msg.merged),
        rejected: msg.rejected.map((r) => ({ seq: r.seq, code: r.code, reason: r.reason, headerHash: hashBytes(r.headerHash) })),
      };
    case 'error':
      return { code: msg.code, message: msg.message, seq: msg.seq ?? 0 };
  }
}

/**
 * Encode one message as an envelope (one websocket binary message). The
 * message is checked against `limits` first, so a receiver with the same
 * limits accepts it.
 * @throws ProtocolError `ERR_PROTO_*` for a value the receiver would refuse, and
 *   `ERR_PROTO_MESSAGE_TOO_LARGE` when the encoding exceeds `maxMessageBytes`.
 */
export function encodeEnvelope(msg: Message, limits: Limits = DEFAULT_LIMITS): Uint8Array {
  checkMessage(msg, { limits });
  const type = envelopeSchema();
  const fields = toWire(msg);
  delete fields.type;
  const bytes = type.encode(type.fromObject({ [FIELD_OF[msg.type]]: fields })).finish();
  const max = HANDSHAKE.has(msg.type) ? Math.min(limits.maxHandshakeBytes, limits.maxMessageBytes) : limits.maxMessageBytes;
  if (bytes.length > max) {
    throw new ProtocolError('ERR_PROTO_MESSAGE_TOO_LARGE', `A ${msg.type} message encodes to ${bytes.length} bytes; at most ${max} may be sent.`, { limit: max });
  }
  return bytes;
}

interface LongLike {
  readonly low: number;
  readonly high: number;
}

function isLongLike(v: unknown): v is LongLike {
  return typeof v === 'object' && v !== null && typeof (v as LongLike).low === 'number' && typeof (v as LongLike).high === 'number';
}

/** Decoding state: the check context and the piece being described (for errors). */
interface Reading extends CheckContext {
  seq?: number;
}

function num(r: Reading, v: unknown, field: string): number {
  if (typeof v === 'number') return v;
  if (!isLongLike(v)) throw new ProtocolError('ERR_PROTO_MALFORMED', `${field} is not a number.`, { peer: r.peer });
  // The halves of a Long are 32-bit words: `>>> 0` reads them as unsigned.
  const high = v.high >>> 0;
  const low = v.low >>> 0;
  if (high > 0x1f_ffff) {
    throw new ProtocolError('ERR_PROTO_NUMBER_TOO_LARGE', `${field} is ${(BigInt(high) << 32n) | BigInt(low)}, above 2^53-1.`, { peer: r.peer, seq: r.seq });
  }
  return high * 0x1_0000_0000 + low;
}

function big(r: Reading, v: unknown, field: string): bigint {
  if (typeof v === 'number') return BigInt(v);
  if (!isLongLike(v)) throw new ProtocolError('ERR_PROTO_MALFORMED', `${field} is not a number.`, { peer: r.peer });
  return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function bytes(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(0);
}

/** 16 bytes as 32 hex digits; '' for none (when `optional`). */
function hash(r: Reading, v: unknown, field: string, optional = false): string {
  const b = bytes(v);
  if (b.length === 16) return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
  if (optional && b.length === 0) return '';
  throw new ProtocolError('ERR_PROTO_BAD_FIELD', `${field} has ${b.length} bytes, not 16.`, { peer: r.peer });
}

function refs(r: Reading, v: unknown, field: string): PieceRef[] {
  return list(r, v, r.limits.maxSeqs, field).map((x): PieceRef => {
    const p = sub(r, x, `${field} element`);
    return { seq: num(r, p.seq, `${field}.seq`), headerHash: hash(r, p.headerHash, `${field}.headerHash`) };
  });
}

function extentsOf(r: Reading, v: unknown, field: string): Extent[] {
  return list(r, v, r.limits.maxExtentsPerPiece, field).map((x): Extent => {
    const e = sub(r, x, 'extent');
    return { pos: num(r, e.pos, 'extent.pos'), size: num(r, e.size, 'extent.size'), xxh64: big(r, e.xxh64, 'extent.xxh64') };
  });
}

function deltaOf(r: Reading, v: unknown, field: string): StatusRange[] {
  return list(r, v, r.limits.maxDeltaRanges, field).map((x): StatusRange => {
    const d = sub(r, x, 'delta range');
    return { pos: num(r, d.pos, 'delta.pos'), size: num(r, d.size, 'delta.size'), status: str(d.status) as BlockStatus };
  });
}

function mapStateOf(r: Reading, m: Obj): PieceMapState {
  return { currentPos: num(r, m.currentPos ?? 0, 'header.mapState.currentPos'), currentStatus: str(m.currentStatus) as MapfileStatus, currentPass: num(r, m.currentPass ?? 0, 'header.mapState.currentPass') };
}

function list(r: Reading, v: unknown, max: number, field: string): readonly unknown[] {
  if (!Array.isArray(v)) return [];
  checkListLength(r, v.length, max, field, r.seq);
  return v;
}

function sub(r: Reading, v: unknown, field: string): Obj {
  if (typeof v !== 'object' || v === null) throw new ProtocolError('ERR_PROTO_MISSING_FIELD', `${field} is missing.`, { peer: r.peer });
  return v as Obj;
}

function fromWire(r: Reading, type: MessageType, m: Obj): Message {
  const { limits } = r;
  switch (type) {
    case 'hello': {
      const f = sub(r, m.fingerprint, 'hello.fingerprint');
      const fingerprint: Fingerprint = {
        size: num(r, f.size, 'fingerprint.size'),
        logicalSectorSize: num(r, f.logicalSectorSize, 'fingerprint.logicalSectorSize'),
        physicalSectorSize: num(r, f.physicalSectorSize, 'fingerprint.physicalSectorSize'),
        model: str(f.model),
        serial: str(f.serial),
        wwn: str(f.wwn),
        kind: str(f.kind),
      };
      return {
        type, protocolVersion: num(r, m.protocolVersion, 'hello.protocolVersion'), rescueId: str(m.rescueId), fingerprint,
        clientNonce: bytes(m.clientNonce), readerName: str(m.readerName),
        chunkSize: num(r, m.chunkSize, 'hello.chunkSize'), sectorSize: num(r, m.sectorSize, 'hello.sectorSize'),
      };
    }
    case 'challenge':
      return { type, serverNonce: bytes(m.serverNonce), protocolVersion: num(r, m.protocolVersion, 'challenge.protocolVersion') };
    case 'auth':
      return { type, hmac: bytes(m.hmac) };
    case 'welcome':
      return {
        type,
        serverProof: bytes(m.serverProof),
        finished: list(r, m.finished, limits.maxFinishedRanges, 'welcome.finished').map((x): Block => {
          const b = sub(r, x, 'welcome.finished range');
          return { pos: num(r, b.pos, 'range.pos'), size: num(r, b.size, 'range.size') };
        }),
        imageSize: num(r, m.imageSize, 'welcome.imageSize'),
        maxMergedSeq: num(r, m.maxMergedSeq, 'welcome.maxMergedSeq'),
      };
    case 'query':
      return { type, seqs: list(r, m.seqs, limits.maxSeqs, 'query.seqs').map((s) => num(r, s, 'query.seqs element')) };
    case 'answer':
      return { type, merged: refs(r, m.merged, 'answer.merged'), more: m.more === true };
    case 'pieceHeader':
      return { type, sealedHeader: bytes(m.sealedHeader) };
    case 'pieceData':
      r.seq = num(r, m.seq, 'pieceData.seq');
      return { type, seq: r.seq, index: num(r, m.index, 'pieceData.index'), sealedFrame: bytes(m.sealedFrame) };
    case 'pieceEnd':
      return { type, seq: num(r, m.seq, 'pieceEnd.seq') };
    case 'receipt':
      return {
        type,
        merged: refs(r, m.merged, 'receipt.merged'),
        rejected: list(r, m.rejected, limits.maxSeqs, 'receipt.rejected').map((x): Rejected => {
          const j = sub(r, x, 'receipt.rejected element');
          return { seq: num(r, j.seq, 'rejected.seq'), code: str(j.code), reason: str(j.reason), headerHash: hash(r, j.headerHash, 'rejected.headerHash', true) };
        }),
      };
    case 'status':
      return {
        type,
        phase: str(m.phase) as MapfileStatus,
        message: str(m.message),
        pass: num(r, m.pass, 'status.pass'),
        pos: num(r, m.pos, 'status.pos'),
        finishedSize: num(r, m.finishedSize, 'status.finishedSize'),
        nonTriedSize: num(r, m.nonTriedSize, 'status.nonTriedSize'),
        nonTrimmedSize: num(r, m.nonTrimmedSize, 'status.nonTrimmedSize'),
        nonScrapedSize: num(r, m.nonScrapedSize, 'status.nonScrapedSize'),
        badSectorSize: num(r, m.badSectorSize, 'status.badSectorSize'),
        readErrors: num(r, m.readErrors, 'status.readErrors'),
        currentRate: num(r, m.currentRate, 'status.currentRate'),
        averageRate: num(r, m.averageRate, 'status.averageRate'),
        chunk: num(r, m.chunk, 'status.chunk'),
        chunkCount: num(r, m.chunkCount, 'status.chunkCount'),
        spoolBytes: num(r, m.spoolBytes, 'status.spoolBytes'),
        spoolPieces: num(r, m.spoolPieces, 'status.spoolPieces'),
        runTime: num(r, m.runTime, 'status.runTime'),
        paused: str(m.paused),
        pausedText: str(m.pausedText),
        pausedSeconds: num(r, m.pausedSeconds, 'status.pausedSeconds'),
        readingPos: num(r, m.readingPos, 'status.readingPos'),
        readingSize: num(r, m.readingSize, 'status.readingSize'),
        readingSeconds: num(r, m.readingSeconds, 'status.readingSeconds'),
      };
    case 'error': {
      const seq = num(r, m.seq, 'error.seq');
      return { type, code: str(m.code), message: str(m.message), seq: seq === 0 ? undefined : seq };
    }
  }
}

/**
 * Decode one envelope from an untrusted peer. In order: the byte length is
 * checked against `maxMessageBytes` before anything is decoded; then the
 * envelope is decoded; then every number is converted (uint64 values above
 * 2^53-1 refused, checksums kept as bigint) and every count, size and string
 * is checked against `limits`, so callers may allocate from what they get.
 * Byte fields are views of `bytes`, not copies.
 * @param peer named in errors.
 * @throws ProtocolError `ERR_PROTO_MESSAGE_TOO_LARGE`, `ERR_PROTO_MALFORMED`
 *   (truncated or not protobuf), `ERR_PROTO_UNKNOWN_MESSAGE` (no body, or one
 *   this version does not know), and the codes of `checkMessage`. Never any
 *   other error, whatever the bytes.
 */
export function decodeEnvelope(bytes: Uint8Array, limits: Limits = DEFAULT_LIMITS, peer?: string): Message {
  if (bytes.length > limits.maxMessageBytes) {
    throw new ProtocolError('ERR_PROTO_MESSAGE_TOO_LARGE', `A message of ${bytes.length} bytes arrived; at most ${limits.maxMessageBytes} are accepted.`, { peer, limit: limits.maxMessageBytes });
  }
  let decoded: Obj;
  try {
    decoded = envelopeSchema().decode(bytes) as unknown as Obj;
  } catch (err) {
    throw new ProtocolError('ERR_PROTO_MALFORMED', `Cannot decode a message of ${bytes.length} bytes (${err instanceof Error ? err.message : String(err)}).`, { peer, cause: err });
  }
  const present = TYPES.filter((t) => decoded[FIELD_OF[t]] !== null && decoded[FIELD_OF[t]] !== undefined);
  const type = present[0];
  if (type === undefined) {
    throw new ProtocolError('ERR_PROTO_UNKNOWN_MESSAGE', 'A message has no body, or one this version does not know.', { peer });
  }
  if (present.length > 1) {
    throw new ProtocolError('ERR_PROTO_MALFORMED', `A message has more than one body (${present.join(', ')}).`, { peer });
  }
  if (HANDSHAKE.has(type) && bytes.length > limits.maxHandshakeBytes) {
    throw new ProtocolError('ERR_PROTO_MESSAGE_TOO_LARGE', `A ${type} message of ${bytes.length} bytes arrived; at most ${limits.maxHandshakeBytes} are accepted.`, { peer, limit: limits.maxHandshakeBytes });
  }
  const reading: Reading = { limits, peer };
  const msg = fromWire(reading, type, sub(reading, decoded[FIELD_OF[type]], type));
  checkMessage(msg, reading);
  return msg;
}

/**
 * The type of an envelope without decoding it: the type of its one body when
 * the bytes are exactly one length-delimited envelope field (as
 * `encodeEnvelope` makes them), else undefined. Cheap and safe on any bytes,
 * so a receiver can refuse what it does not expect before decoding it.
 */
export function peekMessageType(bytes: Uint8Array): MessageType | undefined {
  const tag = bytes[0];
  if (tag === undefined || (tag & 7) !== 2) return undefined;
  const type = FIELD_NUMBER_TYPES[(tag >> 3) - 1];
  if (type === undefined) return undefined;
  let length = 0;
  let at = 1;
  for (let shift = 0; ; shift += 7) {
    const b = bytes[at++];
    if (b === undefined || shift > 28) return undefined;
    length += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
  }
  return at + length === bytes.length ? type : undefined;
}

/**
 * Most frames a sealed header lists (a piece of `maxPieceBytes` cut in frames of 256
 * bytes); `maxHeaderBytes` binds first in practice.
 */
const MAX_FRAMES = 1 << 20;

/**
 * Encode what a sealed header seals (`SealedHeaderBody`), checked first against
 * `limits` so that a receiver with the same limits accepts it.
 * @throws ProtocolError as `checkHeaderBody`.
 */
export function encodeHeaderBody(body: HeaderBody, seq: number, limits: Limits = DEFAULT_LIMITS): Uint8Array {
  checkHeaderBody({ limits }, body, seq);
  const type = headerBodySchema();
  const { mapState, ...rest } = body;
  return type.encode(type.fromObject({
    ...rest, extents: body.extents.map((e) => ({ pos: e.pos, size: e.size, xxh64: wire64(e.xxh64) })),
    delta: body.delta.map((d) => ({ pos: d.pos, size: d.size, status: d.status })),
    ...(mapState === undefined ? {} : { mapState: { currentPos: mapState.currentPos, currentStatus: mapState.currentStatus, currentPass: mapState.currentPass } }),
  })).finish();
}

/**
 * Decode an opened (authenticated) sealed header body, then check it as
 * `checkHeaderBody` does: what comes out may be allocated from. A body of seal
 * version 1 (no frame fields) describes raw frames.
 * @throws ProtocolError `ERR_SEAL_MALFORMED` (not protobuf), and the codes of `checkHeaderBody`.
 */
export function decodeHeaderBody(
  encoded: Uint8Array, seq: number, limits: Limits = DEFAULT_LIMITS, context: { peer?: string | undefined; file?: string | undefined } = {}, sealVersion = 2,
): HeaderBody {
  let m: Obj;
  try {
    m = headerBodySchema().decode(encoded) as unknown as Obj;
  } catch (err) {
    throw new ProtocolError('ERR_SEAL_MALFORMED', `The sealed header's body does not decode (${err instanceof Error ? err.message : String(err)}).`, { ...context, seq, cause: err });
  }
  const r: Reading = { limits, peer: context.peer ?? context.file, seq };
  const body: HeaderBody = {
    chunk: num(r, m.chunk, 'header.chunk'),
    extents: extentsOf(r, m.extents, 'header.extents'),
    delta: deltaOf(r, m.delta, 'header.delta'),
    dataSize: num(r, m.dataSize, 'header.dataSize'),
    frameSize: num(r, m.frameSize, 'header.frameSize'),
    frameCount: num(r, m.frameCount, 'header.frameCount'),
    ...(m.mapState === undefined || m.mapState === null ? {} : { mapState: mapStateOf(r, m.mapState as Obj) }),
    frameEncodings: Uint8Array.from(bytes(m.frameEncodings)),
    frameBytes: list(r, m.frameBytes, MAX_FRAMES, 'header.frameBytes').map((v) => num(r, v, 'header.frameBytes')),
  };
  const described = sealVersion === 1 ? asVersion1(body) : body;
  checkHeaderBody(r, described, seq);
  return described;
}

/** Seal version 1 had no frame fields: every frame raw. */
function asVersion1(body: HeaderBody): HeaderBody {
  const { dataSize, frameSize, frameCount } = body;
  if (frameSize === 0 || frameCount > MAX_FRAMES) return body;
  return { ...body, frameEncodings: new Uint8Array(frameCount), frameBytes: Array.from({ length: frameCount }, (_, i) => frameRawSize(dataSize, frameSize, i)) };
}
