import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { type BlockStatus, type StatusMap, BlockStatus as St } from '@ddferry/mapfile';
import {
  MAX_STICK_FILE_BYTES, RECEIPT_NAME, type RescueKeys, STICK_RECEIPTS_FOLDER, bundleSeqOf, checkRealFolder, parseReceipt, readSafeFile,
} from '@ddferry/protocol';

import { errnoOf } from '../errors.js';
import type { DeltaRange } from '../run/delta-list.js';
import type { LedgerEntry } from '../job/ledger.js';

/** What the receipts on a stick say, all receipts together. */
export interface StickReceipts {
  /** Pieces the image holds: seq → header hash of the piece merged under it. */
  readonly merged: ReadonlyMap<number, string>;
  /** Refused file names, with the first refusal's code and reason. */
  readonly rejected: ReadonlyMap<string, { readonly code: string; readonly reason: string }>;
  /** File names the PC_B script of `--format ddrescue-chunks` says it merged. */
  readonly doneFiles: ReadonlySet<string>;
  /** The receipt files read (to delete once applied), relative to the rescue folder. */
  readonly files: readonly string[];
}

/**
 * Read every `receipts/receipt-*.json` of a rescue folder, each checked with the rescue's
 * receipt key. A damaged or forged receipt (`ERR_STICK_RECEIPT_MAC`: written without the
 * token), or one of another rescue, is reported through `warn` and ignored (and kept: it
 * is not ours to delete); so is one that is not a regular file (`ERR_FILE_SYMLINK`,
 * `ERR_FILE_NOT_REGULAR`: never followed nor waited on) or is too large.
 * @throws ProtocolError `ERR_FILE_SYMLINK`, `ERR_FILE_NOT_FOLDER` when `receipts` is a
 *   link or a file; system errors of the stick (EIO).
 */
export async function readStickReceipts(folder: string, keys: RescueKeys, warn: (line: string) => void): Promise<StickReceipts> {
  const dir = join(folder, STICK_RECEIPTS_FOLDER);
  let names: string[];
  try {
    // a link in place of the folder is never followed
    await checkRealFolder(dir, 'the receipts folder');
    names = (await readdir(dir)).filter((n) => RECEIPT_NAME.test(n)).sort();
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
    names = [];
  }
  const merged = new Map<number, string>();
  const rejected = new Map<string, { code: string; reason: string }>();
  const files: string[] = [];
  for (const name of names) {
    const file = join(dir, name);
    try {
      // a FIFO or a link named like a receipt is refused at once, never waited on nor followed
      const r = parseReceipt((await readSafeFile(file, { maxBytes: MAX_STICK_FILE_BYTES, what: 'the receipt' })).toString('utf8'), keys, file);
      for (const p of r.merged) merged.set(p.seq, p.headerHash);
      for (const x of r.rejected) if (!rejected.has(x.bundle)) rejected.set(x.bundle, { code: x.code, reason: x.reason });
      files.push(join(STICK_RECEIPTS_FOLDER, name));
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'ERR_STICK_BAD_RECEIPT';
      const text = (err as Error).message;
      warn(`ddferry-reader: ${code}: ${text.startsWith(file) ? '' : `${file}: `}${text}${/ignored/.test(text) ? '' : ' The receipt is ignored: import the stick on PC_B again to write a new one.'}`);
    }
  }
  return { merged, rejected, doneFiles: new Set(), files };
}

/** True if the receipts say the image holds this entry's piece: its seq under its own header hash. */
export function isMergedEntry(receipts: Pick<StickReceipts, 'merged'>, e: Pick<LedgerEntry, 'seq' | 'headerHash'>): boolean {
  return e.headerHash !== undefined && receipts.merged.get(e.seq) === e.headerHash;
}

/** Why a piece's ranges are given back to `common.map`. */
export interface Reclaim {
  readonly entry: LedgerEntry;
  /** `rejected ERR_...: reason` or `missing`. */
  readonly reason: string;
}

