import { checkMessage } from './check-message.js';
import { encodeEnvelope } from './codec.js';
import { ProtocolError } from './errors.js';
import { DEFAULT_LIMITS } from './limits.js';
import type { Limits } from './limits.js';
import type { PieceDataMessage, PieceEndMessage, PieceHeaderMessage } from './messages.js';
import { validatePiece } from './piece.js';
import type { Piece, PiecePlan } from './piece.js';
import { xxh64 } from './xxh64.js';

/**
 * A piece on the wire: one `pieceHeader`, its data in `pieceData` frames of at
 * most `maxFrameBytes` in order, then `pieceEnd` carrying the xxh64 of the
 * header's encoded bytes.
 */

/**
 * The encoded envelopes of a piece, one per websocket message, made lazily so
 * the sender can wait for the socket between frames. Frames are `maxFrameBytes`
 * long, the last one shorter; a piece without data has no frame. `alloc`, if given,
 * provides the memory of each data frame (see `encodePieceData`).
 * @throws ProtocolError as `encodeEnvelope`.
 */
export function* encodePieceFrames(piece: Piece, limits: Limits = DEFAULT_LIMITS, alloc?: (size: number) => Uint8Array): Generator<Uint8Array, void, undefined> {
  const header = encodeEnvelope({
    type: 'pieceHeader', seq: piece.seq, chunk: piece.chunk, extents: piece.extents, delta: piece.delta, dataSize: piece.data.length,
  }, limits);
  yield header;
  for (let offset = 0; offset < piece.data.length; offset += limits.maxFrameBytes) {
    const data = piece.data.subarray(offset, Math.min(piece.data.length, offset + limits.maxFrameBytes));
    yield encodePieceData(piece.seq, offset, data, limits, alloc);
  }
  yield encodeEnvelope({ type: 'pieceEnd', seq: piece.seq, xxh64OfHeader: xxh64(header) }, limits);
}

/** Envelope field 6 (`piece_data`) and PieceData fields 1 (`seq`), 2 (`offset`), 3 (`data`): their tag bytes. */
const TAG_PIECE_DATA = (6 << 3) | 2;
const TAG_SEQ = 1 << 3;
const TAG_OFFSET = 2 << 3;
const TAG_DATA = (3 << 3) | 2;

function varintSize(v: number): number {
  let n = 1;
  for (let x = v; x >= 128; x = Math.floor(x / 128)) ++n;
  return n;
}

/** Write `v` (a safe integer ≥ 0) as a protobuf varint at `at`; returns the next position. */
function putVarint(buf: Uint8Array, at: number, v: number): number {
  let x = v;
  while (x >= 128) {
    buf[at++] = (x % 128) | 128;
    x = Math.floor(x / 128);
  }
  buf[at++] = x;
  return at;
}

/**
 * The `pieceData` envelope, byte for byte what `encodeEnvelope` makes (fields at their
 * proto3 defaults left out), written directly: the data is copied once into the
 * message, where protobufjs would copy it twice and reserve its buffers bit by bit.
 * `alloc(size)`, if given, returns the `size` bytes to write it into (a sender reusing
 * the buffers of frames already on the socket); by default they are new.
 * @throws ProtocolError as `encodeEnvelope`.
 */
export function encodePieceData(seq: number, offset: number, data: Uint8Array, limits: Limits = DEFAULT_LIMITS, alloc?: (size: number) => Uint8Array): Uint8Array {
  checkMessage({ type: 'pieceData', seq, offset, data }, { limits });
  const body = (seq === 0 ? 0 : 1 + varintSize(seq)) + (offset === 0 ? 0 : 1 + varintSize(offset)) + (data.length === 0 ? 0 : 1 + varintSize(data.length) + data.length);
  const total = 1 + varintSize(body) + body;
  if (total > limits.maxMessageBytes) {
    throw new ProtocolError('ERR_PROTO_MESSAGE_TOO_LARGE', `A pieceData message encodes to ${total} bytes; at most ${limits.maxMessageBytes} may be sent.`, { limit: limits.maxMessageBytes });
  }
  const out = alloc === undefined ? Buffer.allocUnsafe(total) : alloc(total);
  if (out.length !== total) throw new Error(`internal: alloc(${total}) returned ${out.length} bytes`);
  let at = 0;
  out[at++] = TAG_PIECE_DATA;
  at = putVarint(out, at, body);
  if (seq !== 0) {
    out[at++] = TAG_SEQ;
    at = putVarint(out, at, seq);
  }
  if (offset !== 0) {
    out[at++] = TAG_OFFSET;
    at = putVarint(out, at, offset);
  }
  if (data.length !== 0) {
    out[at++] = TAG_DATA;
    at = putVarint(out, at, data.length);
    out.set(data, at);
    at += data.length;
  }
  if (at !== total) throw new Error(`internal: pieceData encoded to ${at} bytes, not ${total}`);
  return out;
}

export interface PieceCollectorOptions {
  /** The receiver's plan; it must name the rescue. Every completed piece is checked against it. */
  readonly plan: PiecePlan & { readonly rescueId: string };
  /** Named in errors. */
  readonly peer?: string;
}

/** What a collector keeps of recycled buffers, at most (a batch of default pieces). */
const RECYCLE_BYTES = 64 * 1024 * 1024;
/** Smaller buffers are not worth keeping. */
const RECYCLE_MIN_BYTES = 1024 * 1024;

type PieceMessage = PieceHeaderMessage | PieceDataMessage | PieceEndMessage;

interface Open {
  readonly header: PieceHeaderMessage;
  readonly headerXxh64: bigint;
  readonly data: Uint8Array;
  received: number;
}

