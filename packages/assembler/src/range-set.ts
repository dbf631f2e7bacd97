/** Sorted, disjoint half-open ranges `[pos, end)` of source positions. */
export class RangeSet {
  readonly #pos: number[] = [];
  readonly #end: number[] = [];

  /** How many ranges. */
  get size(): number {
    return this.#pos.length;
  }

  /** Index of the first range ending after `pos`. */
  #first(pos: number): number {
    let lo = 0;
    let hi = this.#end.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#end[mid]! <= pos) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Call `fn(pos, end, inSet)` for each part of `[pos, end)`, in order: inside a range of the set or not. */
  forEachPart(pos: number, end: number, fn: (pos: number, end: number, inSet: boolean) => void): void {
    let at = pos;
    for (let i = this.#first(pos); i < this.#pos.length && this.#pos[i]! < end; ++i) {
      if (this.#pos[i]! > at) fn(at, this.#pos[i]!, false);
      const stop = Math.min(end, this.#end[i]!);
      if (stop > at) fn(Math.max(at, this.#pos[i]!), stop, true);
      at = Math.max(at, stop);
    }
    if (at < end) fn(at, end, false);
  }

  /** Call `fn(pos, end)` for each part of `[pos, end)` outside the set. */
  forEachGap(pos: number, end: number, fn: (pos: number, end: number) => void): void {
    this.forEachPart(pos, end, (p, q, inSet) => {
      if (!inSet) fn(p, q);
    });
  }

  /**
   * Add `[pos, end)`, which must not overlap a range of the set (an empty range is ignored).
   * @throws Error (a bug in the caller) for an overlap.
   */
  add(pos: number, end: number): void {
    if (end <= pos) return;
    const i = this.#first(pos);
    if (i < this.#pos.length && this.#pos[i]! < end) throw new Error(`internal: [${pos}, ${end}) overlaps [${this.#pos[i]}, ${this.#end[i]})`);
    this.#pos.splice(i, 0, pos);
    this.#end.splice(i, 0, end);
  }

  /** Remove the range `[pos, end)` added before (nothing if it is not one of the set's ranges). */
  delete(pos: number, end: number): void {
    const i = this.#first(pos);
    if (this.#pos[i] === pos && this.#end[i] === end) {
      this.#pos.splice(i, 1);
      this.#end.splice(i, 1);
    }
  }
}
