import { MapfileStatus, formatNum } from '@ddferry/mapfile';

import { copyNonTried } from './copying.js';
import { type Rescuebook, StopCause } from './rescuebook.js';
import { copyErrors } from './retrying.js';
import { scrapeErrors } from './scraping.js';
import { trimErrors } from './trimming.js';

/** How a rescue run ended. */
export interface RescueOutcome {
  /** 0 done (bad sectors may remain), 1 stopped by an error or a limit. */
  readonly status: 0 | 1;
  /** True if a signal interrupted the run (the caller re-raises it). */
  readonly interrupted: boolean;
  /** Stop causes and the final message, as ddrescue prints them. */
  readonly messages: readonly string[];
  /** ddrescue's `final_msg`, printed on stderr as `ddrescue: ...`. */
  readonly finalMessage: string;
}

/**
 * GNU ddrescue's `do_rescue` (spec 2.2): the phases in order, each gated on the size
 * counters, then the final status, the compacted forced save and the end-of-run log.
 */
export async function doRescue(rb: Rescuebook): Promise<RescueOutcome> {
  let retval = 0;
  rb.updateRates();
  if (rb.nonTried > 0 && !rb.errorsOrTimeout()) retval = await copyNonTried(rb);
  if (retval === 0 && rb.nonTrimmed > 0 && !rb.options.notrim && !rb.errorsOrTimeout()) retval = await trimErrors(rb);
  if (retval === 0 && rb.nonScraped > 0 && !rb.options.noscrape && !rb.errorsOrTimeout()) retval = await scrapeErrors(rb);
  if (retval === 0 && rb.badSize > 0 && rb.options.maxRetries !== 0 && !rb.errorsOrTimeout()) retval = await copyErrors(rb);
  // the write in flight ends before anything is synced or saved; a failed write is fatal, its read not finished
  const writeFailure = await rb.finishWrites();
  if (writeFailure !== null) {
    if (rb.finalMessage === '') rb.finalMessage = writeFailure;
    rb.eCode |= StopCause.other;
    if (retval === 0 || retval === -1) retval = 1;
  }
  try {
    await rb.sink.sync();
  } catch {
    // ddrescue ignores this fsync's result; the forced save below syncs again
  }
  if (!rb.ratesUpdated) rb.updateRates(true);
  rb.showStatus(-1, retval ? null : '\nFinished', true);

  const signaled = retval === -1;
  if (signaled) retval = 0;
  if (retval === 0 && rb.errorsOrTimeout()) retval = 1;
  const messages: string[] = [];
  if (retval === -2) messages.push('Mapfile error');
  else if (retval === 0 && signaled) messages.push('Interrupted by user');
  else {
    if (rb.eCode & StopCause.errorRate) messages.push(`Too high error rate reading input file (${formatNum(rb.errorRate)}B/s)`);
    if (rb.eCode & StopCause.badAreas) messages.push('Too many bad areas in input file');
    if (rb.eCode & StopCause.timeout) messages.push('Timeout expired');
    if (rb.eCode & StopCause.readErrors) messages.push('Too many read errors');
    if (rb.eCode & StopCause.slowReads) messages.push('Too many slow reads');
  }
  for (const m of messages) rb.reporter.echo(m);
  if (retval === -2) {
    retval = 1;
  } else {
    if (retval === 0 && !signaled) rb.setStatus(MapfileStatus.finished);
    const err = await rb.sink.finish();
    if (err !== null) {
      rb.reporter.echo(err);
      if (retval === 0) retval = 1;
    }
    rb.map.compact();
    if (!(await rb.updateMapfile(true)) && retval === 0) retval = 1;
  }
  const closeError = await rb.sink.close();
  if (closeError !== null) {
    rb.reporter.echo(closeError);
    if (retval === 0) retval = 1;
  }
  rb.reporter.endOfRun(rb.t1 - rb.t0, rb.percentRescued(), rb.currentPos, rb.statusName());
  return { status: retval === 0 ? 0 : 1, interrupted: signaled && retval === 0, messages, finalMessage: rb.finalMessage };
}
