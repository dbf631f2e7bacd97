import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

import type { HeaderBody } from './check-message.js';
import { frameRawSize } from './check-message.js';
import { decodeHeaderBody, encodeHeaderBody } from './codec.js';
import { ProtocolError } from './errors.js';
import type { ErrorContext, ProtocolErrorCode } from './errors.js';
import { cipherInto } from './cipher-slices.js';
import { decodeFrame, encodeFrame, encodeFrameSync, FRAME_RAW, FRAME_ZERO } from './frame-codec.js';
import type { EncodedFrame, FrameEncodeOptions, FrameEncoding } from './frame-codec.js';
import { isRescueId } from './identity.js';
import type { RescueId } from './identity.js';
import { hkdf } from './keys.js';
import type { RescueKeys } from './keys.js';
import { DEFAULT_LIMITS, MAX_SEQ } from './limits.js';
import type { Limits } from './limits.js';
import { checkPieceAgainstPlan, checkPieceShape, verifyPieceData } from './piece.js';
import type { OpenedPiece, Piece, PieceContext, PieceDescription, PiecePlan } from './piece.js';

/**
 * Sealed pieces (docs/seal.md): a piece is sealed once, on PC_A, and travels
 * sealed on the wire and on a stick alike (S3). AES-256-GCM under a key of its
 * own, `HKDF-SHA256(sealKey, salt, "piece v1")`, with a fresh random 16-byte salt.
 *
 * Sealed header (`SealedPiece.header`), version 2 (version 1, every frame raw, is still read):
 *
 * | bytes | field |
 * |---|---|
 * | 0–3 | `DDSP` |
 * | 4 | version, 2 |
 * | 5–20 | rescue id (the UUID's 16 bytes) |
 * | 21–28 | seq, unsigned 64-bit big-endian, 1 to 2^40 |
 * | 29–44 | salt |
 * | 45–48 | n, bytes of the sealed body, unsigned 32-bit big-endian |
 * | 49 … 48+n | the body (`SealedHeaderBody`, protobuf), encrypted |
 * | 49+n … 64+n | its GCM tag |
 *
 * The header is sealed with nonce `"hdr1" ‖ u64be(0)` and AAD = bytes 0–48,
 * so the routing fields in clear cannot change without the tag failing. The data
 * is cut in frames of `frameSize` bytes (the last shorter); each frame is encoded
 * (`frame-codec.ts`: raw, a zero run of no bytes, or zstd; the body records each
 * frame's encoding and carried bytes) and frame i's encoded bytes are sealed
 * with nonce `"frm1" ‖ u64be(i)` and AAD `"frm1" ‖ u64be(i) ‖ u8(last)`, and
 * travel as their ciphertext then their tag. The header hash (`headerHashOf`)
 * names the piece in receipts.
 */

/** Bytes of a GCM tag. */
export const TAG_BYTES = 16;
/** Bytes of a piece's salt. */
export const SALT_BYTES = 16;
/** Bytes of the sealed header before its body. */
export const SEALED_PREFIX_BYTES = 49;
/**
 * Bytes of room `sealPiece` leaves before each frame's ciphertext in the block it seals
 * into (its tag follows the ciphertext there): a link writes its message's prefix in
 * the room and sends the message as a view of the block (`encodePieceData` with
 * `inPlace`), without copying the frame. A `pieceData` prefix takes at most 22 bytes.
 */
export const FRAME_ROOM_BYTES = 32;
/** Version of the sealed format that `sealPiece` writes (2: encoded frames). Version 1 is read too. */
export const SEAL_VERSION = 2;

const MAGIC = Buffer.from('DDSP', 'latin1');
const HEADER_DOMAIN = Buffer.from('hdr1', 'latin1');
const FRAME_DOMAIN = Buffer.from('frm1', 'latin1');
const PIECE_INFO = 'piece v1';
const CIPHER = 'aes-256-gcm';
const HASH = /^[0-9a-f]{32}$/;

