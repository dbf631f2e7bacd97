import { pipeline } from 'node:stream/promises';

import tar from 'tar-stream';

import { ProtocolError } from './errors.js';
import { DEFAULT_LIMITS } from './limits.js';
import type { Limits } from './limits.js';
import { MANIFEST_NAME, formatManifest, parseManifest, pieceEntryName } from './manifest.js';
import type { BundleManifest, PieceDescription } from './manifest.js';
import { checkPieceShape, validatePiece, verifyPieceData } from './piece.js';
import type { Piece, PiecePlan } from './piece.js';

/**
 * Bundles: one or more pieces as a tar stream, for carrying on a stick.
 * Entries, in order: `manifest.json` (see `formatManifest`), then
 * `piece-000123.bin` for each piece of the manifest, in the manifest's order,
 * each holding the piece's data. All entries are regular files.
 */

const TAR_BLOCK = 512;
/** Entries carry this time, so the same pieces always give the same bytes. */
const MTIME = new Date(0);

function padded(size: number): number {
  return Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
}

export interface WriteBundleOptions {
  /** Default `DEFAULT_LIMITS`: nothing is written that a reader with these limits would refuse. */
  readonly limits?: Limits;
  readonly signal?: AbortSignal;
  /** End `writable` when done (default true). Pass false to fsync a file stream's descriptor before closing it. */
  readonly end?: boolean;
}

/**
 * Write pieces (all of one rescue) as a bundle into `writable`, honouring its
 * backpressure. Everything is checked before the first byte is written.
 * @returns the bundle's size in bytes.
 * @throws ProtocolError `ERR_BUNDLE_EMPTY`, `ERR_BUNDLE_MIXED_RESCUES`,
 *   `ERR_BUNDLE_DUPLICATE_SEQ`, `ERR_BUNDLE_TOO_LARGE`, `ERR_BUNDLE_ENTRY_TOO_LARGE`,
 *   and `ERR_PIECE_*` for a piece of bad shape; the errors of `writable`.
 */
export async function writeBundle(pieces: Piece | readonly Piece[], writable: NodeJS.WritableStream, options: WriteBundleOptions = {}): Promise<number> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const list: readonly Piece[] = Array.isArray(pieces) ? pieces : [pieces as Piece];
  const first = list[0];
  if (first === undefined) throw new ProtocolError('ERR_BUNDLE_EMPTY', 'No piece to write.');
  if (list.length > limits.maxPiecesPerBundle) {
    throw new ProtocolError('ERR_BUNDLE_TOO_LARGE', `${list.length} pieces; at most ${limits.maxPiecesPerBundle} go in one bundle.`, { limit: limits.maxPiecesPerBundle });
  }
  const seqs = new Set<number>();
  for (const p of list) {
    if (p.rescueId !== first.rescueId) throw new ProtocolError('ERR_BUNDLE_MIXED_RESCUES', `Rescue ${p.rescueId} and rescue ${first.rescueId} in one bundle.`, { seq: p.seq });
    if (seqs.has(p.seq)) throw new ProtocolError('ERR_BUNDLE_DUPLICATE_SEQ', 'The piece is given twice.', { seq: p.seq });
    seqs.add(p.seq);
    checkPieceShape(p);
    if (p.data.length > limits.maxPieceBytes || p.extents.length > limits.maxExtentsPerPiece || p.delta.length > limits.maxDeltaRanges) {
      throw new ProtocolError('ERR_BUNDLE_ENTRY_TOO_LARGE', `The piece (${p.data.length} bytes, ${p.extents.length} extents, ${p.delta.length} delta ranges) exceeds the limits.`, { seq: p.seq });
    }
    const sum = p.extents.reduce((s, e) => s + e.size, 0);
    if (sum !== p.data.length) throw new ProtocolError('ERR_PIECE_SIZE_MISMATCH', `The extents hold ${sum} bytes but the data has ${p.data.length}.`, { seq: p.seq });
  }
  const manifest = Buffer.from(formatManifest(first.rescueId, list), 'utf8');
  if (manifest.length > limits.maxManifestBytes) {
    throw new ProtocolError('ERR_BUNDLE_ENTRY_TOO_LARGE', `The manifest would have ${manifest.length} bytes; at most ${limits.maxManifestBytes} are accepted.`, { limit: limits.maxManifestBytes });
  }
  const total = TAR_BLOCK + padded(manifest.length) + list.reduce((s, p) => s + TAR_BLOCK + padded(p.data.length), 0) + 2 * TAR_BLOCK;
  if (total > limits.maxBundleBytes) {
    throw new ProtocolError('ERR_BUNDLE_TOO_LARGE', `The bundle would have ${total} bytes; at most ${limits.maxBundleBytes} are allowed.`, { limit: limits.maxBundleBytes });
  }
  const pack = tar.pack();
  const done = pipeline(pack, writable, { signal: options.signal, end: options.end ?? true });
  pack.entry({ name: MANIFEST_NAME, mode: 0o644, mtime: MTIME, type: 'file' }, manifest);
  for (const p of list) {
    pack.entry({ name: pieceEntryName(p.seq), mode: 0o644, mtime: MTIME, type: 'file' }, Buffer.from(p.data.buffer, p.data.byteOffset, p.data.length));
  }
  pack.finalize();
  await done;
  return total;
}

