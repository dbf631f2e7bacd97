/**
 * Buffers whose memory is aligned for O_DIRECT reads (ddrescue's `-d`).
 *
 * Node gives no say over where a Buffer's bytes live: measured on Node 20.20 (x86-64),
 * `Buffer.allocUnsafeSlow`, `Buffer.alloc` and `new ArrayBuffer` start at addresses that
 * are only 16-byte aligned (1 MiB ones at page + 16, i.e. glibc's malloc header), so an
 * O_DIRECT `pread` into them fails with EINVAL.
 *
 * The memory of a `WebAssembly.Memory` is reserved by V8 with mmap, aligned to the
 * WebAssembly page (64 KiB): every one of several thousand allocations measured started
 * at an address ≡ 0 mod 65536. A Buffer over it therefore suits any alignment up to
 * 64 KiB, with no native code, no install step and nothing to build. Alternatives
 * measured (1 GiB sequential O_DIRECT reads, ext4 file and a 4096-byte-sector loop device;
 * all within run-to-run noise of each other and of `dd iflag=direct`, e.g. 1 MiB reads on
 * the loop device, medians of 3: this 759 MB/s, posix_memalign addon 806, dd 655):
 * - a native addon (`@ronomon/direct-io` `getAlignedBuffer`, or our own `posix_memalign`
 *   N-API addon) is as fast but needs node-gyp at install, and its memory is freed only
 *   when the event loop turns (a synchronous loop of 8192 1 MiB allocations reached 8 GiB
 *   of RSS; this stays under 130 MiB);
 * - over-allocating a plain Buffer and probing O_DIRECT reads for an offset that works
 *   only finds the alignment the kernel enforces (512 here, even on the 4096-byte-sector
 *   device), not the 4096 asked for, and needs a readable sector of the failing source.
 *
 * Caveats: each buffer reserves about 10 GiB of address space (V8's guard regions), so
 * allocation fails under an address-space limit (`ulimit -v`) below that, and at most
 * ~13,000 can be live at once (the 128 TiB user address space); the buffers are freed by
 * the garbage collector as usual. The memory is rounded up to 64 KiB and never shrinks,
 * so allocate per buffer, not one growing arena.
 */

/** The smallest alignment accepted: a 512-byte logical sector. */
export const MIN_ALIGNMENT = 512;
/** The largest alignment accepted: one WebAssembly page, the alignment of its memory. */
export const MAX_ALIGNMENT = 65536;
/** The largest size accepted (2 GiB): far beyond any read block, within V8's 4 GiB memory limit. */
export const MAX_ALIGNED_SIZE = 2 ** 31;

const WASM_PAGE = 65536;

/** The part of `WebAssembly.Memory` used here (the project's `lib` and @types/node 20 lack WebAssembly). */
interface WasmMemoryConstructor {
  new (descriptor: { initial: number; maximum?: number }): { readonly buffer: ArrayBuffer };
}
const WasmMemory = (globalThis as unknown as { WebAssembly: { Memory: WasmMemoryConstructor } }).WebAssembly.Memory;

/**
 * A zero-filled Buffer of `size` bytes whose first byte sits at an address that is a
 * multiple of `alignment` (a power of two from 512 to 65536), fit for O_DIRECT reads.
 * Its `byteOffset` is 0; its `buffer` is the whole WebAssembly memory (rounded up to
 * 64 KiB). Keep the Buffer itself, not a copy: `Buffer.from(buf)` is not aligned.
 *
 * @throws RangeError for a bad size or alignment, or when the memory cannot be reserved.
 */
export function allocAligned(size: number, alignment: number): Buffer {
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_ALIGNED_SIZE) {
    throw new RangeError(`aligned buffer size must be an integer from 0 to ${MAX_ALIGNED_SIZE}, got ${size}`);
  }
  if (
    !Number.isSafeInteger(alignment) ||
    alignment < MIN_ALIGNMENT ||
    alignment > MAX_ALIGNMENT ||
    (alignment & (alignment - 1)) !== 0
  ) {
    throw new RangeError(
      `alignment must be a power of two from ${MIN_ALIGNMENT} to ${MAX_ALIGNMENT}, got ${alignment}`,
    );
  }
  const pages = Math.max(1, Math.ceil(size / WASM_PAGE));
  let memory: InstanceType<WasmMemoryConstructor>;
  try {
    memory = new WasmMemory({ initial: pages, maximum: pages });
  } catch (cause) {
    throw new RangeError(
      `cannot reserve ${size} bytes of aligned memory for direct I/O ` +
        '(is the address space limited, e.g. by `ulimit -v`? each buffer reserves about 10 GiB of it)',
      { cause },
    );
  }
  return Buffer.from(memory.buffer, 0, size);
}
