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
/** Room for the envelope around a frame's data or a sealed header (seq, index, tags, lengths, GCM tag). */
const FRAME_OVERHEAD = 1024;
/** The most bytes a piece reference (seq up to 2^40, 16-byte header hash) takes in a message. */
const PIECE_REF_BYTES = 32;

/**
 * The largest sequence number (2^40): a reader numbering a piece a second for
 * 30 000 years stays below it. Larger ones, on the wire, in a sealed header or
 * in a bundle's name, are refused before anything changes (a seq near 2^53
 * would leave the counter no room).
 */
export const MAX_SEQ = 2 ** 40;

export interface Limits {
  /** Largest encoded envelope accepted, checked before decoding. Default 8 MiB. */
  readonly maxMessageBytes: number;
  /**
   * Largest handshake envelope (Hello, Challenge, Auth); `maxMessageBytes`
   * when that is smaller. Before a peer has authenticated, the assembler reads
   * at most four times this from it, all messages together. Default 4 KiB.
   */
  readonly maxHandshakeBytes: number;
  /** Largest frame of piece data (before sealing; a sealed frame has 16 bytes more). Default 4 MiB. */
  readonly maxFrameBytes: number;
  /**
   * Largest sealed header (on the wire and in a bundle), checked before it is read.
   * Default 6 MiB (the default extent and delta limits need at most about 4.5 MiB), or
   * `maxMessageBytes` − 1 KiB when that is less (a header travels inside a message).
   */
  readonly maxHeaderBytes: number;
  /** Largest piece data (sum of its extent sizes), on the wire and in a bundle. Default 256 MiB. */
  readonly maxPieceBytes: number;
  /** Most extents in one piece. Default 65 536. */
  readonly maxExtentsPerPiece: number;
  /** Most delta ranges in one piece. Default 131 072 (two per extent: the gaps between extents may be bad). */
  readonly maxDeltaRanges: number;
  /** Most `finished` ranges in a Welcome. Default 1 048 576 (maxMessageBytes usually binds first). */
  readonly maxFinishedRanges: number;
  /** Most sequence numbers in a Query, an Answer, or a Receipt's `merged` and `rejected`. Default 1 048 576. */
  readonly maxSeqs: number;
  /** Longest text field, in UTF-8 bytes. Default 4 KiB. */
  readonly maxStringBytes: number;
  /** Shortest nonce. Default 16 bytes. */
  readonly minNonceBytes: number;
  /** Longest nonce. Default 64 bytes. */
  readonly maxNonceBytes: number;
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
  maxHeaderBytes: 6 * MIB,
  maxPieceBytes: 256 * MIB,
  maxExtentsPerPiece: 65_536,
  maxDeltaRanges: 131_072,
  maxFinishedRanges: 1_048_576,
  maxSeqs: 1_048_576,
  maxStringBytes: 4 * KIB,
  minNonceBytes: 16,
  maxNonceBytes: 64,
  maxPiecesPerBundle: 4096,
  maxBundleBytes: 4 * GIB - 1,
});

/**
 * How many piece references (`PieceRef`) one Receipt or Answer may carry under
 * `limits`: `maxSeqs`, and no more than fit in `maxMessageBytes`. Senders cut
 * longer lists into several messages.
 */
export function pieceRefsPerMessage(limits: Limits): number {
  return Math.max(1, Math.min(limits.maxSeqs, Math.floor((limits.maxMessageBytes - FRAME_OVERHEAD) / PIECE_REF_BYTES)));
}

/**
 * `{ ...DEFAULT_LIMITS, ...overrides }`, checked once: every limit a positive
 * safe integer, `minNonceBytes ≤ maxNonceBytes`, `maxFrameBytes + 1024 ≤ maxMessageBytes`,
 * `maxHeaderBytes + 1024 ≤ maxMessageBytes`.
 * @throws RangeError for a limit that breaks these rules.
 */
export function resolveLimits(overrides: Partial<Limits> = {}): Limits {
  const merged: Limits = { ...DEFAULT_LIMITS, ...overrides };
  const limits: Limits = overrides.maxHeaderBytes === undefined
    ? { ...merged, maxHeaderBytes: Math.min(DEFAULT_LIMITS.maxHeaderBytes, merged.maxMessageBytes - FRAME_OVERHEAD) }
    : merged;
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`limit ${name} must be a positive integer, not ${String(value)}`);
  }
  if (limits.minNonceBytes > limits.maxNonceBytes) throw new RangeError('limit minNonceBytes must not exceed maxNonceBytes');
  if (limits.maxFrameBytes + FRAME_OVERHEAD > limits.maxMessageBytes) {
    throw new RangeError(`limit maxMessageBytes must be at least maxFrameBytes + ${FRAME_OVERHEAD} (a frame travels inside a message)`);
  }
  if (limits.maxHeaderBytes + FRAME_OVERHEAD > limits.maxMessageBytes) {
    throw new RangeError(`limit maxMessageBytes must be at least maxHeaderBytes + ${FRAME_OVERHEAD} (a sealed header travels inside a message)`);
  }
  return Object.freeze(limits);
}
