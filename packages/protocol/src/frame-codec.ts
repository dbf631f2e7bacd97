import { ProtocolError } from './errors.js';
import { droppedBuffers } from './young-garbage.js';
import { zstdCompress, zstdCompressSync, zstdDecompressBounded } from './zstd.js';

/**
 * How a frame's raw bytes travel inside its seal (docs/seal.md, "Frame encodings").
 * Each frame is encoded on its own; the sealed header records, per frame, its
 * encoding and the bytes it carries. The raw size of frame i is fixed by the
 * header: `min(frameSize, dataSize - i * frameSize)`.
 *
 * | encoding | carries | chosen when |
 * |---|---|---|
 * | `FRAME_RAW` (0) | the raw bytes | nothing else saves `MIN_SAVING` of them |
 * | `FRAME_ZERO` (1) | nothing | every byte is 0 |
 * | `FRAME_ZSTD` (2) | one zstd frame (no dictionary) | it is at least `MIN_SAVING` smaller |
 */
export const FRAME_RAW = 0;
export const FRAME_ZERO = 1;
export const FRAME_ZSTD = 2;
export type FrameEncoding = typeof FRAME_RAW | typeof FRAME_ZERO | typeof FRAME_ZSTD;

/** True for a byte a sealed header may give as a frame's encoding. */
export function isFrameEncoding(n: number): n is FrameEncoding {
  return n === FRAME_RAW || n === FRAME_ZERO || n === FRAME_ZSTD;
}

/**
 * The largest raw size / carried bytes of a zstd frame. zstd's densest block is an
 * RLE block (3 + 1 bytes for up to 128 KiB), so no valid frame reaches it; a header
 * announcing more is refused (`ERR_SEAL_FRAME_BOMB`) before any frame is read.
 */
export const MAX_FRAME_RATIO = 32_768;
/** A compressed frame must save at least this share of its raw bytes, else it goes raw. */
export const MIN_SAVING = 0.03;
/** The default zstd level. */
export const DEFAULT_ZSTD_LEVEL = 3;

/** A frame's encoding and the bytes it carries. */
export interface EncodedFrame {
  readonly encoding: FrameEncoding;
  readonly bytes: Uint8Array;
}

export interface FrameEncodeOptions {
  /**
   * `zstd` (default): zero runs, zstd where it saves `MIN_SAVING`, raw otherwise.
   * `none`: every frame raw, every byte carried (for comparisons).
   */
  readonly compression?: 'zstd' | 'none' | undefined;
  /** zstd level, 1 to 19. Default 3. */
  readonly level?: number | undefined;
}

/** Where a frame comes from, for errors. */
export interface FrameContext {
  readonly file?: string | undefined;
  readonly peer?: string | undefined;
  readonly seq?: number | undefined;
}

const ZEROS = new Uint8Array(1 << 20);
const EMPTY = new Uint8Array(0);
/** Frames whose samples save less than this are sent raw without compressing them whole. */
const SAMPLE_SAVING = 0.03;
const SAMPLES = 8;
const SAMPLE_BYTES = 8192;

/** True if every byte of `data` is 0 (memcmp against a zero page, about memory speed). */
export function isAllZero(data: Uint8Array): boolean {
  const b = Buffer.from(data.buffer, data.byteOffset, data.length);
  for (let at = 0; at < b.length; at += ZEROS.length) {
    const n = Math.min(ZEROS.length, b.length - at);
    if (!b.subarray(at, at + n).equals(ZEROS.subarray(0, n))) return false;
  }
  return true;
}

/**
 * Eight 8 KiB slices spread over the frame, compressed together at level 1: a frame
 * of random data (photos, archives, encrypted volumes) is known incompressible for
 * 1.6 % of the price of compressing it whole.
 */
function looksIncompressible(data: Uint8Array): boolean {
  if (data.length < 4 * SAMPLES * SAMPLE_BYTES) return false;
  const sample = Buffer.allocUnsafe(SAMPLES * SAMPLE_BYTES);
  const step = Math.floor((data.length - SAMPLE_BYTES) / (SAMPLES - 1));
  for (let i = 0; i < SAMPLES; i++) sample.set(data.subarray(i * step, i * step + SAMPLE_BYTES), i * SAMPLE_BYTES);
  return zstdCompressSync(sample, 1).length > sample.length * (1 - SAMPLE_SAVING);
}

