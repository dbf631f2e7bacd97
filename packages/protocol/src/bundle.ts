import { pipeline } from 'node:stream/promises';

import tar from 'tar-stream';

import { ProtocolError } from './errors.js';
import type { RescueKeys } from './keys.js';
import { DEFAULT_LIMITS, MAX_SEQ } from './limits.js';
import type { Limits } from './limits.js';
import type { OpenedPiece, PiecePlan } from './piece.js';
import { headerHashOf, PieceOpener, readSealedHeaderFields, TAG_BYTES } from './seal.js';
import type { OpenedHeader, SealedFrame, SealedPiece } from './seal.js';

/**
 * Bundles: one or more sealed pieces as a tar stream, for carrying on a stick.
 * Entries, in order, for each piece: `piece-000123.header` (its sealed header),
 * then `piece-000123.frame-000000`, `…frame-000001`, … (its sealed frames: each
 * its ciphertext then its 16-byte tag). All entries are regular files. Nothing
 * in a bundle is readable without the rescue's keys, and nothing of it is
 * trusted before it authenticates (docs/seal.md).
 */

const TAR_BLOCK = 512;
/** Entries carry this time, so the same pieces always give the same bytes. */
const MTIME = new Date(0);
const ENTRY_NAME = /^piece-(\d{6,15})\.(?:header|frame-(\d{6,15}))$/;

function padded(size: number): number {
  return Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
}

/** The entry of piece `seq`'s sealed header: `piece-000123.header` (at least 6 digits). */
export function headerEntryName(seq: number): string {
  return `piece-${String(seq).padStart(6, '0')}.header`;
}

/** The entry of frame `index` of piece `seq`: `piece-000123.frame-000000`. */
export function frameEntryName(seq: number, index: number): string {
  return `piece-${String(seq).padStart(6, '0')}.frame-${String(index).padStart(6, '0')}`;
}

export interface WriteBundleOptions {
  /** Default `DEFAULT_LIMITS`: nothing is written that a reader with these limits would refuse. */
  readonly limits?: Limits;
  readonly signal?: AbortSignal;
  /** End `writable` when done (default true). Pass false to fsync a file stream's descriptor before closing it. */
  readonly end?: boolean;
}

/** The size of a bundle holding `pieces` (what `writeBundle` writes). */
export function bundleSize(pieces: readonly SealedPiece[]): number {
  let total = 2 * TAR_BLOCK;
  for (const p of pieces) {
    total += TAR_BLOCK + padded(p.header.length);
    for (const f of p.frames) total += TAR_BLOCK + padded(f.ciphertext.length + f.tag.length);
  }
  return total;
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length);
}

/**
 * Write sealed pieces (all of one rescue) as a bundle into `writable`,
 * honouring its backpressure. Everything is checked before the first byte is
 * written; the pieces are written as they are (no copy).
 * @returns the bundle's size in bytes.
 * @throws ProtocolError `ERR_BUNDLE_EMPTY`, `ERR_BUNDLE_MIXED_RESCUES`,
 *   `ERR_BUNDLE_DUPLICATE_SEQ`, `ERR_BUNDLE_TOO_LARGE`, `ERR_BUNDLE_ENTRY_TOO_LARGE`;
 *   the errors of `writable`.
 */
export async function writeBundle(pieces: SealedPiece | readonly SealedPiece[], writable: NodeJS.WritableStream, options: WriteBundleOptions = {}): Promise<number> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const list: readonly SealedPiece[] = Array.isArray(pieces) ? pieces : [pieces as SealedPiece];
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
    if (p.header.length > limits.maxHeaderBytes || p.dataSize > limits.maxPieceBytes || p.frames.some((f) => f.ciphertext.length > limits.maxFrameBytes || f.tag.length !== TAG_BYTES)) {
      throw new ProtocolError('ERR_BUNDLE_ENTRY_TOO_LARGE', `The piece (a ${p.header.length}-byte header, ${p.dataSize} bytes of data in ${p.frames.length} frames) exceeds the limits.`, { seq: p.seq });
    }
  }
  const total = bundleSize(list);
  if (total > limits.maxBundleBytes) {
    throw new ProtocolError('ERR_BUNDLE_TOO_LARGE', `The bundle would have ${total} bytes; at most ${limits.maxBundleBytes} are allowed.`, { limit: limits.maxBundleBytes });
  }
  const pack = tar.pack();
  const done = pipeline(pack, writable, { signal: options.signal, end: options.end ?? true });
  for (const p of list) {
    pack.entry({ name: headerEntryName(p.seq), mode: 0o644, mtime: MTIME, type: 'file' }, asBuffer(p.header));
    p.frames.forEach((f, i) => {
      const sink = pack.entry({ name: frameEntryName(p.seq, i), mode: 0o644, mtime: MTIME, type: 'file', size: f.ciphertext.length + f.tag.length });
      sink.write(asBuffer(f.ciphertext));
      sink.end(asBuffer(f.tag));
    });
  }
  pack.finalize();
  await done;
  return total;
}

