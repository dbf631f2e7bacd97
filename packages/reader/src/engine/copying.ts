import { type Block, BlockStatus, MapfileStatus, UNBOUNDED } from '@ddferry/mapfile';

import { CONTINUE, type Rescuebook, StopCause } from './rescuebook.js';

/** Stand-in for ddrescue's LLONG_MAX as a backward pass's starting end. */
const TOP = Number.MAX_SAFE_INTEGER;

/**
 * The copying phase, passes 1 to 5 (`copy_non_tried`, spec 2.4).
 * @returns 0 when no non-tried block is left in the domain, else the step result.
 */
export async function copyNonTried(rb: Rescuebook): Promise<number> {
  const o = rb.options;
  const cpassGiven = o.cpassBitset !== 31;
  let resume = !cpassGiven && rb.currentStatus === MapfileStatus.copying;
  if (!resume || rb.currentPass > 5) rb.currentPass = 1;
  const firstPass = rb.currentPass;
  let forward = !o.reverse;
  for (let pass = 1; pass <= 5; ++pass) {
    if (pass >= firstPass && (o.cpassBitset & (1 << (pass - 1))) !== 0) {
      if (pass !== firstPass) resume = false;
      rb.firstPost = true;
      const message = `Copying non-tried blocks... Pass ${pass} ${forward ? '(forwards)' : '(backwards)'}`;
      const r = forward ? await forwardPass(rb, message, pass, resume) : await backwardPass(rb, message, pass, resume);
      if (r !== CONTINUE) return r;
    }
    if (pass >= 2 && rb.minReadRate >= 0) rb.minReadRate = -1;
    if (!o.unidirectional) forward = !forward;
  }
  return 0;
}

/** After a slow read in pass 1: the next slow-skip size. */
function nextSlowSkip(rb: Rescuebook, sskip: number): number {
  if (!rb.prevSlow) return Math.max(rb.skipbs, Math.min(rb.cRate, rb.maxSkipbs));
  return sskip <= rb.maxSkipbs / 2 ? sskip * 2 : rb.maxSkipbs;
}

async function forwardPass(rb: Rescuebook, message: string, pass: number, resume: boolean): Promise<number> {
  let pos = 0;
  let eskip = rb.skipbs;
  let sskip = 0;
  const afterFinished = pass === 3 || pass === 4;
  let blockFound = false;
  let blockProcessed = false;
  if (resume && rb.domain.includes({ pos: rb.currentPos, size: 1 })) {
    const f = rb.map.findChunk({ pos: rb.currentPos, size: 1 }, BlockStatus.nonTried, rb.domain, rb.hardbs);
    if (f.block.size > 0) pos = f.block.pos;
  }
  for (;;) {
    const f = rb.map.findChunk({ pos, size: rb.softbs }, BlockStatus.nonTried, rb.domain, rb.softbs, afterFinished);
    if (f.found) blockFound = true;
    const b = f.block;
    if (b.size <= 0) break;
    blockProcessed = true;
    if (pos !== b.pos) {
      eskip = rb.skipbs;
      rb.currentSlow = false;
    }
    pos = b.pos + b.size;
    const r0 = rb.copyAndUpdate(b, message, MapfileStatus.copying, pass, true, BlockStatus.nonTrimmed);
    const r = r0 instanceof Promise ? await r0 : r0;
    if (r.result) return r.result;
    const slow = rb.updateRates();
    if (slow && ++rb.slowReads > rb.options.maxSlowReads) {
      rb.eCode |= StopCause.slowReads;
      return 1;
    }
    if (r.error > 0 || (slow && pass <= 2)) {
      if (rb.options.reopenOnError && !rb.reopenSource()) return 1;
      if (rb.options.pauseOnError > 0) await rb.pauseOnError();
      if (rb.skipbs > 0 && pass <= 4) {
        let s: Block;
        if (pass >= 2) {
          s = { pos, size: UNBOUNDED };
        } else if (r.error > 0) {
          s = { pos, size: eskip };
          eskip = eskip <= rb.maxSkipbs / 2 ? eskip * 2 : rb.maxSkipbs;
        } else {
          sskip = nextSlowSkip(rb, sskip);
          s = { pos, size: sskip };
        }
        const k = rb.map.findChunk(s, BlockStatus.nonTried, rb.domain, rb.hardbs).block;
        if (pos === k.pos && k.size > 0) pos = k.pos + k.size;
      }
    } else if (r.error === 0 && r.copied > 0) {
      eskip = rb.skipbs;
    }
    if (rb.saveDue() && !(await rb.updateMapfile())) return -2;
  }
  if (!blockFound) return 0;
  if (blockProcessed) rb.showStatus(-1, message, true);
  return CONTINUE;
}