export interface ReadBundleOptions {
  /** Default `DEFAULT_LIMITS`. */
  readonly limits?: Limits;
  /** The bundle's path, named in errors. */
  readonly file?: string;
  /** When given, each piece is also checked against the plan (`validatePiece`). */
  readonly plan?: PiecePlan;
  /**
   * Called once with the checked manifest (checksum, fields, rescue, piece
   * shapes), before any piece data is read. If it throws, reading stops and the
   * error propagates unchanged: a caller can refuse a bundle by its manifest.
   */
  readonly onManifest?: (manifest: BundleManifest) => void;
  /**
   * Let a piece's data be a view of the source's memory where its bytes lie
   * in one buffer (no copy). Only for a source that never reuses the memory of
   * what it yielded while the pieces are in use, and whose chunks are about the
   * pieces' size (a view keeps its whole buffer alive). Default false: each
   * piece gets its own copy.
   */
  readonly shareSource?: boolean;
}

/** Why a path is unsafe to even consider, or undefined. */
function unsafePath(name: string): string | undefined {
  if (name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:/.test(name)) return 'an absolute path';
  if (name.split(/[\\/]/).includes('..')) return 'a path with ".."';
  if (name.includes('\0')) return 'a path with a NUL byte';
  return undefined;
}

/** Errors of the tar stream itself; system errors (EIO on the stick) pass unchanged. */
function wrapStreamError(err: unknown, file: string | undefined): unknown {
  if (err instanceof ProtocolError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return err;
  return new ProtocolError('ERR_BUNDLE_MALFORMED', `Cannot read the bundle as tar (${err instanceof Error ? err.message : String(err)}).`, { file, cause: err });
}

/**
 * The bytes of an entry. tar-stream hands out slices of the source's chunks.
 * With `share`, while they follow each other in one buffer (a source that reads
 * a whole bundle into one buffer, in one or several reads), the entry is a view
 * of that buffer and nothing is copied; otherwise it is copied into its own.
 */
async function readEntry(entry: AsyncIterable<unknown>, size: number, name: string, file: string | undefined, share = false): Promise<Uint8Array> {
  let view: Uint8Array | undefined;
  let data: Uint8Array | undefined;
  let at = 0;
  for await (const chunk of entry) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError('tar entries yield bytes');
    if (at + chunk.length > size) throw new ProtocolError('ERR_BUNDLE_SIZE_MISMATCH', `${name} holds more than its ${size} bytes.`, { file });
    if (!share && data === undefined) data = new Uint8Array(size);
    if (data === undefined && view === undefined) view = chunk;
    else if (data === undefined && view !== undefined && chunk.buffer === view.buffer && chunk.byteOffset === view.byteOffset + view.length) {
      view = new Uint8Array(view.buffer, view.byteOffset, view.length + chunk.length);
    } else {
      if (data === undefined) {
        data = new Uint8Array(size);
        data.set(view!, 0);
        view = undefined;
      }
      data.set(chunk, at);
    }
    at += chunk.length;
  }
  if (at !== size) throw new ProtocolError('ERR_BUNDLE_SIZE_MISMATCH', `${name} holds ${at} bytes, not ${size}.`, { file });
  return data ?? view ?? new Uint8Array(0);
}

/**
 * Read a bundle from an untrusted stick, yielding its pieces one by one, each
 * fully checked before it is yielded: memory stays within one piece
 * (`maxPieceBytes`) plus the manifest (`maxManifestBytes`). Every entry header
 * is checked before its data is read: its path (no absolute path, no `..`), its
 * type (regular file only), its name (the next one the manifest expects) and
 * its size (the limits and the manifest). A piece yielded before a later entry
 * fails is sound on its own: merging it is safe.
 * @throws ProtocolError `ERR_BUNDLE_*`, `ERR_PIECE_*`; system errors of `source` unchanged.
 */