/** One sealed frame: its ciphertext and its GCM tag (on the wire and in a bundle: one after the other). */
export interface SealedFrame {
  readonly ciphertext: Uint8Array;
  readonly tag: Uint8Array;
}

/** A piece as it travels: nothing of its content is readable without the rescue's keys. */
export interface SealedPiece {
  /** From the header's routing fields (authenticated only once opened). */
  readonly rescueId: RescueId;
  readonly seq: number;
  /** The sealed header (see the module comment). */
  readonly header: Uint8Array;
  /** `headerHashOf(header)`. */
  readonly headerHash: string;
  /** The sealed frames, in order. */
  readonly frames: readonly SealedFrame[];
  /** Bytes carried: the sum of the frames' ciphertext (the encoded frames, less than the raw data when compressed). */
  readonly dataSize: number;
}

/** A sealed header's routing fields, read before anything is authenticated. */
export interface SealedHeaderFields {
  readonly rescueId: string;
  readonly seq: number;
  readonly salt: Uint8Array;
  /** Bytes of the encrypted body (without the tag). */
  readonly bodyBytes: number;
  /** The seal version, 1 or 2. */
  readonly version: number;
}

/** What an opened sealed header says: the piece without its data, and how its data is framed. */
export interface OpenedHeader extends PieceDescription {
  readonly headerHash: string;
  readonly dataSize: number;
  readonly frameSize: number;
  readonly frameCount: number;
  /** Per frame, its encoding (`FRAME_RAW`, `FRAME_ZERO`, `FRAME_ZSTD`). */
  readonly frameEncodings: Uint8Array;
  /** Per frame, the bytes its sealed frame carries (without the tag). */
  readonly frameBytes: readonly number[];
}

export interface SealOptions extends FrameEncodeOptions {
  /** Checked as a receiver with these limits would. Default `DEFAULT_LIMITS`. */
  readonly limits?: Limits | undefined;
  /** Bytes of data per frame. Default `limits.maxFrameBytes` (4 MiB). */
  readonly frameBytes?: number | undefined;
  /**
   * Memory for the piece's ciphertext: every frame's, one after the other, in one
   * block of `size` bytes (the first frame's `ciphertext` starts it), so a sender can
   * recycle the blocks of pieces it has sent. Default new memory.
   */
  readonly alloc?: ((size: number) => Uint8Array) | undefined;
}

/**
 * The identity of a sealed piece: the first 16 bytes of the SHA-256 of its
 * whole sealed header (routing fields, sealed body, tag), as 32 lowercase hex
 * digits. Two pieces with one seq but different content have different hashes.
 */
export function headerHashOf(header: Uint8Array): string {
  return createHash('sha256').update(header).digest().subarray(0, 16).toString('hex');
}

/** True for 32 lowercase hex digits: the form of a header hash. */
export function isHeaderHash(text: string): boolean {
  return HASH.test(text);
}

function rescueIdBytes(rescueId: string): Buffer {
  if (!isRescueId(rescueId)) throw new TypeError(`not a rescue id: ${rescueId}`);
  return Buffer.from(rescueId.replace(/-/g, ''), 'hex');
}

function rescueIdOf(bytes: Uint8Array): string {
  const h = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function nonce(domain: Buffer, index: number): Buffer {
  const n = Buffer.alloc(12);
  domain.copy(n, 0);
  n.writeBigUInt64BE(BigInt(index), 4);
  return n;
}

function frameAad(index: number, last: boolean): Buffer {
  const a = Buffer.alloc(13);
  FRAME_DOMAIN.copy(a, 0);
  a.writeBigUInt64BE(BigInt(index), 4);
  a[12] = last ? 1 : 0;
  return a;
}

function pieceKey(keys: RescueKeys, salt: Uint8Array): Uint8Array {
  return hkdf(keys.sealKey, salt, PIECE_INFO);
}

function frameSizeOf(piece: Piece, keys: RescueKeys, options: SealOptions): { limits: Limits; frameSize: number } {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const frameSize = options.frameBytes ?? limits.maxFrameBytes;
  if (keys.rescueId !== piece.rescueId) throw new TypeError(`keys of rescue ${keys.rescueId} cannot seal a piece of rescue ${piece.rescueId}`);
  if (!Number.isSafeInteger(frameSize) || frameSize <= 0) throw new RangeError(`frameBytes must be a positive integer, not ${String(frameSize)}`);
  checkPieceShape(piece);
  return { limits, frameSize };
}

function rawFrames(piece: Piece, frameSize: number): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let at = 0; at < piece.data.length; at += frameSize) frames.push(piece.data.subarray(at, Math.min(piece.data.length, at + frameSize)));
  return frames;
}