export interface ReadSealedBundleOptions {
  /** Default `DEFAULT_LIMITS`. */
  readonly limits?: Limits;
  /** The bundle's path, named in errors. */
  readonly file?: string;
  /**
   * Let entries be views of the source's memory where their bytes lie in one
   * buffer (no copy). Only for a source that never reuses the memory of what it
   * yielded while the pieces are in use, and whose chunks are about the
   * pieces' size (a view keeps its whole buffer alive). Default false: each
   * entry gets its own copy.
   */
  readonly shareSource?: boolean;
}

export interface ReadBundleOptions extends ReadSealedBundleOptions {
  /** The rescue's keys (`deriveRescueKeys`). */
  readonly keys: RescueKeys;
  /** Every piece is checked against the plan (its rescue must be the keys'). */
  readonly plan: PiecePlan;
  /**
   * Called with each piece's header once it is authenticated and checked
   * against the plan, before its frames are read. Return `'skip'` to pass over
   * its frames (read, not decrypted, not yielded: a piece merged before). If it
   * throws, reading stops and the error propagates unchanged: a caller can
   * refuse a bundle by a piece's header.
   */
  readonly onHeader?: ((header: OpenedHeader) => 'skip' | undefined) | undefined;
  /**
   * Where each piece's data comes from (not zeroed; default new memory): a pool of the
   * buffers of pieces merged before saves the page faults of fresh memory.
   */
  readonly alloc?: ((size: number) => Uint8Array) | undefined;
  /**
   * With `shareSource`: the source's memory is the pieces' (see `PieceOpener`'s
   * `inPlace`): frames are deciphered in place and each piece's data is a view of
   * the source's buffer, to be kept until the piece is used. Default false.
   */
  readonly inPlace?: boolean | undefined;
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

/** One entry of a bundle, its name and size checked, to be read or drained before the next. */
interface BundleEntry {
  readonly kind: 'header' | 'frame';
  readonly name: string;
  readonly seq: number;
  /** Frame index (0 for a header). */
  readonly index: number;
  readonly size: number;
  read(): Promise<Uint8Array>;
  drain(): Promise<void>;
}

/**
 * The entries of a bundle, each checked before its data is read: path (no
 * absolute path, no `..`), type (regular file), name (a header, or the next
 * frame of the piece whose header came last), size (the limits). The caller
 * must `read` or `drain` each entry before asking for the next.
 */
async function* bundleEntries(source: NodeJS.ReadableStream | AsyncIterable<Uint8Array>, options: ReadSealedBundleOptions): AsyncGenerator<BundleEntry, void, undefined> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const { file } = options;
  const extract = tar.extract();
  let streamError: unknown;
  const piping = pipeline(source, extract).then(
    () => undefined,
    (err: unknown) => {
      streamError = err;
    },
  );
  let seq: number | undefined;
  let nextFrame = 0;
  let pieces = 0;
  const seen = new Set<number>();
  let entries = 0;
  try {
    try {
      for await (const entry of extract) {
        const { header } = entry;
        const name = header.name;
        const unsafe = unsafePath(name);
        if (unsafe !== undefined) throw new ProtocolError('ERR_BUNDLE_UNSAFE_PATH', `Entry "${name.slice(0, 200)}" is ${unsafe}.`, { file });
        if (header.type !== 'file') throw new ProtocolError('ERR_BUNDLE_ENTRY_TYPE', `Entry "${name}" is a ${header.type ?? 'unknown'} entry, not a regular file.`, { file });
        const size = header.size ?? 0;
        const m = ENTRY_NAME.exec(name);
        const named = m === null ? undefined : Number(m[1]);
        if (m === null || named === undefined || !Number.isSafeInteger(named) || named < 1 || named > MAX_SEQ) {
          throw new ProtocolError('ERR_BUNDLE_UNEXPECTED_ENTRY', `Entry "${name.slice(0, 200)}" is not a piece's header or frame.`, { file });
        }
        ++entries;
        let item: Omit<BundleEntry, 'read' | 'drain'>;
        if (m[2] === undefined) {
          if (seen.has(named)) throw new ProtocolError('ERR_BUNDLE_DUPLICATE_SEQ', `${name} comes a second time.`, { file, seq: named });
          if (++pieces > limits.maxPiecesPerBundle) {
            throw new ProtocolError('ERR_BUNDLE_TOO_LARGE', `The bundle holds more than ${limits.maxPiecesPerBundle} pieces.`, { file, limit: limits.maxPiecesPerBundle });
          }
          if (size > limits.maxHeaderBytes) {
            throw new ProtocolError('ERR_BUNDLE_ENTRY_TOO_LARGE', `${name} has ${size} bytes; at most ${limits.maxHeaderBytes} are accepted.`, { file, seq: named, limit: limits.maxHeaderBytes });
          }
          seen.add(named);
          seq = named;
          nextFrame = 0;
          item = { kind: 'header', name, seq: named, index: 0, size };
        } else {
          const index = Number(m[2]);
          if (seq === undefined || named !== seq || index !== nextFrame) {
            const want = seq === undefined ? 'a header' : `${headerEntryName(seq + 1).replace(/\d+/, '…')} or ${frameEntryName(seq, nextFrame)}`;
            throw new ProtocolError('ERR_BUNDLE_UNEXPECTED_ENTRY', `Entry "${name}" comes where ${want} was expected.`, { file, seq: named });
          }
          if (size > limits.maxFrameBytes + TAG_BYTES) {
            throw new ProtocolError('ERR_BUNDLE_ENTRY_TOO_LARGE', `${name} has ${size} bytes; at most ${limits.maxFrameBytes + TAG_BYTES} are accepted.`, { file, seq, limit: limits.maxFrameBytes });
          }
          ++nextFrame;
          item = { kind: 'frame', name, seq, index, size };
        }
        let used = false;
        yield {
          ...item,
          read: async () => {
            used = true;
            try {
              return await readEntry(entry, size, name, file, options.shareSource === true);
            } catch (err) {
              throw wrapStreamError(err, file);
            }
          },
          drain: async () => {
            used = true;
            let at = 0;
            try {
              for await (const chunk of entry) at += (chunk as Uint8Array).length;
            } catch (err) {
              throw wrapStreamError(err, file);
            }
            if (at !== size) throw new ProtocolError('ERR_BUNDLE_SIZE_MISMATCH', `${name} holds ${at} bytes, not ${size}.`, { file });
          },
        };
        if (!used) throw new Error('internal: a bundle entry was neither read nor drained');
      }
    } catch (err) {
      throw wrapStreamError(err, file);
    }
    await piping;
    if (streamError !== undefined) throw wrapStreamError(streamError, file);
    if (entries === 0) throw new ProtocolError('ERR_BUNDLE_MISSING_ENTRY', 'The bundle holds no piece.', { file });
  } finally {
    extract.destroy();
    await piping;
  }
}

