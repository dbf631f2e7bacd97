import { createRequire } from 'node:module';

import xxhash from 'xxhash-wasm';

/**
 * xxh64 (seed 0), the checksum of every extent, frame header and manifest, from one of
 * two libraries:
 *
 * | library | where | 512 MiB here |
 * |---|---|---|
 * | `@node-rs/xxhash` 1.7.8: xxhash-rust, native (napi-rs), prebuilt binaries as npm packages per platform | wherever it loads | 44 ms |
 * | `xxhash-wasm` 1.1.0: WebAssembly, each slice copied into its memory first | the single executables (they hold no native code), a bundle without `node_modules`, `DDFERRY_XXH64=wasm` | 90 ms |
 *
 * Both give the same values (xxh64 is one function); every piece's data is hashed once
 * on PC_A and once on PC_B, so this is most of the checksum's share of a LAN's or an
 * import's CPU. All functions below are synchronous: the native binding is required and
 * the WebAssembly module instantiated (only where needed) when this module loads.
 */
interface NativeXxh64 {
  xxh64(input: Uint8Array, seed?: bigint): bigint;
  Xxh64: new (seed?: bigint) => { update(input: Uint8Array): unknown; digest(): bigint };
}

function loadNative(): NativeXxh64 | null {
  if (process.env.DDFERRY_XXH64 === 'wasm') return null;
  try {
    return createRequire(import.meta.url)('@node-rs/xxhash') as NativeXxh64;
  } catch {
    return null;
  }
}

const native = loadNative();
const api = native === null ? await xxhash() : null;

/** Which library computes xxh64 in this process (`DDFERRY_XXH64=wasm` asks for WebAssembly). */
export const XXH64_LIBRARY: 'native' | 'wasm' = native === null ? 'wasm' : 'native';

/**
 * Input is handed to WebAssembly in slices of at most this many bytes: its
 * memory grows to the largest slice and never shrinks, so large pieces must
 * not be hashed in one call. 256 KiB slices stay in the CPU's cache while they
 * are copied in and hashed: 256 MiB hash in 37.5 ms against 41.7 ms in 4 MiB
 * slices here (65 against 47 ms on a slower machine), and the module's memory
 * stays small. The native library takes any size at once.
 */
export const XXH64_SLICE_BYTES = 256 * 1024;

/** An incremental xxh64: `update` any number of times, then `digest` once. */
export interface Xxh64Hasher {
  update(data: Uint8Array): Xxh64Hasher;
  digest(): bigint;
}

/** A fresh incremental hasher; `update` accepts any size (fed to WebAssembly in slices). */
export function createXxh64(): Xxh64Hasher {
  const inner: { update(data: Uint8Array): unknown; digest(): bigint } = native !== null ? new native.Xxh64(0n) : api!.create64(0n);
  const slice = native !== null ? Number.POSITIVE_INFINITY : XXH64_SLICE_BYTES;
  const hasher: Xxh64Hasher = {
    update(data) {
      if (data.length <= slice) inner.update(data);
      else for (let at = 0; at < data.length; at += slice) inner.update(data.subarray(at, Math.min(data.length, at + slice)));
      return hasher;
    },
    digest() {
      return inner.digest();
    },
  };
  return hasher;
}

/** xxh64 of `data` with seed 0, as an unsigned 64-bit bigint. */
export function xxh64(data: Uint8Array): bigint {
  if (native !== null) return native.xxh64(data, 0n);
  if (data.length <= XXH64_SLICE_BYTES) return api!.h64Raw(data, 0n);
  return createXxh64().update(data).digest();
}

/** `h` as 16 lowercase hexadecimal digits (the form used in bundle manifests). */
export function hexOf(h: bigint): string {
  if (h < 0n || h > 0xffff_ffff_ffff_ffffn) throw new RangeError(`not an unsigned 64-bit value: ${h}`);
  return h.toString(16).padStart(16, '0');
}

/** The value of 16 lowercase hexadecimal digits, or `undefined` for anything else. */
export function parseHex64(text: string): bigint | undefined {
  return /^[0-9a-f]{16}$/.test(text) ? BigInt(`0x${text}`) : undefined;
}