/**
 * Seal a piece for its rescue: check it as a receiver would (shape, sizes,
 * limits), encode each frame (a zero run, zstd where it saves 3 %, else raw:
 * `options.compression`, `options.level`), then encrypt the header and the
 * encoded frames. The piece's data is read, never kept: the result holds only
 * ciphertext. Compresses on this thread; `sealPieceAsync` uses the thread pool.
 * @throws ProtocolError `ERR_PIECE_*` for a piece of bad shape,
 *   `ERR_PROTO_TOO_MANY`, `ERR_PROTO_PIECE_TOO_LARGE`, `ERR_PROTO_FRAME_TOO_LARGE`
 *   for one over the limits; TypeError for keys of another rescue (a bug);
 *   RangeError for a zstd level outside 1 to 19.
 */
export function sealPiece(piece: Piece, keys: RescueKeys, options: SealOptions = {}): SealedPiece {
  const { limits, frameSize } = frameSizeOf(piece, keys, options);
  return sealEncoded(piece, keys, limits, frameSize, rawFrames(piece, frameSize).map((f) => encodeFrameSync(f, options)), options.alloc);
}

/**
 * `sealPiece`, with the frames compressed at once in libuv's thread pool (every core
 * works on a piece; this thread only encrypts). `piece.data` must not change until it settles.
 * @throws as `sealPiece` (rejects).
 */
export async function sealPieceAsync(piece: Piece, keys: RescueKeys, options: SealOptions = {}): Promise<SealedPiece> {
  const { limits, frameSize } = frameSizeOf(piece, keys, options);
  const encoded = await Promise.all(rawFrames(piece, frameSize).map((f) => encodeFrame(f, options)));
  return sealEncoded(piece, keys, limits, frameSize, encoded, options.alloc);
}

/**
 * Seal `piece` with frames already encoded (`encoded[i]` holds raw bytes
 * `[i * frameSize, …)` of the data): what `sealPiece` does after encoding. The
 * encodings are checked against the header rules, not decoded: tests use it to
 * craft frames a token holder could send. Not exported from the package.
 */
