import type { BlockStatus } from '@ddferry/mapfile';

/** One range of a piece's map delta. */
export interface DeltaRange {
  pos: number;
  size: number;
  status: BlockStatus;
}

/**
 * The map delta of an open piece: sorted, non-overlapping ranges with the latest status
 * set for each byte (later changes win), equal neighbours joined.
 */
export class DeltaList {
  readonly ranges: DeltaRange[] = [];

  get length(): number {
    return this.ranges.length;
  }

  set(pos: number, size: number, status: BlockStatus): void {
    if (size <= 0) return;
    const end = pos + size;
    const r = this.ranges;
    // first range ending after pos
    let lo = 0;
    let hi = r.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (r[m]!.pos + r[m]!.size <= pos) lo = m + 1;
      else hi = m;
    }
    let i = lo;
    const replaced: DeltaRange[] = [];
    while (i < r.length && r[i]!.pos < end) replaced.push(r[i++]!);
    const out: DeltaRange[] = [];
    const first = replaced[0];
    if (first && first.pos < pos) out.push({ pos: first.pos, size: pos - first.pos, status: first.status });
    out.push({ pos, size, status });
    const last = replaced[replaced.length - 1];
    if (last && last.pos + last.size > end) out.push({ pos: end, size: last.pos + last.size - end, status: last.status });
    r.splice(lo, replaced.length, ...out);
    // join equal neighbours around the change
    let k = Math.max(0, lo - 1);
    const stop = Math.min(r.length - 1, lo + out.length);
    while (k < stop && k < r.length - 1) {
      const a = r[k]!;
      const b = r[k + 1]!;
      if (a.status === b.status && a.pos + a.size === b.pos) {
        a.size += b.size;
        r.splice(k + 1, 1);
      } else {
        ++k;
      }
    }
  }
}