export async function* readBundle(source: NodeJS.ReadableStream | AsyncIterable<Uint8Array>, options: ReadBundleOptions = {}): AsyncGenerator<Piece, void, undefined> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const { file, plan } = options;
  const extract = tar.extract();
  let streamError: unknown;
  const piping = pipeline(source, extract).then(
    () => undefined,
    (err: unknown) => {
      streamError = err;
    },
  );
  let rescueId: string | undefined;
  let expected: PieceDescription[] | undefined;
  let next = 0;
  let callerError: { err: unknown } | undefined;
  try {
    try {
      for await (const entry of extract) {
        const { header } = entry;
        const name = header.name;
        const unsafe = unsafePath(name);
        if (unsafe !== undefined) throw new ProtocolError('ERR_BUNDLE_UNSAFE_PATH', `Entry "${name.slice(0, 200)}" is ${unsafe}.`, { file });
        if (header.type !== 'file') throw new ProtocolError('ERR_BUNDLE_ENTRY_TYPE', `Entry "${name}" is a ${header.type ?? 'unknown'} entry, not a regular file.`, { file });
        const size = header.size ?? 0;
        if (expected === undefined) {
          if (name !== MANIFEST_NAME) throw new ProtocolError('ERR_BUNDLE_UNEXPECTED_ENTRY', `The first entry is "${name}", not ${MANIFEST_NAME}.`, { file });
          if (size > limits.maxManifestBytes) {
            throw new ProtocolError('ERR_BUNDLE_ENTRY_TOO_LARGE', `${MANIFEST_NAME} has ${size} bytes; at most ${limits.maxManifestBytes} are accepted.`, { file, limit: limits.maxManifestBytes });
          }
          const text = Buffer.from(await readEntry(entry, size, name, file)).toString('utf8');
          const manifest = parseManifest(text, limits, file);
          rescueId = manifest.rescueId;
          expected = [...manifest.pieces];
          if (plan?.rescueId !== undefined && rescueId !== plan.rescueId) {
            throw new ProtocolError('ERR_PIECE_WRONG_RESCUE', `The bundle belongs to rescue ${rescueId}, not to this rescue ${plan.rescueId}.`, { file });
          }
          for (const p of expected) checkPieceShape({ rescueId, ...p, data: new Uint8Array(0) }, { file });
          try {
            options.onManifest?.(manifest);
          } catch (err) {
            callerError = { err };
            throw err;
          }
          continue;
        }
        const want = expected[next];
        if (want === undefined || name !== pieceEntryName(want.seq)) {
          throw new ProtocolError('ERR_BUNDLE_UNEXPECTED_ENTRY', `Entry "${name.slice(0, 200)}" is not ${want === undefined ? 'expected: the manifest lists no more pieces' : pieceEntryName(want.seq)}.`, { file });
        }
        if (size > limits.maxPieceBytes) {
          throw new ProtocolError('ERR_BUNDLE_ENTRY_TOO_LARGE', `${name} has ${size} bytes; at most ${limits.maxPieceBytes} are accepted.`, { file, seq: want.seq, limit: limits.maxPieceBytes });
        }
        if (size !== want.dataSize) throw new ProtocolError('ERR_BUNDLE_SIZE_MISMATCH', `${name} has ${size} bytes but the manifest says ${want.dataSize}.`, { file, seq: want.seq });
        const piece: Piece = {
          rescueId: rescueId ?? '', seq: want.seq, chunk: want.chunk, extents: want.extents, delta: want.delta,
          data: await readEntry(entry, size, name, file, options.shareSource === true),
        };
        if (plan !== undefined) validatePiece(piece, plan, { file });
        else verifyPieceData(piece, { file });
        next++;
        yield piece;
      }
    } catch (err) {
      if (callerError !== undefined && callerError.err === err) throw err;
      throw wrapStreamError(err, file);
    }
    await piping;
    if (streamError !== undefined) throw wrapStreamError(streamError, file);
    if (expected === undefined) throw new ProtocolError('ERR_BUNDLE_MISSING_ENTRY', `The bundle has no ${MANIFEST_NAME}.`, { file });
    const missing = expected[next];
    if (missing !== undefined) throw new ProtocolError('ERR_BUNDLE_MISSING_ENTRY', `The bundle ends before ${pieceEntryName(missing.seq)} (${expected.length - next} of ${expected.length} pieces missing).`, { file, seq: missing.seq });
  } finally {
    extract.destroy();
    await piping;
  }
}