export function sealEncoded(piece: Piece, keys: RescueKeys, limits: Limits, frameSize: number, encoded: readonly EncodedFrame[], alloc?: (size: number) => Uint8Array): SealedPiece {
  const dataSize = piece.data.length;
  const body: HeaderBody = {
    chunk: piece.chunk, extents: piece.extents, delta: piece.delta, dataSize, frameSize, frameCount: encoded.length,
    ...(piece.mapState === undefined ? {} : { mapState: piece.mapState }),
    frameEncodings: Uint8Array.from(encoded, (f) => f.encoding), frameBytes: encoded.map((f) => f.bytes.length),
  };
  const plainBody = encodeHeaderBody(body, piece.seq, limits);
  const header = Buffer.allocUnsafe(SEALED_PREFIX_BYTES + plainBody.length + TAG_BYTES);
  if (header.length > limits.maxHeaderBytes) {
    throw new ProtocolError('ERR_PROTO_PIECE_TOO_LARGE', `The sealed header would have ${header.length} bytes; at most ${limits.maxHeaderBytes} are accepted: seal pieces with fewer ranges.`, { seq: piece.seq, limit: limits.maxHeaderBytes });
  }
  const salt = randomBytes(SALT_BYTES);
  MAGIC.copy(header, 0);
  header[4] = SEAL_VERSION;
  rescueIdBytes(piece.rescueId).copy(header, 5);
  header.writeBigUInt64BE(BigInt(piece.seq), 21);
  salt.copy(header, 29);
  header.writeUInt32BE(plainBody.length, 45);
  const key = pieceKey(keys, salt);
  const h = createCipheriv(CIPHER, key, nonce(HEADER_DOMAIN, 0), { authTagLength: TAG_BYTES });
  h.setAAD(header.subarray(0, SEALED_PREFIX_BYTES));
  const sealedBody = h.update(plainBody);
  h.final();
  sealedBody.copy(header, SEALED_PREFIX_BYTES);
  h.getAuthTag().copy(header, SEALED_PREFIX_BYTES + plainBody.length);
  const frames: SealedFrame[] = [];
  let carried = 0;
  for (const f of encoded) carried += f.bytes.length;
  // One block for every frame: they live and die together. Each frame's ciphertext has
  // FRAME_ROOM_BYTES of room before it (zeros until a link writes there) and its tag after it.
  const total = carried + encoded.length * (FRAME_ROOM_BYTES + TAG_BYTES);
  const block = alloc === undefined ? Buffer.allocUnsafeSlow(total) : alloc(total);
  if (block.length !== total) throw new Error(`internal: alloc(${total}) returned ${block.length} bytes`);
  let at = 0;
  for (let i = 0; i < encoded.length; i++) {
    const last = i === encoded.length - 1;
    const bytes = encoded[i]!.bytes;
    block.fill(0, at, at + FRAME_ROOM_BYTES);
    at += FRAME_ROOM_BYTES;
    const c = createCipheriv(CIPHER, key, nonce(FRAME_DOMAIN, i), { authTagLength: TAG_BYTES });
    c.setAAD(frameAad(i, last));
    const ciphertext = cipherInto(c, bytes, block.subarray(at, at + bytes.length));
    c.final();
    at += bytes.length;
    const tag = block.subarray(at, at + TAG_BYTES);
    tag.set(c.getAuthTag());
    at += TAG_BYTES;
    frames.push({ ciphertext, tag });
  }
  return { rescueId: piece.rescueId, seq: piece.seq, header, headerHash: headerHashOf(header), frames, dataSize: carried };
}

function sealFail(code: ProtocolErrorCode, message: string, where: PieceContext, extra: Omit<ErrorContext, 'file' | 'peer'> = {}): never {
  throw new ProtocolError(code, message, { file: where.file, peer: where.peer, ...extra });
}

/**
 * Read a sealed header's routing fields, checking its layout, version, length
 * and seq (1 to `MAX_SEQ`), without any key. Nothing here is authenticated yet.
 * @throws ProtocolError `ERR_SEAL_MALFORMED`, `ERR_PIECE_BAD_SEQ`.
 */
export function readSealedHeaderFields(header: Uint8Array, where: PieceContext = {}): SealedHeaderFields {
  if (header.length < SEALED_PREFIX_BYTES + TAG_BYTES) sealFail('ERR_SEAL_MALFORMED', `A sealed header has ${header.length} bytes, fewer than the ${SEALED_PREFIX_BYTES + TAG_BYTES} of an empty one.`, where);
  const b = Buffer.from(header.buffer, header.byteOffset, header.length);
  if (!b.subarray(0, 4).equals(MAGIC)) sealFail('ERR_SEAL_MALFORMED', 'A sealed header does not start with DDSP.', where);
  const version = b[4]!;
  if (version !== SEAL_VERSION && version !== 1) sealFail('ERR_SEAL_MALFORMED', `A sealed header has version ${version}; this ddferry reads versions 1 and ${SEAL_VERSION}.`, where);
  const seq = b.readBigUInt64BE(21);
  if (seq < 1n || seq > BigInt(MAX_SEQ)) {
    throw new ProtocolError('ERR_PIECE_BAD_SEQ', `Sequence number ${seq} is not an integer from 1 to 2^40.`, { file: where.file, peer: where.peer });
  }
  const bodyBytes = b.readUInt32BE(45);
  if (header.length !== SEALED_PREFIX_BYTES + bodyBytes + TAG_BYTES) {
    sealFail('ERR_SEAL_MALFORMED', `A sealed header has ${header.length} bytes; its length field says ${SEALED_PREFIX_BYTES + bodyBytes + TAG_BYTES}.`, where, { seq: Number(seq) });
  }
  return { rescueId: rescueIdOf(header.subarray(5, 21)), seq: Number(seq), salt: header.subarray(29, 45), bodyBytes, version };
}