function levelOf(options: FrameEncodeOptions): number {
  const level = options.level ?? DEFAULT_ZSTD_LEVEL;
  if (!Number.isInteger(level) || level < 1 || level > 19) throw new RangeError(`zstd level must be an integer from 1 to 19, not ${String(level)}`);
  return level;
}

function pick(data: Uint8Array, zstd: Uint8Array | undefined): EncodedFrame {
  if (zstd !== undefined && zstd.length <= data.length * (1 - MIN_SAVING) && zstd.length * MAX_FRAME_RATIO >= data.length) return { encoding: FRAME_ZSTD, bytes: zstd };
  return { encoding: FRAME_RAW, bytes: data };
}

/** What to try for `data`: a zero run, raw at once, or zstd at a level. */
function plan(data: Uint8Array, options: FrameEncodeOptions): EncodedFrame | number {
  const level = levelOf(options);
  if ((options.compression ?? 'zstd') === 'none') return { encoding: FRAME_RAW, bytes: data };
  if (data.length > 0 && isAllZero(data)) return { encoding: FRAME_ZERO, bytes: EMPTY };
  if (looksIncompressible(data)) return { encoding: FRAME_RAW, bytes: data };
  return level;
}

/** Encode one frame on this thread (see the module comment). `data` is kept, not copied, when it goes raw. */
export function encodeFrameSync(data: Uint8Array, options: FrameEncodeOptions = {}): EncodedFrame {
  const p = plan(data, options);
  return typeof p === 'number' ? pick(data, zstdCompressSync(data, p)) : p;
}

/** Encode one frame, compressing in libuv's thread pool; `data` must not change until it settles. */
export async function encodeFrame(data: Uint8Array, options: FrameEncodeOptions = {}): Promise<EncodedFrame> {
  const p = plan(data, options);
  return typeof p === 'number' ? pick(data, await zstdCompress(data, p)) : p;
}

function frameFail(code: 'ERR_SEAL_FRAME_CORRUPT' | 'ERR_SEAL_FRAME_BOMB' | 'ERR_SEAL_FRAME_RAW_SIZE', index: number, text: string, where: FrameContext, cause?: unknown): never {
  throw new ProtocolError(code, `Frame ${index}: ${text}`, { file: where.file, peer: where.peer, seq: where.seq, cause });
}

const ZSTD_MAGIC = 0xfd2fb528;
const ZSTD_BLOCK_MAX = 128 * 1024;

/**
 * Walk a zstd frame's header and block headers without decoding anything, so
 * that what the decoder is given is one frame, whole, with no dictionary, whose
 * content size (when it says one) is the frame's raw size.
 *
 * | found | refused with |
 * |---|---|
 * | not a zstd frame: magic, reserved bit, a dictionary id, a reserved block type, a block over its maximum, truncated, bytes after the frame | `ERR_SEAL_FRAME_CORRUPT` |
 * | a content size over `maxFrameBytes`, or raw and RLE blocks alone over the raw size | `ERR_SEAL_FRAME_BOMB` |
 * | a content size other than the raw size, or blocks that cannot make that many bytes | `ERR_SEAL_FRAME_RAW_SIZE` |
 */
