import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { type BlockStatus, isBlockStatus } from '@ddferry/mapfile';

import { ReaderError } from '../errors.js';
import { saveFileAtomic } from '../durable-file.js';

/** One range of a piece's map delta, as the ledger keeps it. */
export interface LedgerRange {
  readonly pos: number;
  readonly size: number;
  readonly status: BlockStatus;
}

/**
 * One piece carried on a stick and not yet acknowledged: `JOBDIR/ledger/piece-000123.json`.
 * It is written (atomically, durably) before the piece's files appear on the stick, so
 * the reader can undo what a damaged, refused or missing bundle held, whatever is left
 * on the stick: the `+` ranges go back to non-tried in `common.map`, the other statuses
 * are shipped again with the next piece.
 */
export interface LedgerEntry {
  readonly seq: number;
  readonly chunk: number;
  /** The stick the piece was written to (`rescue.json`'s stickId). */
  readonly stickId: string;
  /** Its files in the stick's rescue folder. */
  readonly files: readonly string[];
  /** Bytes of data the piece holds. */
  readonly dataBytes: number;
  /** The piece's whole map delta, `+` ranges included. */
  readonly delta: readonly LedgerRange[];
  /** The header hash of the sealed piece (a bundle): a receipt frees the entry only when it names this hash (R5). */
  readonly headerHash?: string | undefined;
}

/** `JOBDIR/ledger`. */
export const LEDGER_FOLDER = 'ledger';

const NAME = /^piece-(\d{6,15})\.json$/;
const VERSION = 1;
const FILE_NAME = /^[^/\\\0]{1,255}$/;

export function ledgerFileName(seq: number): string {
  return `piece-${String(seq).padStart(6, '0')}.json`;
}

/**
 * The ledger folder: what each stick holds for this job, by seq. Entries are added
 * before their files are written, and removed only after a receipt says the image holds
 * them, or after their ranges were given back to `common.map` (reclaim).
 */
export class Ledger {
  readonly dir: string;
  readonly #entries = new Map<number, LedgerEntry>();

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Open (or make) the folder and read every entry.
   * @throws ReaderError `ERR_LEDGER_BAD` naming a damaged entry.
   */
  static async open(dir: string): Promise<Ledger> {
    const l = new Ledger(dir);
    await mkdir(dir, { recursive: true });
    for (const name of (await readdir(dir)).sort()) {
      if (name.startsWith('.') && name.endsWith('.tmp')) {
        await rm(join(dir, name), { force: true }); // a save cut by a crash: the entry was never written
        continue;
      }
      if (!NAME.test(name)) continue;
      const file = join(dir, name);
      const e = parseLedgerEntry(await readFile(file, 'utf8'), file);
      if (ledgerFileName(e.seq) !== name) throw bad(file, `it holds piece ${e.seq}, not the one its name says`);
      l.#entries.set(e.seq, e);
    }
    return l;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The highest seq recorded, or 0. */
  get maxSeq(): number {
    let m = 0;
    for (const s of this.#entries.keys()) if (s > m) m = s;
    return m;
  }

  get(seq: number): LedgerEntry | undefined {
    return this.#entries.get(seq);
  }

  /** Entries in seq order. */
  entries(): LedgerEntry[] {
    return [...this.#entries.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Record an entry durably (replaces one of the same seq). */
  async put(e: LedgerEntry): Promise<void> {
    await saveFileAtomic(join(this.dir, ledgerFileName(e.seq)), formatLedgerEntry(e));
    this.#entries.set(e.seq, e);
  }

  /** Forget entries (their pieces are merged, or their ranges were reclaimed). */
  async remove(seqs: readonly number[]): Promise<void> {
    for (const seq of seqs) {
      if (!this.#entries.has(seq)) continue;
      await rm(join(this.dir, ledgerFileName(seq)), { force: true });
      this.#entries.delete(seq);
    }
  }
}

export function formatLedgerEntry(e: LedgerEntry): string {
  return `${JSON.stringify({
    version: VERSION, seq: e.seq, chunk: e.chunk, stickId: e.stickId, files: [...e.files], dataBytes: e.dataBytes,
    delta: e.delta.map((d) => [d.pos, d.size, d.status]),
    ...(e.headerHash === undefined ? {} : { headerHash: e.headerHash }),
  })}\n`;
}

function bad(file: string, why: string): ReaderError {
  return new ReaderError('ERR_LEDGER_BAD', file, `${file}: the ledger entry is damaged (${why}). Restore it from a backup of JOBDIR; deleting it makes the reader forget what this piece held (its bad areas would not reach PC_B's map).`);
}

/** Parse an entry written by `formatLedgerEntry`. @throws ReaderError `ERR_LEDGER_BAD`. */
export function parseLedgerEntry(text: string, file: string): LedgerEntry {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw bad(file, `not JSON: ${(err as Error).message}`);
  }
  const o = v as Record<string, unknown>;
  const count = (x: unknown, what: string, min = 0): number => {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min) throw bad(file, `${what} is not an integer`);
    return x;
  };
  if (typeof v !== 'object' || v === null || o.version !== VERSION) throw bad(file, `not a version ${VERSION} entry`);
  const seq = count(o.seq, 'seq', 1);
  const chunk = count(o.chunk, 'chunk');
  const dataBytes = count(o.dataBytes, 'dataBytes');
  if (typeof o.stickId !== 'string' || !/^[0-9a-f]{8,64}$/.test(o.stickId)) throw bad(file, 'stickId is not hex');
  if (!Array.isArray(o.files) || o.files.some((f) => typeof f !== 'string' || !FILE_NAME.test(f) || f === '..' || f === '.')) throw bad(file, 'files is not a list of file names');
  if (!Array.isArray(o.delta)) throw bad(file, 'delta is not a list');
  const delta = o.delta.map((d: unknown): LedgerRange => {
    if (!Array.isArray(d) || d.length !== 3 || typeof d[2] !== 'string' || !isBlockStatus(d[2])) throw bad(file, 'a delta range is not [pos, size, status]');
    const pos = count(d[0], 'a delta pos');
    const size = count(d[1], 'a delta size', 1);
    if (!Number.isSafeInteger(pos + size)) throw bad(file, 'a delta range ends above 2^53-1');
    return { pos, size, status: d[2] as BlockStatus };
  });
  if (o.headerHash !== undefined && (typeof o.headerHash !== 'string' || !/^[0-9a-f]{32}$/.test(o.headerHash))) throw bad(file, 'headerHash is not 32 hex digits');
  const headerHash = o.headerHash as string | undefined;
  return { seq, chunk, stickId: o.stickId, files: o.files as string[], dataBytes, delta, ...(headerHash === undefined ? {} : { headerHash }) };
}
