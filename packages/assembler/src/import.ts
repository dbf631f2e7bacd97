/**
 * Importing a stick: merge the bundles the reader left in
 * `DIR/ddferry/<rescue-id>/` into the image bound to that rescue, and write a
 * receipt next to them.
 *
 * Pieces on a stick are sealed (docs/seal.md of the protocol): the import
 * needs the rescue's token (`secret`) to open them. Each bundle, in seq order,
 * is checked whole before anything of it is merged:
 *
 * | check | refused with |
 * |---|---|
 * | a regular file of at most `maxBundleBytes` | `ERR_IMPORT_BUNDLE_NOT_FILE`, `ERR_BUNDLE_TOO_LARGE` |
 * | tar entries: plain names (no absolute path, no `..`), regular files, per piece its header then its frames in order, sizes | `ERR_BUNDLE_*` (`readBundle`) |
 * | each sealed header: seq 1 to 2^40, rescue id of the image, authenticated by the rescue's key (no forged, moved or altered piece) | `ERR_PIECE_BAD_SEQ`, `ERR_PIECE_WRONG_RESCUE`, `ERR_SEAL_*` |
 * | the file name carries the first piece's seq (no renamed or swapped bundle) | `ERR_STICK_BUNDLE_NAME` |
 * | a seq merged before names the same piece (same header hash, A4) | `ERR_PIECE_SEQ_CONFLICT` |
 * | every piece against the plan: chunk, positions inside chunk and source; every frame authenticated; every xxh64 | `ERR_PIECE_*`, `ERR_SEAL_FRAME_AUTH_FAILED` |
 *
 * A refused bundle merges nothing and becomes a rejection of the receipt; the
 * import goes on (the reader reads those ranges again). A piece merged before
 * under the same header hash is a harmless duplicate (A2): its frames are not
 * decrypted. Sound bundles go through the image's `MergeQueue` (one fsync and
 * one `IMAGE.map` save per round of batches, A1); the next bundle is read while one is
 * merged, within `maxHeldBytes`. The receipt (MACed with the rescue's receipt
 * key) names, by seq and header hash, every piece of the folder's bundles the
 * image holds: the reader frees a piece only when the hash is its piece's.
 *
 * A failure of PC_B itself (`ERR_IMAGE_WRITE`, `_SYNC`, `_SAVE`) is no
 * rejection: the import stops, writes the receipt of what is durable and
 * reports the error; the bundle stays on the stick for the next import. A
 * bundle the stick cannot read (EIO) is skipped, reported, and not refused.
 *
 * A stick too full for the receipt stops nothing: every bundle is merged
 * first (the receipt rewritten after each batch only while it fits), then the
 * final receipt is written. When it does not fit, its content is kept on PC_B
 * (`IMAGE.ddferry.receipt-<stick id>.json`, `pendingReceiptPath`) and the error
 * (`ERR_IMPORT_RECEIPT_WRITE`) names the bytes to free and the merged bundles
 * that may be deleted for them: the next import of that stick names their
 * pieces from the kept copy (each checked against the image's merged pieces),
 * so PC_A frees them rather than reading them again, and deletes the copy once
 * its receipt is on the stick. Older receipts of this import's stick that the
 * new one covers (every piece and refusal they name) are then deleted, so a
 * stick holds one receipt however often it is imported.
 */
