/**
 * The checksums the scanned structures carry: CRC-32 (GPT headers and entry arrays),
 * CRC-32C as ext4 uses it (no final inversion) and the CRC-16 of ext4's `gdt_csum`.
 */

function table(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; ++i) {
    let c = i;
    for (let k = 0; k < 8; ++k) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
}

const CRC32 = table(0xedb88320);
const CRC32C = table(0x82f63b78);
const CRC16 = table(0xa001);

function update(t: Uint32Array, crc: number, bytes: Uint8Array): number {
  let c = crc >>> 0;
  for (let i = 0; i < bytes.length; ++i) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/** CRC-32 (IEEE 802.3, zlib's), as the GPT header and entry array use it. */
export function crc32(bytes: Uint8Array): number {
  return (update(CRC32, 0xffffffff, bytes) ^ 0xffffffff) >>> 0;
}

/** ext4's `ext4_chksum`: CRC-32C from `seed`, without the final inversion. */
export function crc32c(seed: number, bytes: Uint8Array): number {
  return update(CRC32C, seed, bytes);
}

/** The CRC-16 (poly 0x8005 reflected) of ext4's `gdt_csum` group descriptor checksums. */
export function crc16(seed: number, bytes: Uint8Array): number {
  return update(CRC16, seed & 0xffff, bytes) & 0xffff;
}
