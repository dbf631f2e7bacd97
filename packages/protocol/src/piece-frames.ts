import { checkMessage } from './check-message.js';
import { encodeEnvelope } from './codec.js';
import { ProtocolError } from './errors.js';
import type { RescueKeys } from './keys.js';
import { DEFAULT_LIMITS } from './limits.js';
import type { Limits } from './limits.js';
import type { PieceDataMessage, PieceEndMessage, PieceHeaderMessage } from './messages.js';
import type { OpenedPiece, PiecePlan } from './piece.js';
import { RecycledBuffers } from './recycled-buffers.js';
import { FRAME_ROOM_BYTES, PieceOpener } from './seal.js';
import type { SealedFrame, SealedPiece } from './seal.js';

/**
 * A sealed piece on the wire: one `pieceHeader` carrying its sealed header,
 * one `pieceData` per sealed frame in order, then `pieceEnd`.
 */

/**
 * The encoded envelopes of a sealed piece, one per websocket message, made
 * lazily so the sender can wait for the socket between frames. A piece without
 * data has no frame. `alloc`, if given, provides the memory of each data frame
 * (see `encodePieceData`).
 * @throws ProtocolError as `encodeEnvelope`.
 */
export function* encodePieceFrames(piece: SealedPiece, limits: Limits = DEFAULT_LIMITS, alloc?: (size: number) => Uint8Array, options: PieceDataOptions = {}): Generator<Uint8Array, void, undefined> {
  yield encodeEnvelope({ type: 'pieceHeader', sealedHeader: piece.header }, limits);
  for (let i = 0; i < piece.frames.length; i++) yield encodePieceData(piece.seq, i, piece.frames[i]!, limits, alloc, options);
  yield encodeEnvelope({ type: 'pieceEnd', seq: piece.seq }, limits);
}

/** Envelope field 6 (`piece_data`) and PieceData fields 1 (`seq`), 2 (`index`), 3 (`sealed_frame`): their tag bytes. */
const TAG_PIECE_DATA = (6 << 3) | 2;
const TAG_SEQ = 1 << 3;
const TAG_INDEX = 2 << 3;
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

/** How `encodePieceData` makes its message. */
export interface PieceDataOptions {
  /**
   * Write the message's first bytes into the room `sealPiece` leaves before the frame's
   * ciphertext (`FRAME_ROOM_BYTES`), when the frame is laid out so (its tag right after
   * its ciphertext), and return the message as a view of the sealed block: nothing is
   * copied, and the block must stay as it is until the message is sent. Only for the
   * owner of the block. Default false: the message is a copy.
   */
  readonly inPlace?: boolean | undefined;
}

/**
 * The `pieceData` envelope, byte for byte what `encodeEnvelope` makes (fields at their
 * proto3 defaults left out), written directly: the frame's ciphertext and tag are
 * copied once into the message, where protobufjs would copy them twice and reserve
 * its buffers bit by bit. `alloc(size)`, if given, returns the `size` bytes to write
 * it into (a sender reusing the buffers of frames already on the socket); by default
 * they are new.
 * @throws ProtocolError as `encodeEnvelope`.
 */
export function encodePieceData(seq: number, index: number, frame: SealedFrame, limits: Limits = DEFAULT_LIMITS, alloc?: (size: number) => Uint8Array, options: PieceDataOptions = {}): Uint8Array {
  const size = frame.ciphertext.length + frame.tag.length;
  checkMessage({ type: 'pieceData', seq, index, sealedFrame: new Uint8Array(0) }, { limits });
  if (size > limits.maxFrameBytes + frame.tag.length) {
    throw new ProtocolError('ERR_PROTO_FRAME_TOO_LARGE', `A sealed frame has ${size} bytes; at most ${limits.maxFrameBytes + frame.tag.length} may be sent.`, { seq, limit: limits.maxFrameBytes });
  }
  const body = (seq === 0 ? 0 : 1 + varintSize(seq)) + (index === 0 ? 0 : 1 + varintSize(index)) + (size === 0 ? 0 : 1 + varintSize(size) + size);
  const total = 1 + varintSize(body) + body;
  if (total > limits.maxMessageBytes) {
    throw new ProtocolError('ERR_PROTO_MESSAGE_TOO_LARGE', `A pieceData message encodes to ${total} bytes; at most ${limits.maxMessageBytes} may be sent.`, { limit: limits.maxMessageBytes });
  }
  const { ciphertext, tag } = frame;
  const prefix = total - size;
  if (options.inPlace === true && size > 0 && prefix <= FRAME_ROOM_BYTES && ciphertext.byteOffset >= prefix && tag.buffer === ciphertext.buffer
    && tag.byteOffset === ciphertext.byteOffset + ciphertext.length) {
    // the sealed block's room before the ciphertext takes the prefix: the message is a view of the block
    const out = new Uint8Array(ciphertext.buffer, ciphertext.byteOffset - prefix, total);
    if (putPieceDataPrefix(out, seq, index, body, size) !== prefix) throw new Error(`internal: pieceData prefix of ${prefix} bytes miscounted`);
    return out;
  }
  const out = alloc === undefined ? Buffer.allocUnsafe(total) : alloc(total);
  if (out.length !== total) throw new Error(`internal: alloc(${total}) returned ${out.length} bytes`);
  let at = putPieceDataPrefix(out, seq, index, body, size);
  if (size !== 0) {
    out.set(ciphertext, at);
    at += ciphertext.length;
    out.set(tag, at);
    at += tag.length;
  }
  if (at !== total) throw new Error(`internal: pieceData encoded to ${at} bytes, not ${total}`);
  return out;
}

