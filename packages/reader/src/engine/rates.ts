/** GNU ddrescue's `Sliding_average`: the mean of the last N terms (integer division). */
export class SlidingAverage {
  readonly #terms: number;
  #data: number[] = [];
  #index: number;

  constructor(terms: number) {
    this.#terms = terms;
    this.#index = terms;
  }

  reset(): void {
    if (this.#index < this.#data.length) this.#index = this.#data.length;
    this.#data = [];
  }

  add(term: number): void {
    if (this.#index < this.#data.length) this.#data[this.#index++] = term;
    else if (this.#index > this.#data.length) this.#data.push(term);
    if (this.#index === this.#data.length) this.#index = 0;
    if (this.#data.length > this.#terms) this.#data.length = this.#terms;
  }

  value(): number {
    if (this.#data.length === 0) return 0;
    let sum = 0;
    for (const t of this.#data) sum += t;
    return Math.trunc(sum / this.#data.length);
  }
}