import { lstat, readdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';

import { saveMapfile } from '@ddferry/mapfile/io';
import type { Limits, OpenedHeader, OpenedPiece, PiecePlan, Receipt, ReceiptRejection, RescueKeys, Secret, StickRescue, StickSpace } from '@ddferry/protocol';
import {
  bundleSeqOf, DEFAULT_LIMITS, deriveRescueKeys, formatReceipt, isProtocolError, MAX_STICK_FILE_BYTES, openSafeFile, parseReceipt, printable, ProtocolError, readBundle,
  readSafeFile, readSafeFileInto, RECEIPT_NAME, RecycledBuffers,
} from '@ddferry/protocol';

import { BufferPool } from './buffer-pool.js';
import { AssemblerError, errnoOf, messageOf } from './errors.js';
import type { Image } from './image.js';
import type { MergeLimits } from './merge.js';
import { MergeQueue, seqConflict } from './merge.js';
import { type ReceiptShortfall, ReceiptWriter } from './receipt-writer.js';
import { pickStickRescue } from './stick-rescue.js';

const MIB = 1024 * 1024;
/** Longest reason kept in a receipt (its texts hold at most 4096 characters). */
const MAX_REASON = 2000;
const READ_CHUNK = 4 * MIB;
/** The first read of a bundle held in memory: enough for its first sealed header. */
const FIRST_READ = 256 * 1024;
/**
 * Default `maxHeldBytes`: two bundles of the largest stick pieces (32 MiB), one merging
 * while the next is read and checked. Merged pieces' buffers, as many bytes, are kept
 * for the next pieces: a new page costs more here than the byte's decryption (import of
 * 256 MiB: 96 MiB held and 32 MiB kept, 2.4 s and 79k page faults; 64 and 64, 1.9 s and 44k).
 */
const DEFAULT_MAX_HELD = 64 * MIB;

/** The file `path` as a stream, opened as `openSafeFile` does (no link followed, regular files only). */
async function readSafely(path: string, highWaterMark: number): Promise<Readable> {
  const handle = await openSafeFile(path, { what: 'the bundle' });
  return handle.createReadStream({ highWaterMark });
}

/** What happened to one bundle, as `onBundle` is told. */
export interface BundleEvent {
  /** File name in the rescue folder. */
  readonly bundle: string;
  /** 1-based position among the bundles found, and how many were found. */
  readonly index: number;
  readonly total: number;
  /**
   * `merged`: durable in the image; `refused`: a rejection of the receipt;
   * `skipped`: every piece was merged before; `unreadable`: the stick failed (not refused).
   */
  readonly outcome: 'merged' | 'refused' | 'skipped' | 'unreadable';
  /** Pieces and piece data bytes merged now (0 unless `merged`). */
  readonly pieces: number;
  readonly bytes: number;
  /** For `refused` and `unreadable`. */
  readonly code?: string;
  readonly reason?: string;
}

export interface ImportOptions {
  /** The shared token (`readTokenFile`): the rescue's keys open the sealed pieces and sign the receipt. */
  readonly secret: Secret;
  /** `--rescue ID`: the rescue to import when the stick holds several. */
  readonly rescueId?: string | undefined;
  /** Default `DEFAULT_LIMITS` of the protocol. */
  readonly limits?: Limits | undefined;
  /** Merge batches; default `DEFAULT_MERGE_LIMITS` (64 pieces, 64 MiB). */
  readonly merge?: Partial<MergeLimits> | undefined;
  /**
   * Most bundle bytes held in memory, being checked or waiting to be merged
   * (read-ahead). A larger bundle is read twice: checked whole, then read
   * again piece by piece while merging. Default 96 MiB (three bundles of
   * 32 MiB, the largest a reader writes onto a stick).
   */
  readonly maxHeldBytes?: number | undefined;
  /** Stop at the next bundle (finishing the merge in progress, writing the receipt). */
  readonly signal?: AbortSignal | undefined;
  /** Told of each bundle's outcome, when it is known (merged: once durable). */
  readonly onBundle?: ((event: BundleEvent) => void) | undefined;
  /** Warnings (a file system without folder fsync, odd names in the folder). */
  readonly warn?: ((message: string) => void) | undefined;
  /** The receipt's `writer`. Default `HOSTNAME:/absolute/IMAGE`. */
  readonly writer?: string | undefined;
  /** Clock for the receipt's name and time. Default `new Date()`. */
  readonly now?: (() => Date) | undefined;
  /** The stick's space, for a receipt that may not fit (tests inject one). Default `statStickSpace`. */
  readonly space?: ((dir: string) => Promise<StickSpace>) | undefined;
}

/** What an import did. */
export interface ImportResult {
  readonly rescue: StickRescue;
  /** `DIR/ddferry/<rescue-id>`. */
  readonly folder: string;
  /** The receipt written (undefined only when it could not be written: see `error`). */
  readonly receipt: string | undefined;
  /** Bundles found. */
  readonly bundles: number;
  readonly merged: number;
  readonly refused: number;
  readonly skipped: number;
  readonly unreadable: number;
  /** Pieces and piece data bytes merged by this import. */
  readonly mergedPieces: number;
  readonly mergedBytes: number;
  readonly rejected: readonly ReceiptRejection[];
  /** `done`: every bundle was looked at; `aborted`: by `signal`; `failed`: see `error`. */
  readonly stopped: 'done' | 'aborted' | 'failed';
  /**
   * The failure that stopped the import (`ERR_IMAGE_WRITE`, `_SYNC`, `_SAVE`,
   * `ERR_IMPORT_RECEIPT_WRITE`), or, with `stopped: 'done'`, the first bundle
   * the stick could not read (`ERR_IMPORT_STICK_READ`).
   */
  readonly error: unknown;
}

/** Where an import keeps, on PC_B, the receipt it could not write onto the stick `stickId`. */
export function pendingReceiptPath(imagePath: string, stickId: string): string {
  return `${imagePath}.ddferry.receipt-${stickId}.json`;
}

interface BundleFile {
  readonly name: string;
  readonly seq: number;
  readonly path: string;
}

type Verdict =
  /** `buffer`: the pool's buffer the pieces' data were deciphered in (views of it), theirs until merged. */
  | { readonly kind: 'sound'; readonly pieces: readonly OpenedPiece[]; readonly buffer: Uint8Array | undefined }
  | { readonly kind: 'large' }
  | { readonly kind: 'skipped' }
  | { readonly kind: 'refused'; readonly rejection: ReceiptRejection }
  | { readonly kind: 'unreadable'; readonly error: AssemblerError };

function isSystemError(err: unknown): boolean {
  const code = errnoOf(err);
  return code !== undefined && /^E[A-Z0-9]+$/.test(code);
}

function isRefusal(err: unknown): err is ProtocolError {
  const code = errnoOf(err);
  return code !== undefined && /^ERR_(BUNDLE|PIECE|STICK|SEAL|PROTO|FILE)_/.test(code) && err instanceof Error;
}

function shortReason(err: unknown): string {
  const m = messageOf(err);
  return m.length <= MAX_REASON ? m : `${m.slice(0, MAX_REASON - 1)}…`;
}

/** The bundles of a rescue folder, by seq (other files and temporaries ignored). */
async function listBundles(folder: string, warn: (message: string) => void): Promise<BundleFile[]> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (err) {
    throw new AssemblerError('ERR_IMPORT_STICK_READ', folder, `Cannot list the rescue folder (${errnoOf(err) ?? messageOf(err)}). Check the stick is mounted and readable, then import again.`, { cause: err });
  }
  const out: BundleFile[] = [];
  for (const name of names) {
    const seq = bundleSeqOf(name);
    if (seq !== undefined) out.push({ name, seq, path: join(folder, name) });
    else if (/^piece-.*\.tar$/.test(name)) warn(`${join(folder, printable(name, 100))}: not a bundle name (piece-, six to fifteen digits of a seq from 1 to 2^40, .tar); ignored.`);
  }
  return out.sort((a, b) => a.seq - b.seq || (a.name < b.name ? -1 : 1));
}