/** Write a `pieceData` envelope's bytes before its sealed frame's at the start of `out`; returns their count. */
function putPieceDataPrefix(out: Uint8Array, seq: number, index: number, body: number, size: number): number {
  let at = 0;
  out[at++] = TAG_PIECE_DATA;
  at = putVarint(out, at, body);
  if (seq !== 0) {
    out[at++] = TAG_SEQ;
    at = putVarint(out, at, seq);
  }
  if (index !== 0) {
    out[at++] = TAG_INDEX;
    at = putVarint(out, at, index);
  }
  if (size !== 0) {
    out[at++] = TAG_DATA;
    at = putVarint(out, at, size);
  }
  return at;
}

export interface PieceCollectorOptions {
  /** The receiver's plan; it must name the rescue. Every piece is checked against it. */
  readonly plan: PiecePlan & { readonly rescueId: string };
  /** The rescue's keys (`deriveRescueKeys`). */
  readonly keys: RescueKeys;
  /** Default `DEFAULT_LIMITS`. */
  readonly limits?: Limits | undefined;
  /** Named in errors. */
  readonly peer?: string;
  /**
   * Where piece buffers come from and go back to, shared by connections (the
   * assembler's memory budget); without it the collector keeps its own few
   * (`RecycledBuffers`, at most 64 MiB).
   */
  readonly pool?: PieceBufferPool | undefined;
}

/** Buffers of pieces merged, kept for the next pieces. */
export interface PieceBufferPool {
  /** A kept buffer of `size` bytes (not zeroed), or undefined. */
  reuse(size: number): Uint8Array | undefined;
  /** The data of a piece nothing uses any more. */
  keep(data: Uint8Array): void;
}

/** What a collector keeps of recycled buffers, at most, without a shared pool (a batch of default pieces). */
const RECYCLE_BYTES = 64 * 1024 * 1024;

type PieceMessage = PieceHeaderMessage | PieceDataMessage | PieceEndMessage;

/**
 * Receiver side of `encodePieceFrames`: feed it the decoded piece messages of
 * one connection in order; it opens each sealed part as it arrives
 * (`PieceOpener`: the header authenticated and checked against the plan before
 * anything is allocated from it, each frame authenticated before its plaintext
 * is used) and returns the piece on `pieceEnd`, once every extent's xxh64
 * matches. Memory: one piece's data (at most `maxPieceBytes`).
 * After an error, the open piece is dropped and the next header starts afresh.
 */
export class PieceCollector {
  readonly #opener: PieceOpener;
  readonly #peer: string | undefined;
  /** Buffers of merged pieces, given back by `recycle`, for the next pieces. */
  readonly #pool: PieceBufferPool;

  constructor(options: PieceCollectorOptions) {
    this.#peer = options.peer;
    this.#pool = options.pool ?? new RecycledBuffers(RECYCLE_BYTES);
    this.#opener = new PieceOpener({ keys: options.keys, plan: options.plan, limits: options.limits, peer: options.peer, alloc: (size) => this.#alloc(size) });
  }

  /** The sequence number of the piece being received, if any. */
  get pending(): number | undefined {
    return this.#opener.current?.seq;
  }

  /** The data size of the piece being received (its header is authenticated), if any. */
  get pendingDataSize(): number | undefined {
    return this.#opener.current?.dataSize;
  }

  /** The header hash of the piece being received, if any. */
  get pendingHash(): string | undefined {
    return this.#opener.current?.headerHash;
  }

  /**
   * Give back the data of a piece this collector returned, once nothing uses it any
   * more (merged: written and fsynced), so the next piece of about its size reuses its
   * memory instead of new pages (and garbage collections). Without a shared pool, at
   * most `RECYCLE_BYTES` are kept.
   */
  recycle(data: Uint8Array): void {
    this.#pool.keep(data);
  }

  /** `size` bytes, not zeroed: a recycled buffer of at least that size (at most twice), else a new one. */
  #alloc(size: number): Uint8Array {
    return this.#pool.reuse(size) ?? Buffer.allocUnsafeSlow(size);
  }

  /** Drop the piece being received (the connection closed). */
  reset(): void {
    this.#opener.reset();
  }

  /**
   * Take the next piece message.
   * @returns the opened, checked piece on `pieceEnd`, else undefined.
   * @throws ProtocolError `ERR_PROTO_OUT_OF_ORDER`, and the codes of `PieceOpener`.
   */
  accept(msg: PieceMessage): OpenedPiece | undefined {
    const opener = this.#opener;
    if (msg.type === 'pieceHeader') {
      opener.header(msg.sealedHeader);
      return undefined;
    }
    const seq = opener.current?.seq;
    if (seq !== undefined && msg.seq !== seq) {
      opener.reset();
      throw new ProtocolError('ERR_PROTO_OUT_OF_ORDER', `A ${msg.type} of piece ${msg.seq} arrived inside this piece.`, { peer: this.#peer, seq });
    }
    if (msg.type === 'pieceData') {
      opener.frame(msg.index, msg.sealedFrame);
      return undefined;
    }
    return opener.finish();
  }
}