/**
 * Read a bundle's sealed pieces as they are, without keys: each entry's name,
 * type and size are checked (see `readBundle`) and each header's routing fields
 * (`readSealedHeaderFields`), but nothing is authenticated: open the pieces
 * (`openSealedPiece`) before using what they say. For a reader sending its own
 * spooled pieces on. Memory: one sealed piece.
 * @throws ProtocolError `ERR_BUNDLE_*`, `ERR_SEAL_MALFORMED`, `ERR_PIECE_BAD_SEQ`;
 *   system errors of `source` unchanged.
 */
export async function* readSealedBundle(source: NodeJS.ReadableStream | AsyncIterable<Uint8Array>, options: ReadSealedBundleOptions = {}): AsyncGenerator<SealedPiece, void, undefined> {
  const { file } = options;
  let open: { rescueId: string; seq: number; header: Uint8Array; headerHash: string; frames: SealedFrame[]; dataSize: number } | undefined;
  for await (const e of bundleEntries(source, options)) {
    if (e.kind === 'header') {
      if (open !== undefined) yield open;
      const header = await e.read();
      const fields = readSealedHeaderFields(header, { file });
      if (fields.seq !== e.seq) throw new ProtocolError('ERR_BUNDLE_UNEXPECTED_ENTRY', `${e.name} holds the header of piece ${fields.seq}.`, { file, seq: e.seq });
      open = { rescueId: fields.rescueId, seq: fields.seq, header, headerHash: headerHashOf(header), frames: [], dataSize: 0 };
      continue;
    }
    const bytes = await e.read();
    // a zero run's sealed frame is its tag alone
    if (bytes.length < TAG_BYTES) throw new ProtocolError('ERR_BUNDLE_SIZE_MISMATCH', `${e.name} has ${bytes.length} bytes: a sealed frame has at least ${TAG_BYTES}.`, { file, seq: e.seq });
    open!.frames.push({ ciphertext: bytes.subarray(0, bytes.length - TAG_BYTES), tag: bytes.subarray(bytes.length - TAG_BYTES) });
    open!.dataSize += bytes.length - TAG_BYTES;
  }
  if (open !== undefined) yield open;
}

