/**
 * Limits on everything that comes from a peer or a stick (invariant S2). They
 * are checked before decoding (message bytes) or right after it, before any
 * caller allocates from a declared size or count. The sender checks the same
 * limits when encoding, so it never sends what a receiver with the defaults
 * would refuse.
 */

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;
/** Room for the envelope around a frame's data (seq, offset, tags, lengths). */
const FRAME_OVERHEAD = 1024;

export interface Limits {
  /** Largest encoded envelope accepted, checked before decoding. Default 8 MiB. */
  readonly maxMessageBytes: number;
  /**
   * Largest handshake envelope (Hello, Challenge, Auth); `maxMessageBytes`
   * when that is smaller. Before a peer has authenticated, the assembler reads
   * at most four times this from it, all messages together. Default 4 KiB.
   */
  readonly maxHandshakeBytes: number;
  /** Largest `PieceData.data`. Default 4 MiB. */
  readonly maxFrameBytes: number;
  /** Largest piece data (sum of its extent sizes), on the wire and in a bundle. Default 256 MiB. */
  readonly maxPieceBytes: number;
  /** Most extents in one piece. Default 65 536. */
  readonly maxExtentsPerPiece: number;
  /** Most delta ranges in one piece. Default 131 072 (two per extent: the gaps between extents may be bad). */
  readonly maxDeltaRanges: number;
  /** Most `finished` ranges in a Welcome. Default 1 048 576 (maxMessageBytes usually binds first). */
  readonly maxFinishedRanges: number;
  /** Most sequence numbers in a Welcome's `mergedSeqs` or a Receipt's `merged` and `rejected`. Default 1 048 576. */
  readonly maxSeqs: number;
  /** Longest text field, in UTF-8 bytes. Default 4 KiB. */
  readonly maxStringBytes: number;
  /** Shortest nonce. Default 16 bytes. */
  readonly minNonceBytes: number;
  /** Longest nonce. Default 64 bytes. */
  readonly maxNonceBytes: number;
  /** Largest `manifest.json` in a bundle. Default 16 MiB. */
  readonly maxManifestBytes: number;
  /** Most pieces in one bundle. Default 4096. */
  readonly maxPiecesPerBundle: number;
  /** Largest bundle written: FAT32 holds files up to 4 GiB - 1. Default 4 GiB - 1. */
  readonly maxBundleBytes: number;
}

/** The defaults, as documented on each field of `Limits`. */
export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxMessageBytes: 8 * MIB,
  maxHandshakeBytes: 4 * KIB,
  maxFrameBytes: 4 * MIB,
  maxPieceBytes: 256 * MIB,
  maxExtentsPerPiece: 65_536,
  maxDeltaRanges: 131_072,
  maxFinishedRanges: 1_048_576,
  maxSeqs: 1_048_576,
  maxStringBytes: 4 * KIB,
  minNonceBytes: 16,
  maxNonceBytes: 64,
  maxManifestBytes: 16 * MIB,
  maxPiecesPerBundle: 4096,
  maxBundleBytes: 4 * GIB - 1,
});

/**
 * `{ ...DEFAULT_LIMITS, ...overrides }`, checked once: every limit a positive
 * safe integer, `minNonceBytes ≤ maxNonceBytes`, `maxFrameBytes + 1024 ≤ maxMessageBytes`.
 * @throws RangeError for a limit that breaks these rules.
 */
export function resolveLimits(overrides: Partial<Limits> = {}): Limits {
  const limits: Limits = { ...DEFAULT_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`limit ${name} must be a positive integer, not ${String(value)}`);
  }
  if (limits.minNonceBytes > limits.maxNonceBytes) throw new RangeError('limit minNonceBytes must not exceed maxNonceBytes');
  if (limits.maxFrameBytes + FRAME_OVERHEAD > limits.maxMessageBytes) {
    throw new RangeError(`limit maxMessageBytes must be at least maxFrameBytes + ${FRAME_OVERHEAD} (a frame travels inside a message)`);
  }
  return Object.freeze(limits);
}
