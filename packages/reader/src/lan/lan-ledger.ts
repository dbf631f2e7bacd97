import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { pathExists, saveMapfile } from '@ddferry/mapfile/io';

import { errnoOf } from '../errors.js';
import { LEDGER_FOLDER, Ledger } from '../job/ledger.js';
import type { Spool } from '../job/spool.js';

/**
 * The ledger in a LAN run (the job went on a stick before, or will): sequence numbers
 * of pieces on sticks are never given again, the Welcome's merged seqs clear the entries
 * of pieces PC_B imported from a stick meanwhile, and the others are reported. Nothing
 * is reclaimed from LAN mode: only the stick itself can tell that a bundle is gone.
 * Call before the engine starts; the returned function takes the Welcome's `mergedSeqs`
 * (or null when no Welcome came).
 */
export async function openLanLedger(jobDir: string, seqFile: string, spool: Spool, log: (line: string) => void): Promise<(mergedSeqs: readonly number[] | null) => Promise<void>> {
  const dir = join(jobDir, LEDGER_FOLDER);
  if (!(await pathExists(dir))) return async () => undefined;
  const ledger = await Ledger.open(dir);
  spool.notePeerSeqs(ledger.maxSeq);
  return async (mergedSeqs) => {
    if (mergedSeqs !== null && mergedSeqs.length > 0) {
      const merged = new Set(mergedSeqs);
      const done = ledger.entries().filter((e) => merged.has(e.seq)).map((e) => e.seq);
      if (done.length > 0) {
        // numbers are never reused: the counter is saved before the entries go
        let saved = 0;
        try {
          const v = JSON.parse(await readFile(seqFile, 'utf8')) as { lastSeq?: unknown };
          if (typeof v.lastSeq === 'number' && Number.isSafeInteger(v.lastSeq)) saved = v.lastSeq;
        } catch (err) {
          if (errnoOf(err) !== 'ENOENT') throw err;
        }
        await saveMapfile(seqFile, `${JSON.stringify({ lastSeq: Math.max(saved, ledger.maxSeq) })}\n`);
        await ledger.remove(done);
        log(`ddferry-reader: ${done.length} piece(s) carried on a stick are merged on PC_B; their ledger entries are cleared (delete their files from the stick by running a stick trip).`);
      }
    }
    const byStick = new Map<string, number>();
    for (const e of ledger.entries()) byStick.set(e.stickId, (byStick.get(e.stickId) ?? 0) + 1);
    for (const [id, n] of byStick) log(`ddferry-reader: ${n} piece(s) are on stick ${id}: import it on PC_B (ddferry-assembler import), then run a stick trip here to free them.`);
  };
}