/** What to do with each ledger entry and each loose file, by the receipts. */
export interface Settlement {
  /** The image holds them: delete their files (this stick's) and their entries. */
  readonly merged: readonly LedgerEntry[];
  /** Refused, or gone from this stick: ranges back to `common.map`, then delete. */
  readonly reclaimed: readonly Reclaim[];
  /** On this stick, waiting for an import. */
  readonly pending: readonly LedgerEntry[];
  /** Entries whose piece the local spool holds: the entry goes, the piece stays (it goes onto a stick later). */
  readonly local: readonly LedgerEntry[];
  /** Waiting on other sticks, by stick id. */
  readonly elsewhere: ReadonlyMap<string, readonly LedgerEntry[]>;
  /** Files of the folder in no entry that were refused, or that name a merged seq. */
  readonly stray: readonly string[];
}

/**
 * Decide, from the receipts and the files present in the rescue folder, what becomes of
 * each ledger entry. An entry is merged when a receipt names its seq with its header hash
 * (R5: a seq alone frees nothing), or, for chunk files, when the PC_B script lists all of
 * its `.raw` files; a merged entry is never reclaimed. An entry
 * of this stick is reclaimed when one of its files was refused, or is missing, or it has
 * no file (its write failed). Entries of other sticks are only cleared by merges, or
 * reclaimed when that stick is `forget` (lost or wiped).
 */
export function settle(entries: readonly LedgerEntry[], receipts: StickReceipts, stickId: string, present: ReadonlySet<string>, forget?: string, inSpool: (seq: number) => boolean = () => false): Settlement {
  const merged: LedgerEntry[] = [];
  const reclaimed: Reclaim[] = [];
  const pending: LedgerEntry[] = [];
  const local: LedgerEntry[] = [];
  const elsewhere = new Map<string, LedgerEntry[]>();
  const known = new Set<string>();
  for (const e of entries) {
    for (const f of e.files) known.add(f);
    if (inSpool(e.seq) && !isMergedEntry(receipts, e)) {
      // the local spool still holds the piece (its write to a stick failed, or was cut): it is not lost
      local.push(e);
      continue;
    }
    const raws = e.files.filter((f) => f.endsWith('.raw'));
    if (isMergedEntry(receipts, e) || (raws.length > 0 && raws.every((f) => receipts.doneFiles.has(f)))) {
      merged.push(e);
      continue;
    }
    if (forget !== undefined && e.stickId === forget && forget !== stickId) {
      reclaimed.push({ entry: e, reason: 'forgotten' });
      continue;
    }
    if (e.stickId !== stickId) {
      const list = elsewhere.get(e.stickId) ?? [];
      list.push(e);
      elsewhere.set(e.stickId, list);
      continue;
    }
    const refused = e.files.find((f) => receipts.rejected.has(f));
    if (refused !== undefined) {
      const r = receipts.rejected.get(refused)!;
      reclaimed.push({ entry: e, reason: `rejected ${r.code}: ${r.reason}` });
    } else if (e.files.length === 0 || e.files.some((f) => !present.has(f))) {
      reclaimed.push({ entry: e, reason: 'missing' });
    } else {
      pending.push(e);
    }
  }
  const stray: string[] = [];
  for (const f of present) {
    if (known.has(f)) continue;
    const seq = bundleSeqOf(f);
    if (receipts.rejected.has(f) || (seq !== undefined && receipts.merged.has(seq))) stray.push(f);
  }
  return { merged, reclaimed, pending, local, elsewhere, stray: stray.sort() };
}

/** Call `fn` for each block of `map` (clipped) inside `[pos, pos+size)`. */
function forEachBlockIn(map: StatusMap, pos: number, size: number, fn: (pos: number, size: number, status: BlockStatus) => void): void {
  let p = pos;
  const end = pos + size;
  while (p < end) {
    const b = map.sblockAt(p);
    if (!b) return;
    const bEnd = Math.min(b.pos + b.size, end);
    fn(p, bEnd - p, b.status);
    p = bEnd;
  }
}

/**
 * The statuses to ship again for reclaimed pieces, after their `+` ranges went back to
 * non-tried: over their other ranges, what `common.map` now holds there when it is
 * neither non-tried nor finished (bad areas etc.), so PC_B's map ends equal to
 * `common.map` without reading bad areas again.
 */
export function reshipRanges(map: StatusMap, entries: readonly LedgerEntry[]): DeltaRange[] {
  const reship: DeltaRange[] = [];
  for (const e of entries) {
    for (const d of e.delta) {
      if (d.status === St.finished) continue;
      forEachBlockIn(map, d.pos, d.size, (pos, size, st) => {
        if (st !== St.finished && st !== St.nonTried) reship.push({ pos, size, status: st });
      });
    }
  }
  return reship;
}
