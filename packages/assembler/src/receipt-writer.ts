/**
 * The receipt of one import, on the stick:
 * `DIR/ddferry/<rescue-id>/receipts/receipt-<UTC time>-<6 hex>.json`
 * (`formatReceipt`, MACed with the rescue's receipt key). The same file is rewritten after every merged batch, so a
 * kill -9 in the middle of an import leaves a receipt of what is durable.
 *
 * Each write is atomic and durable (`saveMapfile`: temporary file, fsync,
 * rename over, fsync of the folder), without a `.bak` (FAT has no hard links).
 * Writes are serialized; requests made while one is being written are joined
 * into the next write, so a slow stick costs fewer writes, never a stale one.
 *
 * Folder fsync: FAT32 through fusefat and exFAT through exfat-fuse accept it
 * (checked on both). Where a file system answers EINVAL, ENOTSUP or ENOSYS
 * (some FUSE and kernel drivers), the receipt is read back: if it is the new
 * one, the rename happened and only the folder fsync is unsupported; the write
 * counts as done, with one warning. Any other failure is `ERR_IMPORT_RECEIPT_WRITE`.
 *
 * A full stick: nothing is created on it when its free space (`statStickSpace`:
 * fusefat's cluster counts where its statfs says 0 blocks) is below what the
 * write needs (the receipt rounded up to the block, one block for the folder
 * entry, one more for a new `receipts/` folder: fusefat breaks a folder made on
 * a full FAT); then, and when a write fails with ENOSPC, EDQUOT, EFBIG or (on a
 * full fusefat) EPERM, the error is `ERR_IMPORT_RECEIPT_WRITE` and `shortfall`
 * says how many bytes are missing.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { saveMapfile } from '@ddferry/mapfile/io';
import type { Receipt, RescueKeys, StickSpace } from '@ddferry/protocol';
import { checkRealFolder, formatReceipt, isProtocolError, readSafeFile, statStickSpace, STICK_RECEIPTS_FOLDER } from '@ddferry/protocol';

import { AssemblerError, errnoOf, messageOf } from './errors.js';

/** errno codes of a file system that cannot fsync a folder. */
const NO_FOLDER_SYNC = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** `receipt-20261201T071500Z-a1b2c3.json`: sorts by time; matches `RECEIPT_NAME`. */
export function receiptFileName(now: Date, random: string = randomBytes(3).toString('hex')): string {
  const t = now.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
  return `receipt-${t}-${random}.json`;
}

function rootCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e !== undefined && e !== null; i++) {
    const code = errnoOf(e);
    if (code !== undefined && !code.startsWith('ERR_')) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

async function syncFolder(folder: string): Promise<void> {
  const fh = await open(folder, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Errors of a write that mean "the stick is full". */
const FULL = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

/** What a receipt write that did not fit lacked. */
export interface ReceiptShortfall {
  /** Bytes free on the stick, and bytes the write needs (both rounded to its block). */
  readonly free: number;
  readonly need: number;
}

/** Writes one import's receipt, again and again; see the module comment. */
export class ReceiptWriter {
  /** The receipt's path. */
  readonly path: string;
  /** Set when the last write failed because the stick is full. */
  shortfall: ReceiptShortfall | undefined;
  readonly #keys: RescueKeys;
  readonly #warn: (message: string) => void;
  readonly #space: (dir: string) => Promise<StickSpace>;
  #pending: Receipt | undefined;
  #running: Promise<void> | undefined;
  #error: unknown;
  #madeFolder = false;
  #warned = false;
  #writes = 0;

  /**
   * @param rescueFolder `DIR/ddferry/<rescue-id>`.
   * @param keys the rescue's keys: receipts are MACed with its receipt key.
   * @param warn told once when the file system cannot fsync a folder.
   * @param space the stick's space (tests inject one); default `statStickSpace`.
   */
  constructor(rescueFolder: string, keys: RescueKeys, now: Date, warn: (message: string) => void, space: (dir: string) => Promise<StickSpace> = statStickSpace) {
    this.path = join(rescueFolder, STICK_RECEIPTS_FOLDER, receiptFileName(now));
    this.#keys = keys;
    this.#warn = warn;
    this.#space = space;
  }

  /** How many times the receipt was written. */
  get writes(): number {
    return this.#writes;
  }

  /**
   * Check that the receipts can land only inside the rescue folder: its
   * `receipts` entry, if there, is a real folder, not a link (never followed)
   * nor a file. The writes check again.
   * @throws ProtocolError `ERR_FILE_SYMLINK`, `ERR_FILE_NOT_FOLDER` (naming the entry).
   */
  async check(): Promise<void> {
    await checkRealFolder(dirname(this.path), 'the receipts folder');
  }

  /**
   * Write `receipt` (replacing the one written before) once earlier writes are
   * done. Resolves when this receipt, or a later one, is durable.
   * @throws AssemblerError `ERR_IMPORT_RECEIPT_WRITE`; ProtocolError
   *   `ERR_FILE_SYMLINK`, `ERR_FILE_NOT_FOLDER` (see `check`).
   */
  async write(receipt: Receipt): Promise<void> {
    this.#pending = receipt;
    this.#running ??= this.#run();
    await this.#running;
    if (this.#error !== undefined) throw this.#error;
  }

  async #run(): Promise<void> {
    try {
      while (this.#pending !== undefined) {
        const r = this.#pending;
        this.#pending = undefined;
        try {
          await this.#save(formatReceipt(r, this.#keys));
          this.#error = undefined;
        } catch (err) {
          this.#error = err;
        }
      }
    } finally {
      this.#running = undefined;
    }
  }

  /** The shortfall of a write of `bytes` bytes, or undefined when it fits (or the space is not told). */
  async #missing(bytes: number, folderThere: boolean): Promise<ReceiptShortfall | undefined> {
    let s: StickSpace;
    try {
      s = await this.#space(dirname(dirname(this.path)));
    } catch (err) {
      // no rescue folder: the write says what is wrong
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
      throw err;
    }
    if (s.total === 0) return undefined;
    const need = Math.ceil(bytes / s.blockSize) * s.blockSize + (folderThere ? 1 : 2) * s.blockSize;
    return s.free >= need ? undefined : { free: s.free, need };
  }

  async #save(text: string): Promise<void> {
    const folder = dirname(this.path);
    this.shortfall = undefined;
    let there = false;
    try {
      // a link or a file put there since the last write is refused, never followed
      there = await checkRealFolder(folder, 'the receipts folder');
      const missing = await this.#missing(Buffer.byteLength(text), there);
      if (missing !== undefined) throw Object.assign(new Error('the stick is full'), { code: 'ENOSPC', shortfall: missing });
      if (!this.#madeFolder) {
        if (!there) await mkdir(folder, { recursive: true });
        await this.#tolerantSync(dirname(folder));
        this.#madeFolder = true;
      }
      try {
        await saveMapfile(this.path, text);
      } catch (err) {
        if (!NO_FOLDER_SYNC.has(rootCode(err) ?? '') || (await this.#readBack(text.length)) !== text) throw err;
        this.#warnOnce(folder, rootCode(err)!);
      }
      ++this.#writes;
    } catch (err) {
      if (isProtocolError(err)) throw err;
      const code = rootCode(err);
      const known = (err as { shortfall?: ReceiptShortfall }).shortfall;
      // fusefat answers EPERM when the FAT is full
      const full = known ?? (code !== undefined && (FULL.has(code) || code === 'EPERM') ? await this.#missing(Buffer.byteLength(text), there).catch(() => undefined) : undefined);
      if (full !== undefined || (code !== undefined && FULL.has(code))) {
        this.shortfall = full ?? { free: 0, need: Buffer.byteLength(text) };
        throw new AssemblerError('ERR_IMPORT_RECEIPT_WRITE', this.path, `Cannot write the receipt: the stick is full (${this.shortfall.free} bytes free, ${this.shortfall.need} needed). Free space on the stick, then import again: the merged data is safe in the image, and the next import writes the receipt.`, { cause: err });
      }
      throw new AssemblerError('ERR_IMPORT_RECEIPT_WRITE', this.path, `Cannot write the receipt (${code ?? messageOf(err)}). Check the stick is mounted read-write, then import again: the merged data is safe in the image, and the next import writes the receipt.`, { cause: err });
    }
  }

  /** The receipt as written, or '' when it cannot be read back. */
  async #readBack(length: number): Promise<string> {
    try {
      return (await readSafeFile(this.path, { maxBytes: 4 * length + 16, what: 'the receipt' })).toString('utf8');
    } catch (err) {
      if (errnoOf(err) === undefined) throw err;
      return '';
    }
  }

  async #tolerantSync(folder: string): Promise<void> {
    try {
      await syncFolder(folder);
    } catch (err) {
      const code = errnoOf(err);
      if (code === undefined || !NO_FOLDER_SYNC.has(code)) throw err;
      this.#warnOnce(folder, code);
    }
  }

  #warnOnce(folder: string, code: string): void {
    if (this.#warned) return;
    this.#warned = true;
    this.#warn(`${folder}: this file system cannot fsync a folder (${code}); receipts are renamed into place and the files fsynced, but a power cut right after may lose the newest one (the next import writes it again).`);
  }
}
