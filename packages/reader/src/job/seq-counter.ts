import { readFile } from 'node:fs/promises';

import { ReaderError, errnoOf } from '../errors.js';
import { saveFileAtomic } from '../durable-file.js';

/**
 * The largest sequence number a job gives or accepts (2^40: a trillion pieces). A number
 * above it, from a peer or a stick, is refused and changes nothing.
 */
export const MAX_SEQ = 2 ** 40;

/**
 * The job's one sequence counter (`JOBDIR/seq.json`): every piece gets the next number,
 * never one given before. The counter starts above every number the job's own records
 * hold (the saved counter, the spool's files, the ledger's entries) and is saved durably
 * before any of those records is deleted, so a number is never reused.
 */
export class SeqCounter {
  readonly file: string;
  #last: number;
  #saved: number;

  private constructor(file: string, last: number, saved: number) {
    this.file = file;
    this.#last = last;
    this.#saved = saved;
  }

  /**
   * Read `seq.json`; `floors` are the numbers the job's records hold.
   * @throws ReaderError `ERR_JOB_BAD` if the file is damaged.
   */
  static async open(file: string, floors: readonly number[] = []): Promise<SeqCounter> {
    let saved = 0;
    try {
      const v = JSON.parse(await readFile(file, 'utf8')) as { lastSeq?: unknown };
      if (typeof v.lastSeq !== 'number' || !Number.isSafeInteger(v.lastSeq) || v.lastSeq < 0 || v.lastSeq > MAX_SEQ) throw new Error('lastSeq is not a count');
      saved = v.lastSeq;
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') {
        throw new ReaderError('ERR_JOB_BAD', file, `${file}: the sequence counter can't be read (${(err as Error).message}).`, { cause: err, hint: 'Restore it from a copy of the job folder, or delete it: the reader then starts above the numbers its spool and ledger hold.' });
      }
    }
    return new SeqCounter(file, Math.max(saved, ...floors), saved);
  }

  /** The last number given. */
  get last(): number {
    return this.#last;
  }

  /** The next number. @throws Error past MAX_SEQ (a bug: no job has that many pieces). */
  next(): number {
    if (this.#last >= MAX_SEQ) throw new Error(`internal: sequence numbers past ${MAX_SEQ}`);
    return ++this.#last;
  }

  /** Give numbers above `seen` from now on (one of the job's own records holds it). */
  raise(seen: number): void {
    if (Number.isSafeInteger(seen) && seen > this.#last && seen <= MAX_SEQ) this.#last = seen;
  }

  /** Save the counter durably (before records holding numbers are deleted). */
  async save(): Promise<void> {
    if (this.#saved === this.#last) return;
    const last = this.#last;
    await saveFileAtomic(this.file, `${JSON.stringify({ lastSeq: last })}\n`);
    this.#saved = last;
  }
}
