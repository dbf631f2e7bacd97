// The benches' deterministic random numbers (mulberry32), shared by the parent and its children.

/** mulberry32: small, fast, deterministic. Returns a uint32 generator. */
export function makeRng(seed) {
  let a = seed >>> 0;
  const u32 = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  /** Uniform double in [0, 1) with 53 random bits. */
  const unit = () => ((u32() >>> 5) * 67108864 + (u32() >>> 6)) / 9007199254740992;
  /** Uniform integer in [0, n), n below 2^53. */
  const below = (n) => Math.floor(unit() * n);
  return { u32, unit, below };
}
