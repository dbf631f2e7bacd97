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
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { saveMapfile } from '@ddferry/mapfile/io';
import type { Receipt, RescueKeys } from '@ddferry/protocol';
import { checkRealFolder, formatReceipt, isProtocolError, readSafeFile, STICK_RECEIPTS_FOLDER } from '@ddferry/protocol';

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

/** Writes one import's receipt, again and again; see the module comment. */
export class ReceiptWriter {
  /** The receipt's path. */
  readonly path: string;
  readonly #keys: RescueKeys;
  readonly #warn: (message: string) => void;
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
   */
  constructor(rescueFolder: string, keys: RescueKeys, now: Date, warn: (message: string) => void) {
    this.path = join(rescueFolder, STICK_RECEIPTS_FOLDER, receiptFileName(now));
    this.#keys = keys;
    this.#warn = warn;
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

  async #save(text: string): Promise<void> {
    const folder = dirname(this.path);
    try {
      // a link or a file put there since the last write is refused, never followed
      const there = await checkRealFolder(folder, 'the receipts folder');
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
      const hint = code === 'ENOSPC' ? 'The stick is full: free some space on it (not the bundles), then import again.' : 'Check the stick is mounted read-write, then import again: the merged data is safe in the image, and the next import writes the receipt.';
      throw new AssemblerError('ERR_IMPORT_RECEIPT_WRITE', this.path, `Cannot write the receipt (${code ?? messageOf(err)}). ${hint}`, { cause: err });
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
