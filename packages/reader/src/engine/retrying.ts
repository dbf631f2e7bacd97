import { BlockStatus, MapfileStatus } from '@ddferry/mapfile';

import { CONTINUE, type Rescuebook } from './rescuebook.js';

const TOP = Number.MAX_SAFE_INTEGER;

/**
 * The retrying phase (`copy_errors`, spec 2.7): every bad sector read once per pass,
 * passes alternating direction; the stored pass parity says where to resume.
 */
export async function copyErrors(rb: Rescuebook): Promise<number> {
  const o = rb.options;
  let resume = rb.currentStatus === MapfileStatus.retrying;
  const firstPass = !resume || o.unidirectional || (rb.currentPass & 1) !== 0 ? 1 : 2;
  let forward = !o.reverse;
  if (!o.unidirectional && firstPass === 2) forward = !forward;
  for (let pass = firstPass; o.maxRetries < 0 || pass - firstPass + 1 <= o.maxRetries; ++pass) {
    rb.firstPost = true;
    const message = `Retrying bad sectors... Retry ${pass - firstPass + 1} ${forward ? '(forwards)' : '(backwards)'}`;
    const r = forward ? await forwardRetry(rb, message, pass, resume) : await backwardRetry(rb, message, pass, resume);
    if (r !== CONTINUE) return r;
    resume = false;
    if (!o.unidirectional) forward = !forward;
    if (pass >= 0x3fffffff) break;
  }
  return 0;
}

async function forwardRetry(rb: Rescuebook, message: string, pass: number, resume: boolean): Promise<number> {
  let pos = 0;
  let blockFound = false;
  if (resume && rb.domain.includes({ pos: rb.currentPos, size: 1 })) {
    const f = rb.map.findChunk({ pos: rb.currentPos, size: 1 }, BlockStatus.badSector, rb.domain, rb.hardbs);
    if (f.block.size > 0) pos = f.block.pos;
  }
  for (;;) {
    const b = rb.map.findChunk({ pos, size: rb.hardbs }, BlockStatus.badSector, rb.domain, rb.hardbs).block;
    if (b.size <= 0) break;
    pos = b.pos + b.size;
    blockFound = true;
    const r0 = rb.readSectorStep(b, message, MapfileStatus.retrying, pass, true);
    const r = r0 instanceof Promise ? await r0 : r0;
    if (r.result) return r.result;
  }
  if (!blockFound) return 0;
  rb.showStatus(-1, message, true);
  return CONTINUE;
}

async function backwardRetry(rb: Rescuebook, message: string, pass: number, resume: boolean): Promise<number> {
  let end = TOP;
  let blockFound = false;
  if (resume && rb.currentPos > 0 && rb.domain.includes({ pos: rb.currentPos - 1, size: 1 })) {
    const f = rb.map.rfindChunk({ pos: rb.currentPos - 1, size: 1 }, BlockStatus.badSector, rb.domain, rb.hardbs);
    if (f.block.size > 0) end = f.block.pos + f.block.size;
  }
  while (end > 0) {
    const start = end >= rb.hardbs ? { pos: end - rb.hardbs, size: rb.hardbs } : { pos: 0, size: end };
    const b = rb.map.rfindChunk(start, BlockStatus.badSector, rb.domain, rb.hardbs).block;
    if (b.size <= 0) break;
    end = b.pos;
    blockFound = true;
    const r0 = rb.readSectorStep(b, message, MapfileStatus.retrying, pass, false);
    const r = r0 instanceof Promise ? await r0 : r0;
    if (r.result) return r.result;
  }
  if (!blockFound) return 0;
  rb.showStatus(-1, message, true);
  return CONTINUE;
}