async function backwardPass(rb: Rescuebook, message: string, pass: number, resume: boolean): Promise<number> {
  let end = TOP;
  let eskip = rb.skipbs;
  let sskip = 0;
  const beforeFinished = pass === 3 || pass === 4;
  let blockFound = false;
  let blockProcessed = false;
  if (resume && rb.currentPos > 0 && rb.domain.includes({ pos: rb.currentPos - 1, size: 1 })) {
    const f = rb.map.rfindChunk({ pos: rb.currentPos - 1, size: 1 }, BlockStatus.nonTried, rb.domain, rb.hardbs);
    if (f.block.size > 0) end = f.block.pos + f.block.size;
  }
  while (end > 0) {
    const f = rb.map.rfindChunk(lastBytes(end, rb.softbs), BlockStatus.nonTried, rb.domain, rb.softbs, beforeFinished);
    if (f.found) blockFound = true;
    const b = f.block;
    if (b.size <= 0) break;
    blockProcessed = true;
    if (end !== b.pos + b.size) {
      eskip = rb.skipbs;
      rb.currentSlow = false;
    }
    end = b.pos;
    const r0 = rb.copyAndUpdate(b, message, MapfileStatus.copying, pass, false, BlockStatus.nonTrimmed);
    const r = r0 instanceof Promise ? await r0 : r0;
    if (r.result) return r.result;
    const slow = rb.updateRates();
    if (slow && ++rb.slowReads > rb.options.maxSlowReads) {
      rb.eCode |= StopCause.slowReads;
      return 1;
    }
    if ((r.error > 0 || (slow && pass <= 2)) && end > 0) {
      if (rb.options.reopenOnError && !rb.reopenSource()) return 1;
      if (rb.options.pauseOnError > 0) await rb.pauseOnError();
      if (rb.skipbs > 0 && pass <= 4) {
        let s: Block;
        if (pass >= 2) {
          s = { pos: 0, size: end };
        } else if (r.error > 0) {
          s = lastBytes(end, eskip);
          eskip = eskip <= rb.maxSkipbs / 2 ? eskip * 2 : rb.maxSkipbs;
        } else {
          sskip = nextSlowSkip(rb, sskip);
          s = lastBytes(end, sskip);
        }
        const k = rb.map.rfindChunk(s, BlockStatus.nonTried, rb.domain, rb.hardbs).block;
        if (end === k.pos + k.size && k.size > 0) end = k.pos;
      }
    } else if (r.error === 0 && r.copied > 0) {
      eskip = rb.skipbs;
    }
    if (rb.saveDue() && !(await rb.updateMapfile())) return -2;
  }
  if (!blockFound) return 0;
  if (blockProcessed) rb.showStatus(-1, message, true);
  return CONTINUE;
}

/**
 * ddrescue's `Block(end - size, size)`. Its start may be negative there; every search
 * crops it to a block at or above 0 first, so starting at 0 finds the same chunk.
 */
function lastBytes(end: number, size: number): Block {
  return end >= size ? { pos: end - size, size } : { pos: 0, size: end };
}
