/**
 * `IMAGE.ddferry.pieces`: which piece was merged under each sequence number,
 * by its header hash (A4: a seq is one piece for good). Append-only, fixed
 * records, so a 4 TB disk's 500 000 pieces take 16 MB on disk and about 12 MB
 * in memory (sorted typed arrays), and each merge batch costs one append and
 * one fsync.
 *
 * | bytes | holds |
 * |---|---|
 * | 0–15 | `ddferry pieces 1` (ASCII) |
 * | 16–31 | the rescue id (the UUID's 16 bytes) |
 * | then, per merged piece, 32 bytes | seq (u64 big-endian), header hash (16 bytes), xxh64 of those 24 bytes (u64 big-endian) |
 *
 * A crash in the middle of an append leaves a last record cut short or with a
 * wrong checksum: it is dropped (the file truncated to the records before it)
 * when the image is opened, and the piece, sent again, merges again harmlessly
 * (A2). A bad record before the last one is damage: `ERR_IMAGE_PIECES_BAD`.
 */
import type { FileHandle } from 'node:fs/promises';
import { open, readFile, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';

import type { PieceRef } from '@ddferry/protocol';
import { isHeaderHash, xxh64 } from '@ddferry/protocol';

import { AssemblerError, errnoOf, messageOf } from './errors.js';

const MAGIC = Buffer.from('ddferry pieces 1', 'latin1');
const HEADER_BYTES = 32;
const RECORD_BYTES = 32;
const HASH_BYTES = 16;

function rescueIdBytes(rescueId: string): Buffer {
  return Buffer.from(rescueId.replace(/-/g, ''), 'hex');
}

function fileHeader(rescueId: string): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(h, 0);
  rescueIdBytes(rescueId).copy(h, 16);
  return h;
}

function record(ref: PieceRef): Buffer {
  const r = Buffer.alloc(RECORD_BYTES);
  r.writeBigUInt64BE(BigInt(ref.seq), 0);
  Buffer.from(ref.headerHash, 'hex').copy(r, 8);
  r.writeBigUInt64BE(xxh64(r.subarray(0, 24)), 24);
  return r;
}

/** The merged pieces of an image, in memory: sequence numbers ascending, each with its header hash. */
export class MergedPieces {
  #seqs = new Float64Array(1024);
  #hashes = new Uint8Array(1024 * HASH_BYTES);
  #count = 0;

  /** How many pieces. */
  get size(): number {
    return this.#count;
  }

  /** The largest seq, 0 if none. */
  get maxSeq(): number {
    return this.#count === 0 ? 0 : this.#seqs[this.#count - 1]!;
  }

