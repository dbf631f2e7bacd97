import type { PieceRef } from '@ddferry/protocol';

import type { Ledger } from '../job/ledger.js';
import type { SeqCounter } from '../job/seq-counter.js';
import type { Spool } from '../job/spool.js';

export interface SettleContext {
  readonly spool: Spool;
  readonly ledger: Ledger;
  readonly seq: SeqCounter;
  readonly url: string;
  readonly log: (line: string) => void;
}

/**
 * What the assembler says it merged (the Answer to the seqs this job holds, or a
 * Receipt), applied in one place: a piece is dropped, from the local spool or from the
 * ledger of pieces carried on sticks, only when the assembler names its seq with the
 * piece's own header hash (R5: a number alone deletes nothing). A spooled piece whose
 * number holds another piece on PC_B (a second reader, or a forger with the token) is
 * kept and sealed again under a new number, so it still reaches the image (A4).
 * @returns the seqs dropped from the spool.
 */
export async function settleMerged(refs: readonly PieceRef[], c: SettleContext): Promise<number[]> {
  const drop: number[] = [];
  const renumber: number[] = [];
  const cleared: number[] = [];
  for (const r of refs) {
    const ours = await c.spool.headerHash(r.seq);
    if (ours === r.headerHash) drop.push(r.seq);
    else if (ours !== undefined) renumber.push(r.seq);
    const e = c.ledger.get(r.seq);
    if (e !== undefined && e.headerHash === r.headerHash) cleared.push(r.seq);
  }
  await c.spool.remove(drop);
  for (const old of renumber) await renumberConflict(old, c);
  if (cleared.length > 0) {
    await c.seq.save();
    await c.ledger.remove(cleared);
    c.log(`ddferry-reader: ${cleared.length} piece(s) carried on a stick are merged on PC_B; their ledger entries are cleared (run a stick trip with that stick to delete their files).`);
  }
  return drop;
}

/** Report the pieces still on sticks, by stick (at the start of a LAN run). */
export function reportSticks(ledger: Ledger, log: (line: string) => void): void {
  const byStick = new Map<string, number>();
  for (const e of ledger.entries()) byStick.set(e.stickId, (byStick.get(e.stickId) ?? 0) + 1);
  for (const [id, n] of byStick) log(`ddferry-reader: ${n} piece(s) are on stick ${id}: import it on PC_B (ddferry-assembler import), then run a stick trip here to free them.`);
}

/**
 * The assembler holds another piece under spooled piece `seq` (A4: a second reader, or
 * a forger with the token): ours is kept, sealed again under a new number, and said so.
 */
export async function renumberConflict(seq: number, c: SettleContext): Promise<void> {
  if (!c.spool.has(seq)) return;
  const sealed = await c.spool.renumber(seq, c.seq.next());
  c.log(`ddferry-reader: ERR_PIECE_SEQ_CONFLICT: ${c.url} holds another piece under seq ${seq}; ours is kept and sent again as piece ${sealed.seq}. If two readers work on this rescue, stop one.`);
}