/**
 * Read a bundle from an untrusted stick, yielding its pieces one by one, each
 * opened and fully checked before it is yielded (`PieceOpener`): every entry
 * header is checked before its data is read (path, type, name, size against
 * the limits and, for a frame, against its authenticated header); each sealed
 * header authenticates and is checked against the plan before its frames are
 * read; each frame authenticates before its plaintext is used; each extent's
 * xxh64 is checked. Memory: one piece (`maxPieceBytes`) plus one entry. A piece
 * yielded before a later entry fails is sound on its own: merging it is safe.
 * @throws ProtocolError `ERR_BUNDLE_*`, `ERR_SEAL_*`, `ERR_PIECE_*`, `ERR_PROTO_*`
 *   (a header over the limits); the errors of `onHeader` unchanged; system
 *   errors of `source` unchanged.
 */
export async function* readBundle(source: NodeJS.ReadableStream | AsyncIterable<Uint8Array>, options: ReadBundleOptions): AsyncGenerator<OpenedPiece, void, undefined> {
  const { file } = options;
  const opener = new PieceOpener({
    keys: options.keys, plan: options.plan, limits: options.limits, file, alloc: options.alloc, inPlace: options.inPlace === true && options.shareSource === true,
  });
  /** The open piece: its header, frames read so far, and whether it is skipped. */
  let open: { header: OpenedHeader; frames: number; skip: boolean } | undefined;
  const missing = (o: { header: OpenedHeader; frames: number }): ProtocolError => new ProtocolError(
    'ERR_BUNDLE_MISSING_ENTRY', `The bundle ends after ${o.frames} of the ${o.header.frameCount} frames of piece ${o.header.seq}.`, { file, seq: o.header.seq },
  );
  for await (const e of bundleEntries(source, options)) {
    if (e.kind === 'header') {
      if (open !== undefined) throw missing(open);
      const header = opener.header(await e.read());
      if (header.seq !== e.seq) throw new ProtocolError('ERR_BUNDLE_UNEXPECTED_ENTRY', `${e.name} holds the header of piece ${header.seq}.`, { file, seq: e.seq });
      const skip = options.onHeader?.(header) === 'skip';
      open = { header, frames: 0, skip };
    } else {
      if (open === undefined || open.frames >= open.header.frameCount) {
        throw new ProtocolError('ERR_BUNDLE_UNEXPECTED_ENTRY', `Entry "${e.name}" is a frame the piece's header does not announce.`, { file, seq: e.seq });
      }
      const want = opener.sealedFrameBytes(e.index);
      if (e.size !== want) throw new ProtocolError('ERR_BUNDLE_SIZE_MISMATCH', `${e.name} has ${e.size} bytes; its header announces ${want}.`, { file, seq: e.seq });
      if (open.skip) await e.drain();
      else opener.frame(e.index, await e.read());
      ++open.frames;
    }
    if (open !== undefined && open.frames === open.header.frameCount) {
      const { skip } = open;
      open = undefined;
      if (skip) opener.reset();
      else yield opener.finish();
    }
  }
  if (open !== undefined) throw missing(open);
}