export interface PieceOpenerOptions {
  /** The rescue's keys; its rescue id must be the plan's. */
  readonly keys: RescueKeys;
  /** The receiver's plan: every opened header is checked against it. */
  readonly plan: PiecePlan;
  /** Default `DEFAULT_LIMITS`. */
  readonly limits?: Limits | undefined;
  /** Named in errors. */
  readonly file?: string | undefined;
  readonly peer?: string | undefined;
  /** Memory for a piece's data, when it has several frames (the collector recycles buffers). Default new memory. */
  readonly alloc?: ((size: number) => Uint8Array) | undefined;
  /**
   * The sealed frames given to `frame` are views of memory the caller gives up to the
   * pieces (a bundle read whole into a buffer of its own, `shareSource`): each frame is
   * deciphered in place, its plaintext laid over the sealed bytes of the frames before it,
   * so a piece's data is a view of that memory and nothing is allocated or copied. A
   * frame that cannot (in other memory, or a compressed or zero frame whose plaintext
   * would reach past its own sealed bytes into a later frame's) has the piece's frames
   * so far copied into `alloc`'s memory, where the piece goes on. A frame that fails
   * leaves plaintext over the sealed bytes already deciphered. Default false.
   */
  readonly inPlace?: boolean | undefined;
}

interface OpenState {
  readonly header: OpenedHeader;
  readonly key: Uint8Array;
  data: Uint8Array | undefined;
  /** `data` is a view of the sealed frames' own memory (`inPlace`). */
  inPlace: boolean;
  next: number;
  /** Zero-run frames so far, as positions in the data, adjacent ones joined. */
  readonly zeroRuns: { pos: number; size: number }[];
}

/**
 * Opens sealed pieces one at a time, as their parts arrive (the wire's
 * messages, a bundle's entries): `header`, then `frame` for each frame in
 * order, then `finish`. Each step verifies before it trusts:
 *
 * | step | checks, in order | refused with |
 * |---|---|---|
 * | `header` | layout and seq (no key); the rescue id in clear is the plan's; the GCM tag (key, rescue, seq, body); the body's fields and limits; the piece against the plan (chunk, ranges) | `ERR_SEAL_MALFORMED`, `ERR_PIECE_BAD_SEQ`, `ERR_PIECE_WRONG_RESCUE`, `ERR_SEAL_AUTH_FAILED`, `ERR_PROTO_*`, `ERR_PIECE_*` |
 * | `frame(i)` | i is the next frame; its length (the bytes the header says it carries); its tag (piece key, i, last); its decoding into exactly its raw size (`decodeFrame`) | `ERR_PROTO_OUT_OF_ORDER`, `ERR_PIECE_SIZE_MISMATCH`, `ERR_SEAL_FRAME_AUTH_FAILED`, `ERR_SEAL_FRAME_CORRUPT`, `ERR_SEAL_FRAME_BOMB`, `ERR_SEAL_FRAME_RAW_SIZE` |
 * | `finish` | every frame arrived; each extent's xxh64 of the raw bytes | `ERR_PIECE_SIZE_MISMATCH`, `ERR_PIECE_CHECKSUM_MISMATCH` |
 *
 * Memory: the piece's data, allocated once its header is authenticated
 * (at most `maxPieceBytes`). After an error the piece is dropped (`reset`).
 */
