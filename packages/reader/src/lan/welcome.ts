import type { WelcomeMessage } from '@ddferry/protocol';

import type { Ledger } from '../job/ledger.js';
import type { SeqCounter } from '../job/seq-counter.js';
import type { Spool } from '../job/spool.js';

/** True if every `+` range of `delta` lies inside the sorted, disjoint `finished` ranges. */
export function coveredBy(delta: ReadonlyArray<{ readonly pos: number; readonly size: number; readonly status: string }>, finished: ReadonlyArray<{ readonly pos: number; readonly size: number }>): boolean {
  for (const d of delta) {
    if (d.status !== '+') continue;
    let lo = 0;
    let hi = finished.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (finished[m]!.pos + finished[m]!.size <= d.pos) lo = m + 1;
      else hi = m;
    }
    const f = finished[lo];
    if (f === undefined || f.pos > d.pos || f.pos + f.size < d.pos + d.size) return false;
  }
  return true;
}

export interface WelcomeContext {
  readonly spool: Spool;
  readonly ledger: Ledger;
  readonly seq: SeqCounter;
  readonly url: string;
  readonly log: (line: string) => void;
}

/**
 * What a Welcome means for the job, in one place, for every session: a piece the
 * assembler says it merged is dropped (from the local spool, or from the ledger of
 * pieces carried on sticks) only if the image's finished ranges also cover its `+`
 * ranges (R5: a claim about a number alone deletes nothing). Pieces still on sticks
 * are reported on the first Welcome. Numbers the assembler names never move the job's
 * counter.
 */
export async function settleByWelcome(welcome: WelcomeMessage, first: boolean, c: WelcomeContext): Promise<void> {
  const merged = new Set(welcome.mergedSeqs);
  const finished = [...welcome.finished].sort((a, b) => a.pos - b.pos);
  const drop: number[] = [];
  let kept = 0;
  for (const seq of c.spool.seqs()) {
    if (!merged.has(seq)) continue;
    const piece = await c.spool.read(seq);
    if (coveredBy(piece.delta, finished)) drop.push(seq);
    else ++kept;
  }
  await c.spool.remove(drop);
  const cleared = c.ledger.entries().filter((e) => merged.has(e.seq) && coveredBy(e.delta, finished)).map((e) => e.seq);
  if (cleared.length > 0) {
    await c.seq.save();
    await c.ledger.remove(cleared);
    c.log(`ddferry-reader: ${cleared.length} piece(s) carried on a stick are merged on PC_B; their ledger entries are cleared (run a stick trip with that stick to delete their files).`);
  }
  if (kept > 0) c.log(`ddferry-reader: ${c.url} names ${kept} spooled piece(s) as merged, but the image does not hold their data: they are sent again.`);
  if (!first) return;
  const byStick = new Map<string, number>();
  for (const e of c.ledger.entries()) byStick.set(e.stickId, (byStick.get(e.stickId) ?? 0) + 1);
  for (const [id, n] of byStick) c.log(`ddferry-reader: ${n} piece(s) are on stick ${id}: import it on PC_B (ddferry-assembler import), then run a stick trip here to free them.`);
}
