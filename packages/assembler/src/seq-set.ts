/**
 * A set of sequence numbers kept as sorted, disjoint, non-adjacent closed ranges
 * `[first, last]`: the pieces of a rescue are numbered from 1 and mostly merged
 * in order, so a million merged pieces usually take a handful of ranges.
 *
 * | operation | cost |
 * |---|---|
 * | `has` | O(log r) |
 * | `add` of the next number after the last range | O(1) |
 * | `add` elsewhere | O(r) at worst (array splice) |
 */
export class SeqSet {
  readonly #first: number[] = [];
  readonly #last: number[] = [];
  #count = 0;

  /**
   * Build from ranges as `toRanges` gives them.
   * @throws RangeError if a range is not `[first, last]` of safe integers from 1
   *   with `first ≤ last`, or the ranges are not sorted, disjoint and non-adjacent.
   */
  static fromRanges(ranges: readonly (readonly [number, number])[]): SeqSet {
    const set = new SeqSet();
    let end = 0;
    for (const [first, last] of ranges) {
      if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first < 1 || last < first) {
        throw new RangeError(`[${first}, ${last}] is not a range of sequence numbers`);
      }
      if (first <= end + 1 && end > 0) throw new RangeError(`[${first}, ${last}] is not after ${end} with a gap`);
      set.#first.push(first);
      set.#last.push(last);
      set.#count += last - first + 1;
      end = last;
    }
    return set;
  }

  /** How many numbers the set holds. */
  get size(): number {
    return this.#count;
  }

  /** How many ranges it takes. */
  get rangeCount(): number {
    return this.#first.length;
  }

  /** Index of the last range whose first number is ≤ `seq`, or -1. */
  #floor(seq: number): number {
    let lo = 0;
    let hi = this.#first.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.#first[mid]! <= seq) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  has(seq: number): boolean {
    const i = this.#floor(seq);
    return i >= 0 && seq <= this.#last[i]!;
  }

  /** Add `seq` (a safe integer from 1). @returns false if it was already there. */
  add(seq: number): boolean {
    if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError(`${seq} is not a sequence number`);
    const n = this.#first.length;
    if (n > 0 && this.#last[n - 1]! + 1 === seq) {
      this.#last[n - 1] = seq;
      ++this.#count;
      return true;
    }
    const i = this.#floor(seq);
    if (i >= 0 && seq <= this.#last[i]!) return false;
    const joinsLeft = i >= 0 && this.#last[i]! + 1 === seq;
    const joinsRight = i + 1 < n && this.#first[i + 1]! === seq + 1;
    if (joinsLeft && joinsRight) {
      this.#last[i] = this.#last[i + 1]!;
      this.#first.splice(i + 1, 1);
      this.#last.splice(i + 1, 1);
    } else if (joinsLeft) {
      this.#last[i] = seq;
    } else if (joinsRight) {
      this.#first[i + 1] = seq;
    } else {
      this.#first.splice(i + 1, 0, seq);
      this.#last.splice(i + 1, 0, seq);
    }
    ++this.#count;
    return true;
  }

  /** The ranges, sorted: `[[first, last], …]`. */
  toRanges(): [number, number][] {
    return this.#first.map((first, i) => [first, this.#last[i]!]);
  }

  /** The numbers in ascending order; with `limit`, only the `limit` largest. */
  toArray(limit = Number.POSITIVE_INFINITY): number[] {
    const out: number[] = [];
    for (let i = this.#first.length - 1; i >= 0 && out.length < limit; --i) {
      for (let s = this.#last[i]!; s >= this.#first[i]! && out.length < limit; --s) out.push(s);
    }
    return out.reverse();
  }

  /** A copy. */
  clone(): SeqSet {
    return SeqSet.fromRanges(this.toRanges());
  }
}