  /** Index of `seq`, or `-(insertion point) - 1`. */
  #find(seq: number): number {
    let lo = 0;
    let hi = this.#count - 1;
    if (hi >= 0 && this.#seqs[hi]! < seq) return -(hi + 1) - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.#seqs[mid]!;
      if (s < seq) lo = mid + 1;
      else if (s > seq) hi = mid - 1;
      else return mid;
    }
    return -lo - 1;
  }

  /** The header hash of the piece merged under `seq`, or undefined. */
  hashOf(seq: number): string | undefined {
    const i = this.#find(seq);
    if (i < 0) return undefined;
    return Buffer.from(this.#hashes.buffer, i * HASH_BYTES, HASH_BYTES).toString('hex');
  }

  /**
   * Record a merged piece. The same piece again changes nothing.
   * @returns false if it was there already.
   * @throws Error (a bug: callers check first) for a seq held under another hash.
   */
  add(ref: PieceRef): boolean {
    if (!Number.isSafeInteger(ref.seq) || ref.seq < 1 || !isHeaderHash(ref.headerHash)) throw new Error(`internal: not a piece reference: ${JSON.stringify(ref)}`);
    const i = this.#find(ref.seq);
    if (i >= 0) {
      if (this.hashOf(ref.seq) !== ref.headerHash) throw new Error(`internal: seq ${ref.seq} is merged under another header hash`);
      return false;
    }
    const at = -i - 1;
    if (this.#count === this.#seqs.length) {
      const seqs = new Float64Array(this.#seqs.length * 2);
      seqs.set(this.#seqs);
      const hashes = new Uint8Array(this.#hashes.length * 2);
      hashes.set(this.#hashes);
      this.#seqs = seqs;
      this.#hashes = hashes;
    }
    if (at < this.#count) {
      this.#seqs.copyWithin(at + 1, at, this.#count);
      this.#hashes.copyWithin((at + 1) * HASH_BYTES, at * HASH_BYTES, this.#count * HASH_BYTES);
    }
    this.#seqs[at] = ref.seq;
    this.#hashes.set(Buffer.from(ref.headerHash, 'hex'), at * HASH_BYTES);
    ++this.#count;
    return true;
  }

  /** The largest `limit` pieces, ascending (all by default). */
  toArray(limit = Number.POSITIVE_INFINITY): PieceRef[] {
    const out: PieceRef[] = [];
    for (let i = Math.max(0, this.#count - limit); i < this.#count; i++) {
      out.push({ seq: this.#seqs[i]!, headerHash: Buffer.from(this.#hashes.buffer, i * HASH_BYTES, HASH_BYTES).toString('hex') });
    }
    return out;
  }
}

function bad(file: string, what: string): AssemblerError {
  return new AssemblerError('ERR_IMAGE_PIECES_BAD', file, `${what} The record of merged pieces is damaged. Move it away (the pieces merged are sent again and merge again harmlessly, as the image mapfile says what is rescued), then start again.`);
}

/**
 * Read `file` for rescue `rescueId`. A missing file is an empty record; a torn
 * last record is dropped and the file truncated before it.
 * @returns the pieces, and what was dropped (for a warning).
 * @throws AssemblerError `ERR_IMAGE_PIECES_BAD`, `ERR_IMAGE_OPEN` (unreadable).
 */
export async function loadMergedPieces(file: string, rescueId: string): Promise<{ pieces: MergedPieces; dropped: number }> {
  const pieces = new MergedPieces();
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { pieces, dropped: 0 };
    throw new AssemblerError('ERR_IMAGE_OPEN', file, `Cannot read the record of merged pieces (${errnoOf(err) ?? messageOf(err)}). Check its permissions.`, { cause: err });
  }
  if (bytes.length === 0) return { pieces, dropped: 0 };
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, 16).equals(MAGIC)) throw bad(file, 'It does not start with "ddferry pieces 1".');
  if (!bytes.subarray(16, 32).equals(rescueIdBytes(rescueId))) throw bad(file, `It is not the record of rescue ${rescueId}.`);
  const records = Math.floor((bytes.length - HEADER_BYTES) / RECORD_BYTES);
  let good = records;
  for (let k = 0; k < records; k++) {
    const r = bytes.subarray(HEADER_BYTES + k * RECORD_BYTES, HEADER_BYTES + (k + 1) * RECORD_BYTES);
    const seq = r.readBigUInt64BE(0);
    const sound = xxh64(r.subarray(0, 24)) === r.readBigUInt64BE(24) && seq >= 1n && seq <= BigInt(Number.MAX_SAFE_INTEGER);
    if (!sound) {
      if (k !== records - 1) throw bad(file, `Record ${k + 1} of ${records} has a wrong checksum.`);
      good = k;
      break;
    }
    const ref = { seq: Number(seq), headerHash: r.subarray(8, 24).toString('hex') };
    const held = pieces.hashOf(ref.seq);
    if (held !== undefined && held !== ref.headerHash) throw bad(file, `Seq ${ref.seq} is recorded under two header hashes.`);
    pieces.add(ref);
  }
  const end = HEADER_BYTES + good * RECORD_BYTES;
  if (end !== bytes.length) await truncate(file, end);
  return { pieces, dropped: bytes.length - end };
}

/** Appends records to `IMAGE.ddferry.pieces`, durably. Open lazily, close with `close`. */
export class MergedPiecesFile {
  readonly path: string;
  readonly #rescueId: string;
  #handle: FileHandle | undefined;
  /** Bytes of whole records (and the header) in the file. */
  #size = 0;

  constructor(path: string, rescueId: string) {
    this.path = path;
    this.#rescueId = rescueId;
  }

  /**
   * Append `refs` and fsync; the file (with its header) and its folder entry
   * are made durable first when new.
   * @throws AssemblerError `ERR_IMAGE_SAVE`.
   */
  async append(refs: readonly PieceRef[]): Promise<void> {
    if (refs.length === 0) return;
    try {
      if (this.#handle === undefined) {
        const handle = await open(this.path, 'a', 0o644);
        try {
          this.#size = (await handle.stat()).size;
          if (this.#size === 0) {
            await handle.write(fileHeader(this.#rescueId));
            this.#size = HEADER_BYTES;
            await handle.sync();
            const folder = await open(dirname(this.path), 'r');
            try {
              await folder.sync();
            } finally {
              await folder.close();
            }
          }
        } catch (err) {
          await handle.close();
          throw err;
        }
        this.#handle = handle;
      }
      const bytes = Buffer.concat(refs.map(record));
      try {
        await this.#handle.write(bytes);
        await this.#handle.sync();
      } catch (err) {
        // a write cut short (ENOSPC) must not leave later records out of step
        await this.#handle.truncate(this.#size).catch(() => undefined);
        throw err;
      }
      this.#size += bytes.length;
    } catch (err) {
      throw new AssemblerError('ERR_IMAGE_SAVE', this.path, `Cannot record the merged pieces (${errnoOf(err) ?? messageOf(err)}). The data written is safe and the image mapfile says so; the pieces are sent again and merge again harmlessly. Check free space and permissions.`, { cause: err });
    }
  }

  async close(): Promise<void> {
    const h = this.#handle;
    this.#handle = undefined;
    await h?.close();
  }
}