/**
 * Receiver side of `encodePieceFrames`: feed it the decoded piece messages of
 * one connection in order; it returns the piece when its `pieceEnd` arrives,
 * after checking frame order, sizes, the header checksum and the whole piece
 * against the plan (`validatePiece`). Memory: one piece's data, allocated when
 * its header arrives (at most `maxPieceBytes`, checked by the decoder).
 * After an error, the open piece is dropped and the next header starts afresh.
 */
export class PieceCollector {
  readonly #plan: PiecePlan & { readonly rescueId: string };
  readonly #peer: string | undefined;
  #open: Open | undefined;
  /** Buffers of merged pieces, given back by `recycle`, for the next pieces. */
  readonly #free: ArrayBuffer[] = [];
  #freeBytes = 0;

  constructor(options: PieceCollectorOptions) {
    this.#plan = options.plan;
    this.#peer = options.peer;
  }

  /** The sequence number of the piece being received, if any. */
  get pending(): number | undefined {
    return this.#open?.header.seq;
  }

  /**
   * Give back the data of a piece this collector returned, once nothing uses it any
   * more (merged: written and fsynced), so the next piece of about its size reuses its
   * memory instead of new pages (and garbage collections). At most `RECYCLE_BYTES` are kept.
   */
  recycle(data: Uint8Array): void {
    const buf = data.buffer;
    if (!(buf instanceof ArrayBuffer) || data.byteOffset !== 0 || buf.byteLength < RECYCLE_MIN_BYTES) return;
    if (this.#freeBytes + buf.byteLength > RECYCLE_BYTES || this.#free.includes(buf)) return;
    this.#free.push(buf);
    this.#freeBytes += buf.byteLength;
  }

  /** `size` bytes, not zeroed: a recycled buffer of at least that size (at most twice), else a new one. */
  #alloc(size: number): Uint8Array {
    const i = this.#free.findIndex((b) => b.byteLength >= size && b.byteLength <= 2 * size);
    if (i < 0) return Buffer.allocUnsafeSlow(size);
    const [buf] = this.#free.splice(i, 1);
    this.#freeBytes -= buf!.byteLength;
    return new Uint8Array(buf!, 0, size);
  }

  /** Drop the piece being received (the connection closed). */
  reset(): void {
    this.#open = undefined;
  }

  /**
   * Take the next piece message.
   * @param raw the envelope's bytes as received; needed for `pieceHeader`, whose checksum `pieceEnd` carries.
   * @returns the completed, validated piece on `pieceEnd`, else undefined.
   * @throws ProtocolError `ERR_PROTO_OUT_OF_ORDER`, `ERR_PIECE_SIZE_MISMATCH`,
   *   `ERR_PROTO_HEADER_CHECKSUM_MISMATCH`, and the codes of `validatePiece`.
   */
  accept(msg: PieceMessage, raw?: Uint8Array): Piece | undefined {
    try {
      return this.#accept(msg, raw);
    } catch (err) {
      this.#open = undefined;
      throw err;
    }
  }

  #fail(code: 'ERR_PROTO_OUT_OF_ORDER' | 'ERR_PIECE_SIZE_MISMATCH' | 'ERR_PROTO_HEADER_CHECKSUM_MISMATCH', seq: number, message: string): never {
    throw new ProtocolError(code, message, { peer: this.#peer, seq });
  }

  #accept(msg: PieceMessage, raw: Uint8Array | undefined): Piece | undefined {
    const open = this.#open;
    if (msg.type === 'pieceHeader') {
      if (open !== undefined) this.#fail('ERR_PROTO_OUT_OF_ORDER', open.header.seq, `A header for piece ${msg.seq} arrived before the end of this piece.`);
      if (raw === undefined) throw new TypeError('accept(pieceHeader) needs the raw bytes of the envelope');
      // not zeroed: the piece is returned only once frames have filled every byte
      this.#open = { header: msg, headerXxh64: xxh64(raw), data: this.#alloc(msg.dataSize), received: 0 };
      return undefined;
    }
    if (open === undefined) this.#fail('ERR_PROTO_OUT_OF_ORDER', msg.seq, `A ${msg.type} arrived without a header.`);
    const seq = open.header.seq;
    if (msg.seq !== seq) this.#fail('ERR_PROTO_OUT_OF_ORDER', seq, `A ${msg.type} of piece ${msg.seq} arrived inside this piece.`);
    if (msg.type === 'pieceData') {
      if (msg.offset !== open.received) this.#fail('ERR_PROTO_OUT_OF_ORDER', seq, `A frame at offset ${msg.offset} arrived; ${open.received} was expected.`);
      if (open.received + msg.data.length > open.data.length) {
        this.#fail('ERR_PIECE_SIZE_MISMATCH', seq, `Frames carry more than the header's ${open.data.length} bytes.`);
      }
      open.data.set(msg.data, open.received);
      open.received += msg.data.length;
      return undefined;
    }
    if (open.received !== open.data.length) this.#fail('ERR_PIECE_SIZE_MISMATCH', seq, `The piece ended after ${open.received} of ${open.data.length} bytes.`);
    if (msg.xxh64OfHeader !== open.headerXxh64) this.#fail('ERR_PROTO_HEADER_CHECKSUM_MISMATCH', seq, 'The header does not match the checksum in pieceEnd.');
    this.#open = undefined;
    const { header } = open;
    const piece: Piece = {
      rescueId: this.#plan.rescueId, seq, chunk: header.chunk, extents: header.extents, delta: header.delta, data: open.data,
    };
    validatePiece(piece, this.#plan, { peer: this.#peer });
    return piece;
  }
}
