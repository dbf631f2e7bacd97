/**
 * Bytes of the buffer `raiseMallocThresholds` drops: just under glibc's
 * `DEFAULT_MMAP_THRESHOLD_MAX` (32 MiB on 64-bit), over which free() leaves the
 * thresholds alone.
 */
const PRIMER_BYTES = 31 << 20;

let raised = false;

/**
 * Have glibc's malloc keep freed memory for the next buffers instead of giving
 * it back to the kernel and faulting it in again (mallopt(3): "M_MMAP_THRESHOLD
 * … dynamic"). By default a buffer over 128 KiB is mapped and unmapped on its
 * own, and the heap's top is trimmed at 128 KiB; once free() releases a mapped
 * chunk, glibc raises the mmap threshold to that chunk's size and the trim
 * threshold to twice it. ddferry's buffers (frames of 4 MiB, ciphers' outputs,
 * sockets' reads) are freed by the garbage collector in bursts, so every byte
 * that crosses a process was faulted in again, at 3 to 6 µs a page here: this
 * allocates one mapped buffer of 31 MiB and drops it; the collector frees it
 * within the first collections. Measured on an import of 256 MiB: page faults
 * 116 000 → 78 000, CPU 3.1 → 2.4 s. Other allocators ignore it; the memory
 * kept is at most 62 MiB of the process's freed heap.
 */
export function raiseMallocThresholds(): void {
  if (raised) return;
  raised = true;
  const primer = Buffer.allocUnsafeSlow(PRIMER_BYTES);
  primer[0] = 1; // touched, so it is a real mapping
}