/** The receipt an import before could not write onto the stick (kept on PC_B), or undefined. */
async function readPendingReceipt(path: string, keys: RescueKeys, warn: (message: string) => void): Promise<Receipt | undefined> {
  try {
    return parseReceipt((await readSafeFile(path, { maxBytes: MAX_STICK_FILE_BYTES, what: 'the kept receipt' })).toString('utf8'), keys, path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    warn(`${path}: ${messageOf(err)} It is ignored: the bundles it named that are gone from the stick are read again by PC_A.`);
    return undefined;
  }
}

/**
 * Delete the other receipts of the receipts folder of `path` that `receipt` covers: signed
 * with these keys, every piece they name named alike, every bundle they refuse refused.
 * Another token's or a damaged receipt is not ours: kept.
 */
async function removeSuperseded(path: string, keys: RescueKeys, receipt: Receipt, warn: (message: string) => void): Promise<void> {
  const dir = dirname(path);
  const merged = new Map(receipt.merged.map((p) => [p.seq, p.headerHash]));
  const refused = new Set(receipt.rejected.map((x) => x.bundle));
  for (const name of await readdir(dir)) {
    const file = join(dir, name);
    if (file === path || !RECEIPT_NAME.test(name)) continue;
    let old: Receipt;
    try {
      old = parseReceipt((await readSafeFile(file, { maxBytes: MAX_STICK_FILE_BYTES, what: 'the receipt' })).toString('utf8'), keys, file);
    } catch (err) {
      if (errnoOf(err)?.startsWith('ERR_') !== true) throw err;
      continue;
    }
    if (old.merged.every((p) => merged.get(p.seq) === p.headerHash) && old.rejected.every((x) => refused.has(x.bundle))) {
      await rm(file, { force: true }).catch((err: unknown) => warn(`${file}: not deleted (${messageOf(err)}); PC_A deletes it.`));
    }
  }
}

/**
 * Import the bundles of the stick mounted at `dir` into `image` (see the
 * module comment); the image is bound to the stick's rescue if it is not yet.
 * Returns once the last merge and the receipt are durable, or on a failure.
 * @throws AssemblerError before any merge: `ERR_IMPORT_NO_RESCUE`,
 *   `ERR_IMPORT_AMBIGUOUS`, `ERR_IMPORT_STICK_READ`, `ERR_IMAGE_WRONG_*`,
 *   `ERR_IMAGE_SAVE`; ProtocolError `ERR_STICK_BAD_RESCUE_FILE`,
 *   `ERR_FILE_SYMLINK` and `ERR_FILE_NOT_FOLDER` (the stick's `ddferry/` or
 *   the rescue's `receipts/` is a link or a file), `ERR_FILE_NOT_REGULAR` (its
 *   rescue.json is a FIFO…). Later failures are in the result's `error`.
 */
export async function importStick(dir: string, image: Image, options: ImportOptions): Promise<ImportResult> {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const maxHeld = Math.max(options.maxHeldBytes ?? DEFAULT_MAX_HELD, 1);
  const pool = new BufferPool(maxHeld);
  /** The data buffers of pieces merged, for the next pieces' data (new memory costs a page fault per page). */
  const recycled = new RecycledBuffers(maxHeld);
  const alloc = (size: number): Uint8Array => recycled.reuse(size) ?? Buffer.allocUnsafeSlow(size);
  const warn = options.warn ?? ((): void => undefined);
  const now = options.now ?? ((): Date => new Date());
  const { signal } = options;
  const picked = await pickStickRescue(dir, image, options.rescueId);
  const { rescue, folder } = picked;
  const keys: RescueKeys = deriveRescueKeys(options.secret, rescue.rescueId);
  const plan: PiecePlan = { rescueId: rescue.rescueId, sourceSize: image.size, sectorSize: rescue.sectorSize, chunks: image.plan! };
  const writer = options.writer ?? `${hostname()}:${resolve(image.path)}`.slice(0, 4000);
  const receipts = new ReceiptWriter(folder, keys, now(), warn, options.space);
  // receipts land only in the stick's own folder: refused before anything is merged
  await receipts.check();
  const queue = new MergeQueue(image, options.merge);
  const rejected: ReceiptRejection[] = [];
  /** Pieces of this folder's bundles the image holds under their own header hash: what the receipt names. */
  const held = new Map<number, string>();
  // what an import before could not write onto this stick: its pieces the image holds, its refusals
  const pendingPath = pendingReceiptPath(image.path, rescue.stickId);
  const pending = await readPendingReceipt(pendingPath, keys, warn);
  for (const p of pending?.merged ?? []) if (image.mergedHash(p.seq) === p.headerHash) held.set(p.seq, p.headerHash);
  const bundles = await listBundles(folder, warn);
  /** Bundles whose every piece the image holds, and their sizes: what may be deleted to make room for the receipt. */
  const mergedFiles = new Map<string, number>();
  const sizes = new Map<string, number>();
  const counts = { merged: 0, refused: 0, skipped: 0, unreadable: 0, mergedPieces: 0, mergedBytes: 0 };
  let failure: unknown;
  let firstUnreadable: AssemblerError | undefined;
  let receiptWritten = false;
  /** Aborted in the middle of a bundle read piece by piece. */
  let cut = false;

  const receipt = (): Receipt => {
    const named = new Set(rejected.map((x) => x.bundle));
    return {
      rescueId: rescue.rescueId,
      merged: [...held].sort((a, b) => a[0] - b[0]).map(([seq, headerHash]) => ({ seq, headerHash })),
      rejected: [...rejected, ...(pending?.rejected ?? []).filter((x) => !named.has(x.bundle))], writtenAt: now().toISOString(), writer,
    };
  };
  /** The first receipt write that failed for want of room (the merges go on; the last write says it). */
  let receiptError: unknown;
  const writeReceipt = async (): Promise<void> => {
    await receipts.write(receipt());
    receiptWritten = true;
  };
  /** A receipt of what is durable so far, while the stick has room for it: a kill -9 loses no receipt. */
  const writeReceiptSoFar = async (): Promise<void> => {
    if (receiptError !== undefined) return;
    try {
      await writeReceipt();
    } catch (err) {
      if (errnoOf(err) !== 'ERR_IMPORT_RECEIPT_WRITE') throw err;
      receiptError = err;
    }
  };
  const tell = (b: BundleFile, index: number, e: Omit<BundleEvent, 'bundle' | 'index' | 'total'>): void => {
    if (e.outcome === 'merged' || e.outcome === 'skipped') mergedFiles.set(b.name, sizes.get(b.name) ?? 0);
    options.onBundle?.({ bundle: b.name, index, total: bundles.length, ...e });
  };
  const refuse = (b: BundleFile, index: number, rejection: ReceiptRejection): void => {
    rejected.push(rejection);
    ++counts.refused;
    tell(b, index, { outcome: 'refused', pieces: 0, bytes: 0, code: rejection.code, reason: rejection.reason });
  };

  /**
   * What to do with an authenticated header (`readBundle`'s `onHeader`): a piece
   * merged before under the same hash is skipped (A2) and named by the receipt;
   * under another hash it refuses the bundle (A4).
   */
  const judge = (b: BundleFile, header: OpenedHeader): 'skip' | undefined => {
    const mergedHash = image.mergedHash(header.seq);
    if (mergedHash === undefined) return undefined;
    if (mergedHash !== header.headerHash) throw seqConflict(header, mergedHash, image.path, b.path);
    held.set(header.seq, header.headerHash);
    return 'skip';
  };

  /**
   * Merges in flight, oldest first: `released` settles once their memory is given back
   * (their pieces written, before the fsync, or the merge settled), `done` once durable
   * or failed (never rejects).
   */
  const inFlight: { readonly released: Promise<void>; readonly done: Promise<void> }[] = [];
  /** Bytes read and not given back yet: bundles' buffers and pieces' data. */
  let heldBytes = 0;
  const settleOldest = async (): Promise<void> => {
    const oldest = inFlight.shift();
    if (oldest !== undefined) await oldest.done;
  };
  const makeRoom = async (bytes: number): Promise<void> => {
    for (const m of [...inFlight]) {
      if (heldBytes + bytes <= maxHeld) return;
      await m.released;
    }
  };
  /**
   * Queue pieces of bundle `b` for merging; `after` runs once they are durable.
   * Their bytes (and `buffer`, the pool's buffer their data are views of) are
   * held until they are written (the fsync does not need them). A piece another
   * bundle of this import merged meanwhile under another hash is refused (A4):
   * the bundle gets a rejection, its other pieces stay merged.
   */
  const merge = (b: BundleFile, index: number, pieces: readonly OpenedPiece[], after: (pieces: number, bytes: number) => void, buffer?: Uint8Array): void => {
    const inBuffer = (p: OpenedPiece): boolean => buffer !== undefined && p.data.buffer === buffer.buffer;
    const bytes = (buffer?.length ?? 0) + pieces.reduce((s, p) => s + (inBuffer(p) ? 0 : p.data.length), 0);
    heldBytes += bytes;
    let isReleased = false;
    let onReleased: () => void = () => undefined;
    const released = new Promise<void>((r) => {
      onReleased = r;
    });
    /** Written (or failed, or refused): nothing uses their bytes any more. */
    const release = (): void => {
      if (isReleased) return;
      isReleased = true;
      heldBytes -= bytes;
      for (const p of pieces) if (!inBuffer(p)) recycled.keep(p.data);
      if (buffer !== undefined) pool.give(buffer);
      onReleased();
    };
    let unwritten = pieces.length;
    const written = (): void => {
      if (--unwritten === 0) release();
    };
    const done = Promise.allSettled(pieces.map((p) => queue.enqueue(p, written))).then(async (results) => {
      let n = 0;
      let k = 0;
      const conflicts: ProtocolError[] = [];
      results.forEach((r, i) => {
        const p = pieces[i]!;
        if (r.status === 'fulfilled') {
          held.set(p.seq, p.headerHash);
          ++n;
          k += p.data.length;
        } else if (isProtocolError(r.reason) && r.reason.code === 'ERR_PIECE_SEQ_CONFLICT') {
          conflicts.push(r.reason);
        } else {
          throw r.reason;
        }
      });
      counts.mergedPieces += n;
      counts.mergedBytes += k;
      const first = conflicts[0];
      if (first === undefined) after(n, k);
      else refuse(b, index, { bundle: b.name, seqs: conflicts.map((c) => c.seq!), code: first.code, reason: shortReason(first) });
      await writeReceiptSoFar();
    }).catch((err: unknown) => {
      failure ??= err;
    }).finally(release);
    inFlight.push({ released, done });
  };

  /** Read and check a whole bundle; hold its opened pieces when it fits in `maxHeld`. */
  const examine = async (b: BundleFile): Promise<Verdict> => {
    /** Seqs whose headers authenticated, for a rejection. */
    const seqs: number[] = [];
    let skipped = 0;
    /**
     * The pool's buffer of the bundle's sealed bytes: the sound pieces' data are deciphered
     * in it (`inPlace`), so it goes with them to the merge; else it is given back here.
     */
    let buffer: Uint8Array | undefined;
    try {
      const st = await lstat(b.path);
      if (!st.isFile()) {
        return { kind: 'refused', rejection: { bundle: b.name, seqs: [], code: 'ERR_IMPORT_BUNDLE_NOT_FILE', reason: `${b.path}: not a regular file (a link, a folder…); bundles are regular files written by ddferry-reader.` } };
      }
      if (st.size > limits.maxBundleBytes) {
        throw new ProtocolError('ERR_BUNDLE_TOO_LARGE', `The bundle has ${st.size} bytes; at most ${limits.maxBundleBytes} are accepted.`, { file: b.path, limit: limits.maxBundleBytes });
      }
      const hold = st.size <= maxHeld;
      const pieces: OpenedPiece[] = [];
      // held: read into a buffer of the pool, the sealed entries are views of it (no copy);
      // else each read allocates highWaterMark bytes: no more than the file needs (GC)
      buffer = hold ? pool.take(st.size) : undefined;
      const source = buffer !== undefined ? readSafeFileInto(b.path, buffer, { what: 'the bundle', firstBytes: FIRST_READ, chunkBytes: READ_CHUNK }) : await readSafely(b.path, Math.max(64 * 1024, Math.min(READ_CHUNK, st.size)));
      for await (const piece of readBundle(source, {
        keys, plan, limits, file: b.path, shareSource: hold, inPlace: hold, alloc,
        onHeader: (h) => {
          seqs.push(h.seq);
          if (seqs.length === 1 && h.seq !== b.seq) {
            throw new ProtocolError('ERR_STICK_BUNDLE_NAME', `The file name carries seq ${b.seq}, but the bundle's first piece is ${h.seq}.`, { file: b.path });
          }
          const verdict = judge(b, h);
          if (verdict === 'skip') ++skipped;
          return verdict;
        },
      })) {
        if (hold) pieces.push(piece);
      }
      if (skipped === seqs.length) return { kind: 'skipped' };
      if (!hold) return { kind: 'large' };
      const sound: Verdict = { kind: 'sound', pieces, buffer };
      buffer = undefined;
      return sound;
    } catch (err) {
      if (isRefusal(err)) return { kind: 'refused', rejection: { bundle: b.name, seqs, code: err.code, reason: shortReason(err) } };
      if (isSystemError(err)) {
        return { kind: 'unreadable', error: new AssemblerError('ERR_IMPORT_STICK_READ', b.path, `Cannot read the bundle (${errnoOf(err)}); it is left on the stick, neither merged nor refused. Check the stick (dmesg), then import again.`, { cause: err }) };
      }
      throw err;
    } finally {
      if (buffer !== undefined) pool.give(buffer);
    }
  };

  /** A bundle larger than `maxHeld`, checked whole already: read again, merging piece by piece. */
  const mergeLarge = async (b: BundleFile, index: number): Promise<void> => {
    let pieces = 0;
    let bytes = 0;
    const mark = inFlight.length;
    const refusedBefore = counts.refused;
    try {
      for await (const piece of readBundle(await readSafely(b.path, READ_CHUNK), { keys, plan, limits, file: b.path, alloc, onHeader: (h) => judge(b, h) })) {
        if (failure !== undefined) return;
        if (signal?.aborted === true) {
          cut = true;
          return;
        }
        await makeRoom(piece.data.length);
        merge(b, index, [piece], (n, k) => {
          pieces += n;
          bytes += k;
        });
      }
    } catch (err) {
      if (!isRefusal(err) && !isSystemError(err)) throw err;
      // it changed between two reads: what was read is sound and merged, the rest refused
      while (inFlight.length > mark) await settleOldest();
      if (isRefusal(err)) refuse(b, index, { bundle: b.name, seqs: [], code: err.code, reason: shortReason(err) });
      else {
        ++counts.unreadable;
        firstUnreadable ??= new AssemblerError('ERR_IMPORT_STICK_READ', b.path, `Cannot read the bundle again (${errnoOf(err)}); what was read before is merged. Check the stick (dmesg), then import again.`, { cause: err });
        tell(b, index, { outcome: 'unreadable', pieces: 0, bytes: 0, code: firstUnreadable.code, reason: messageOf(err) });
      }
      return;
    }
    while (inFlight.length > mark) await settleOldest();
    if (failure !== undefined || counts.refused > refusedBefore) return;
    ++counts.merged;
    tell(b, index, { outcome: 'merged', pieces, bytes });
  };

  /**
   * The receipt does not fit on the stick: keep it on PC_B for the next import, and say
   * what to free: the bytes missing, and merged bundles that free them.
   */
  const keepForNextImport = async (err: unknown, short: ReceiptShortfall): Promise<unknown> => {
    try {
      await saveMapfile(pendingPath, formatReceipt(receipt(), keys));
    } catch (saveErr) {
      return new AssemblerError('ERR_IMPORT_RECEIPT_WRITE', receipts.path, `${messageOf(err)} Keeping it on PC_B failed too (${messageOf(saveErr)}): free space on the stick and import again.`, { cause: err });
    }
    const missing = short.need - short.free;
    const pick: string[] = [];
    let freed = 0;
    for (const [name, size] of [...mergedFiles].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))) {
      if (freed >= missing) break;
      pick.push(`${name} (${size} bytes)`);
      freed += size;
    }
    const which = pick.length > 0 && freed >= missing
      ? ` (files of your own, or bundles already merged into the image: ${pick.join(', ')} in ${folder}; the next import's receipt names their pieces, from ${pendingPath})`
      : ' (files of your own: delete nothing in its ddferry folder)';
    return new AssemblerError('ERR_IMPORT_RECEIPT_WRITE', receipts.path,
      `Cannot write the receipt: the stick is full (${short.free} bytes free, ${short.need} needed). Every bundle that could be merged is merged into ${image.path}. `
      + `Free at least ${missing} bytes on the stick${which}, then run the same import again: it writes the receipt.`, { cause: err });
  };

  let index = 0;
  for (const b of bundles) {
    if (signal?.aborted === true || failure !== undefined) break;
    ++index;
    // what is read is held until merged: make room for it first
    const size = await lstat(b.path).then((st) => (st.isFile() ? st.size : 0), () => 0);
    sizes.set(b.name, size);
    if (size <= maxHeld) await makeRoom(size);
    const verdict = await examine(b);
    switch (verdict.kind) {
      case 'skipped':
        ++counts.skipped;
        tell(b, index, { outcome: 'skipped', pieces: 0, bytes: 0 });
        break;
      case 'refused':
        refuse(b, index, verdict.rejection);
        break;
      case 'unreadable':
        ++counts.unreadable;
        firstUnreadable ??= verdict.error;
        tell(b, index, { outcome: 'unreadable', pieces: 0, bytes: 0, code: verdict.error.code, reason: verdict.error.message });
        break;
      case 'sound': {
        const at = index;
        merge(b, at, verdict.pieces, (pieces, bytes) => {
          ++counts.merged;
          tell(b, at, { outcome: 'merged', pieces, bytes });
        }, verdict.buffer);
        break;
      }
      case 'large':
        while (inFlight.length > 0) await settleOldest();
        if (failure === undefined) await mergeLarge(b, index);
        break;
    }
  }
  while (inFlight.length > 0) await settleOldest();
  await queue.idle();
  try {
    await writeReceipt();
    if (pending !== undefined) await rm(pendingPath, { force: true });
    await removeSuperseded(receipts.path, keys, receipt(), warn);
  } catch (err) {
    if (errnoOf(err) === 'ERR_IMPORT_RECEIPT_WRITE' && receipts.shortfall !== undefined) {
      failure ??= await keepForNextImport(err, receipts.shortfall);
    } else {
      failure ??= err;
    }
  }
  const stopped = failure !== undefined ? 'failed' : index < bundles.length || cut ? 'aborted' : 'done';
  return {
    rescue, folder, receipt: receiptWritten ? receipts.path : undefined, bundles: bundles.length, ...counts, rejected,
    stopped, error: failure ?? firstUnreadable,
  };
}
