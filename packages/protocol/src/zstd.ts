import { createRequire } from 'node:module';

import { compress as wasmCompress, decompress, init } from '@bokuweb/zstd-wasm';
import type { Encoder } from '@toondepauw/node-zstd';

/**
 * The two zstd libraries, each for what it does best (docs/seal.md, "Compression"):
 *
 * | job | library | why |
 * |---|---|---|
 * | compress (PC_A, our own data) | `@toondepauw/node-zstd` 2.0.0: libzstd 1.5.7 native (napi-rs), prebuilt binaries as npm packages per platform | native speed; `encode` runs in libuv's thread pool, so the frames of a piece compress on every core without a worker pool |
 * | decompress (PC_B, bytes a token holder may have crafted) | `@bokuweb/zstd-wasm` 0.0.27: libzstd in WebAssembly | one-shot `ZSTD_decompress` into a buffer of the frame's declared raw size: it never writes or allocates beyond it (the native binding streams into a growing buffer) |
 *
 * WebAssembly is compiled once when the package loads (top-level await), so both
 * sides are synchronous here. The native binding is loaded on the first compression
 * only: PC_B never loads it. Where it cannot load (the single executables hold no
 * native code), zstd-wasm compresses: the same frames, on the main thread, slower.
 */
await init();

const encoders = new Map<number, Encoder>();
/** The native binding's encoder class; null where it cannot load (a single executable, a bundle without node_modules). */
let EncoderClass: typeof Encoder | null | undefined;

/** The native encoder for `level`, or undefined where the binding is not there: WebAssembly's zstd compresses instead (slower, same frames). */
function encoderFor(level: number): Encoder | undefined {
  let e = encoders.get(level);
  if (e === undefined) {
    if (EncoderClass === undefined) {
      try {
        EncoderClass = (createRequire(import.meta.url)('@toondepauw/node-zstd') as { Encoder: typeof Encoder }).Encoder;
      } catch {
        EncoderClass = null;
      }
    }
    if (EncoderClass === null) return undefined;
    e = new EncoderClass(level);
    encoders.set(level, e);
  }
  return e;
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
}

/** One zstd frame of `data` at `level`, on this thread. */
export function zstdCompressSync(data: Uint8Array, level: number): Uint8Array {
  return encoderFor(level)?.encodeSync(asBuffer(data)) ?? wasmCompress(asBuffer(data), level);
}

/** One zstd frame of `data` at `level`, made in libuv's thread pool. `data` must not change meanwhile. */
export function zstdCompress(data: Uint8Array, level: number): Promise<Uint8Array> {
  const e = encoderFor(level);
  if (e === undefined) return Promise.resolve().then(() => wasmCompress(asBuffer(data), level));
  return e.encode(asBuffer(data));
}

/**
 * Decode one zstd frame into at most `capacity` bytes (the frame's raw size),
 * allocating no more than that (plus the frame itself) whatever the frame says.
 * @returns the decoded bytes (`length` may be less than `capacity`).
 * @throws Error when the frame does not decode, or decodes to more than `capacity`
 *   (`tooLarge` true: libzstd's dstSize_tooSmall).
 */
export function zstdDecompressBounded(frame: Uint8Array, capacity: number): Uint8Array {
  try {
    return decompress(frame, { defaultHeapSize: capacity });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // libzstd's error codes are stable (zstd_errors.h): 70 is dstSize_tooSmall
    throw Object.assign(new Error(`zstd: ${message}`), { tooLarge: /code -70$/.test(message) });
  }
}