export class PieceOpener {
  readonly #keys: RescueKeys;
  readonly #plan: PiecePlan;
  readonly #limits: Limits;
  readonly #where: PieceContext;
  readonly #alloc: (size: number) => Uint8Array;
  readonly #inPlace: boolean;
  #open: OpenState | undefined;

  constructor(options: PieceOpenerOptions) {
    if (options.plan.rescueId !== undefined && options.plan.rescueId !== options.keys.rescueId) {
      throw new TypeError(`keys of rescue ${options.keys.rescueId} cannot open pieces for a plan of rescue ${options.plan.rescueId}`);
    }
    this.#keys = options.keys;
    this.#plan = options.plan;
    this.#limits = options.limits ?? DEFAULT_LIMITS;
    this.#where = { file: options.file, peer: options.peer };
    this.#alloc = options.alloc ?? ((size) => Buffer.allocUnsafeSlow(size));
    this.#inPlace = options.inPlace === true;
  }

  /** The header of the piece being opened, if any. */
  get current(): OpenedHeader | undefined {
    return this.#open?.header;
  }

  /** Drop the piece being opened. */
  reset(): void {
    this.#open = undefined;
  }

  #guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      this.#open = undefined;
      throw err;
    }
  }

  /**
   * Open a sealed header and start its piece (see the class comment).
   * @throws ProtocolError (see the class comment); `ERR_PROTO_OUT_OF_ORDER` while a piece is open.
   */
  header(sealed: Uint8Array): OpenedHeader {
    return this.#guard(() => {
      const open = this.#open;
      if (open !== undefined) sealFail('ERR_PROTO_OUT_OF_ORDER', `A header arrived before frame ${open.next} of piece ${open.header.seq}.`, this.#where, { seq: open.header.seq });
      const where = this.#where;
      const fields = readSealedHeaderFields(sealed, where);
      const { seq } = fields;
      if (fields.rescueId !== this.#keys.rescueId) {
        throw new ProtocolError('ERR_PIECE_WRONG_RESCUE', `The piece belongs to rescue ${fields.rescueId}, not to this rescue ${this.#keys.rescueId}.`, { ...where, seq });
      }
      const key = pieceKey(this.#keys, fields.salt);
      const bodyEnd = SEALED_PREFIX_BYTES + fields.bodyBytes;
      const d = createDecipheriv(CIPHER, key, nonce(HEADER_DOMAIN, 0), { authTagLength: TAG_BYTES });
      d.setAAD(sealed.subarray(0, SEALED_PREFIX_BYTES));
      const plain = d.update(sealed.subarray(SEALED_PREFIX_BYTES, bodyEnd));
      d.setAuthTag(sealed.subarray(bodyEnd));
      try {
        d.final();
      } catch (err) {
        throw new ProtocolError('ERR_SEAL_AUTH_FAILED', 'The sealed header does not authenticate with this rescue\'s key.', { ...where, seq, cause: err });
      }
      const body = decodeHeaderBody(plain, seq, this.#limits, where, fields.version);
      const header: OpenedHeader = {
        rescueId: fields.rescueId, seq, chunk: body.chunk, extents: body.extents, delta: body.delta,
        headerHash: headerHashOf(sealed), dataSize: body.dataSize, frameSize: body.frameSize, frameCount: body.frameCount,
        ...(body.mapState === undefined ? {} : { mapState: body.mapState }),
        frameEncodings: body.frameEncodings, frameBytes: body.frameBytes,
      };
      checkPieceAgainstPlan(header, this.#plan, where);
      this.#open = { header, key, data: undefined, inPlace: false, next: 0, zeroRuns: [] };
      return header;
    });
  }

  /** Bytes of sealed frame `index` of the open piece (ciphertext and tag). */
  sealedFrameBytes(index: number): number {
    const h = this.#open?.header;
    if (h === undefined || index >= h.frameCount) return 0;
    return h.frameBytes[index]! + TAG_BYTES;
  }

  /**
   * Open frame `index` of the open piece: its ciphertext then its tag, as one
   * buffer (`sealed`) or as a `SealedFrame`. Its plaintext goes into the
   * piece's data once its tag verifies.
   * @throws ProtocolError (see the class comment).
   */
  frame(index: number, sealed: Uint8Array | SealedFrame): void {
    this.#guard(() => {
      const open = this.#open;
      const seq = open?.header.seq;
      if (open === undefined) return sealFail('ERR_PROTO_OUT_OF_ORDER', `Frame ${index} arrived without a header.`, this.#where);
      const h = open.header;
      if (index !== open.next) sealFail('ERR_PROTO_OUT_OF_ORDER', `Frame ${index} arrived; frame ${open.next} was expected.`, this.#where, { seq });
      if (index >= h.frameCount) sealFail('ERR_PIECE_SIZE_MISMATCH', `Frame ${index} arrived; the piece has ${h.frameCount} frames.`, this.#where, { seq });
      const ciphertext = sealed instanceof Uint8Array ? sealed.subarray(0, Math.max(0, sealed.length - TAG_BYTES)) : sealed.ciphertext;
      const tag = sealed instanceof Uint8Array ? sealed.subarray(Math.max(0, sealed.length - TAG_BYTES)) : sealed.tag;
      const want = this.sealedFrameBytes(index) - TAG_BYTES;
      if (ciphertext.length !== want || tag.length !== TAG_BYTES) {
        sealFail('ERR_PIECE_SIZE_MISMATCH', `Frame ${index} has ${ciphertext.length + tag.length} sealed bytes; ${want + TAG_BYTES} were expected.`, this.#where, { seq });
      }
      const last = index === h.frameCount - 1;
      const encoding = h.frameEncodings[index]! as FrameEncoding;
      const pos = index * h.frameSize;
      const raw = frameRawSize(h.dataSize, h.frameSize, index);
      // A raw frame of the right size is deciphered straight into the piece's
      // data; until its tag verifies, a failure drops the piece (#guard).
      const direct = encoding === FRAME_RAW && ciphertext.length === raw;
      const inPlace = this.#inPlaceView(open, index, sealed, ciphertext, direct);
      let plain: Uint8Array;
      if (inPlace !== undefined && direct) plain = inPlace;
      else if (!direct) plain = Buffer.allocUnsafe(ciphertext.length);
      else if (h.frameCount === 1) plain = open.data = this.#alloc(raw);
      else plain = (open.data ??= this.#alloc(h.dataSize)).subarray(pos, pos + raw);
      const d = createDecipheriv(CIPHER, open.key, nonce(FRAME_DOMAIN, index), { authTagLength: TAG_BYTES });
      d.setAAD(frameAad(index, last));
      cipherInto(d, ciphertext, plain);
      d.setAuthTag(tag);
      try {
        d.final();
      } catch (err) {
        throw new ProtocolError('ERR_SEAL_FRAME_AUTH_FAILED', `Frame ${index} of ${h.frameCount} does not authenticate.`, { ...this.#where, seq, cause: err });
      }
      const frameWhere = { ...this.#where, seq };
      if (!direct && inPlace !== undefined) {
        decodeFrame(encoding, plain, raw, inPlace, this.#limits.maxFrameBytes, index, frameWhere);
      } else if (!direct && h.frameCount === 1) {
        open.data = decodeFrame(encoding, plain, raw, undefined, this.#limits.maxFrameBytes, index, frameWhere);
      } else if (!direct) {
        open.data ??= this.#alloc(h.dataSize);
        decodeFrame(encoding, plain, raw, open.data.subarray(pos, pos + raw), this.#limits.maxFrameBytes, index, frameWhere);
      }
      if (encoding === FRAME_ZERO) {
        const prev = open.zeroRuns[open.zeroRuns.length - 1];
        if (prev !== undefined && prev.pos + prev.size === pos) prev.size += raw;
        else open.zeroRuns.push({ pos, size: raw });
      }
      open.next = index + 1;
    });
  }

  /**
   * Where frame `index`'s plaintext goes in place (`inPlace`): the piece's data is a view
   * of the sealed frames' memory from frame 0's ciphertext on, and a frame's plaintext
   * may take that memory up to its own ciphertext's start (deciphered slice by slice, at
   * or before the bytes read) or, decoded once authenticated, up to the end of its sealed
   * bytes: never a later frame's. Else the frames so far move into `alloc`'s memory
   * (`open.data`, from then on) and undefined is returned.
   */
  #inPlaceView(open: OpenState, index: number, sealed: Uint8Array | SealedFrame, ciphertext: Uint8Array, direct: boolean): Uint8Array | undefined {
    const h = open.header;
    if (!this.#inPlace) return undefined;
    if (index === 0 && sealed instanceof Uint8Array && ciphertext.byteOffset + h.dataSize <= ciphertext.buffer.byteLength) {
      open.data = new Uint8Array(ciphertext.buffer, ciphertext.byteOffset, h.dataSize);
      open.inPlace = true;
    }
    const data = open.data;
    if (!open.inPlace || data === undefined) return undefined;
    const pos = index * h.frameSize;
    const raw = frameRawSize(h.dataSize, h.frameSize, index);
    const at = data.byteOffset + pos;
    const fits = sealed instanceof Uint8Array && sealed.buffer === data.buffer && (direct ? at <= ciphertext.byteOffset : at + raw <= sealed.byteOffset + sealed.length);
    if (fits) return data.subarray(pos, pos + raw);
    open.inPlace = false;
    if (index === 0) {
      open.data = undefined;
    } else {
      open.data = this.#alloc(h.dataSize);
      open.data.set(data.subarray(0, pos));
    }
    return undefined;
  }

  /**
   * End the open piece: every frame must have arrived; then each extent's xxh64
   * is checked against the raw bytes.
   * @returns the piece, fully checked, with its header hash.
   * @throws ProtocolError `ERR_PROTO_OUT_OF_ORDER` (no piece open),
   *   `ERR_PIECE_SIZE_MISMATCH`, `ERR_PIECE_CHECKSUM_MISMATCH`.
   */
  finish(): OpenedPiece {
    return this.#guard(() => {
      const open = this.#open;
      if (open === undefined) return sealFail('ERR_PROTO_OUT_OF_ORDER', 'A piece ended without a header.', this.#where);
      const h = open.header;
      if (open.next !== h.frameCount) sealFail('ERR_PIECE_SIZE_MISMATCH', `The piece ended after ${open.next} of its ${h.frameCount} frames.`, this.#where, { seq: h.seq });
      this.#open = undefined;
      const piece: OpenedPiece = {
        rescueId: h.rescueId, seq: h.seq, chunk: h.chunk, extents: h.extents, delta: h.delta,
        data: open.data ?? new Uint8Array(0), headerHash: h.headerHash, ...(h.mapState === undefined ? {} : { mapState: h.mapState }),
        ...(open.zeroRuns.length > 0 ? { zeroRuns: open.zeroRuns } : {}),
      };
      verifyPieceData(piece, this.#where);
      return piece;
    });
  }
}

/**
 * Open a whole sealed piece (see `PieceOpener`).
 * @throws ProtocolError as `PieceOpener`.
 */
export function openSealedPiece(sealed: SealedPiece, options: PieceOpenerOptions): OpenedPiece {
  const opener = new PieceOpener(options);
  opener.header(sealed.header);
  sealed.frames.forEach((f, i) => opener.frame(i, f));
  return opener.finish();
}