export function checkZstdFrame(frame: Uint8Array, rawSize: number, maxFrameBytes: number, index: number, where: FrameContext): void {
  const corrupt = (text: string): never => frameFail('ERR_SEAL_FRAME_CORRUPT', index, `${text}: not a zstd frame ddferry makes.`, where);
  const b = frame;
  if (b.length < 6) corrupt(`${b.length} bytes`);
  if ((b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0 !== ZSTD_MAGIC) corrupt('no zstd magic number');
  const fhd = b[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  if ((fhd & 0x08) !== 0) corrupt('a reserved bit is set');
  if ((fhd & 0x03) !== 0) corrupt('it needs a dictionary');
  let at = 5;
  let window = 0;
  if (single === 0) {
    const wd = b[at++]!;
    const base = 2 ** (10 + (wd >> 3));
    window = base + (base / 8) * (wd & 7);
  }
  const fcsBytes = [single, 2, 4, 8][fcsFlag]!;
  if (at + fcsBytes > b.length) corrupt('truncated header');
  if (fcsBytes > 0) {
    let fcs = 0;
    for (let i = fcsBytes - 1; i >= 0; i--) fcs = fcs * 256 + b[at + i]!;
    if (fcsBytes === 2) fcs += 256;
    at += fcsBytes;
    if (fcs > maxFrameBytes) frameFail('ERR_SEAL_FRAME_BOMB', index, `the zstd frame says it holds ${fcs} bytes; a frame holds at most ${maxFrameBytes}.`, where);
    if (fcs !== rawSize) frameFail('ERR_SEAL_FRAME_RAW_SIZE', index, `the zstd frame says it holds ${fcs} bytes; the frame's raw size is ${rawSize}.`, where);
    if (single === 1) window = fcs;
  }
  const blockMax = Math.min(window, ZSTD_BLOCK_MAX);
  let sure = 0;
  let most = 0;
  for (;;) {
    if (at + 3 > b.length) corrupt('truncated block header');
    const h = b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16);
    at += 3;
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 3) corrupt('a reserved block type');
    if (size > blockMax) corrupt(`a block of ${size} bytes (at most ${blockMax})`);
    if (type === 2) {
      most += blockMax;
      at += size;
    } else {
      sure += size;
      most += size;
      at += type === 0 ? size : 1;
    }
    if (at > b.length) corrupt('truncated block');
    if (sure > rawSize) frameFail('ERR_SEAL_FRAME_BOMB', index, `its zstd blocks make more than the frame's raw size of ${rawSize} bytes.`, where);
    if ((h & 1) === 1) break;
  }
  if ((fhd & 0x04) !== 0) at += 4;
  if (at !== b.length) corrupt(at > b.length ? 'truncated checksum' : `${b.length - at} bytes after the zstd frame`);
  if (most < rawSize) frameFail('ERR_SEAL_FRAME_RAW_SIZE', index, `its zstd blocks make at most ${most} bytes; the frame's raw size is ${rawSize}.`, where);
}

/**
 * Decode an opened (authenticated) frame into `into` (exactly its raw size), or
 * return the decoded bytes when `into` is undefined. Nothing beyond the raw size
 * is allocated or written, whatever the frame says (`checkZstdFrame` first,
 * then a bounded one-shot decode).
 * @throws ProtocolError `ERR_SEAL_FRAME_CORRUPT`, `ERR_SEAL_FRAME_BOMB`, `ERR_SEAL_FRAME_RAW_SIZE`.
 */
export function decodeFrame(encoding: FrameEncoding, bytes: Uint8Array, rawSize: number, into: Uint8Array | undefined, maxFrameBytes: number, index: number, where: FrameContext): Uint8Array {
  if (into !== undefined && into.length !== rawSize) throw new Error(`internal: frame ${index} decodes into ${into.length} bytes, not ${rawSize}`);
  if (encoding === FRAME_ZERO) {
    if (bytes.length !== 0) frameFail('ERR_SEAL_FRAME_CORRUPT', index, `a zero run carries ${bytes.length} bytes.`, where);
    if (into === undefined) return new Uint8Array(rawSize);
    return into.fill(0);
  }
  if (encoding === FRAME_RAW) {
    if (bytes.length !== rawSize) frameFail('ERR_SEAL_FRAME_RAW_SIZE', index, `a raw frame of ${bytes.length} bytes; its raw size is ${rawSize}.`, where);
    if (into === undefined) return bytes;
    into.set(bytes);
    return into;
  }
  checkZstdFrame(bytes, rawSize, maxFrameBytes, index, where);
  let out: Uint8Array;
  try {
    out = zstdDecompressBounded(bytes, rawSize);
  } catch (err) {
    if ((err as { tooLarge?: boolean }).tooLarge === true) frameFail('ERR_SEAL_FRAME_BOMB', index, `the zstd frame decodes to more than its raw size of ${rawSize} bytes.`, where, err);
    return frameFail('ERR_SEAL_FRAME_CORRUPT', index, `the zstd frame does not decode (${(err as Error).message}).`, where, err);
  }
  if (out.length !== rawSize) frameFail('ERR_SEAL_FRAME_RAW_SIZE', index, `the zstd frame decodes to ${out.length} bytes; its raw size is ${rawSize}.`, where);
  if (into === undefined) return out;
  into.set(out);
  // the decoder's own copy is garbage now: a 4 MiB frame a time, 16 token holders' frames
  // piled up 150 MiB of them over --max-memory before the collector came
  droppedBuffers(out.length);
  return into;
}
