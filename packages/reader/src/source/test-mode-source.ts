import type { Domain } from '@ddferry/mapfile';

import type { ReadResult, Source, SourceIdentity } from './source.js';

/**
 * GNU ddrescue's test mode (`-H FILE`, spec 3): a read succeeds only if it lies wholly
 * inside one finished block of the test map, and then reads the real data; any other
 * read fails whole, reading nothing. The apparent size is the end of the last finished
 * block when the real size is unknown or larger.
 */
export class TestModeSource implements Source {
  readonly name: string;
  readonly size: number;
  readonly identity: SourceIdentity;
  readonly #inner: Source;
  readonly #good: Domain;

  /** @param good the finished blocks of the test map (`Domain.fromOptions(0, -1, map)`). */
  constructor(inner: Source, good: Domain) {
    this.#inner = inner;
    this.#good = good;
    this.name = inner.name;
    const t = good.isEmpty() ? 0 : good.end;
    this.size = inner.size <= 0 || inner.size > t ? t : inner.size;
    this.identity = { ...inner.identity, size: this.size };
  }

  /** True if a read of `[pos, pos+size)` would succeed. */
  isGood(pos: number, size: number): boolean {
    return this.#good.includes({ pos, size });
  }

  read(buf: Uint8Array, size: number, pos: number): ReadResult {
    if (!this.#good.includes({ pos, size })) return { copied: 0, errno: 'EIO' };
    return this.#inner.read(buf, size, pos);
  }

  /**
   * Read the real data without the test, for a read already judged good by `isGood`
   * (ddrescue judges the requested block, then widens it to sectors with `-d`).
   */
  readData(buf: Uint8Array, size: number, pos: number): ReadResult {
    return this.#inner.read(buf, size, pos);
  }

  stillThere(): boolean {
    return this.#inner.stillThere();
  }

  reopen(): void {
    this.#inner.reopen();
  }

  close(): void {
    this.#inner.close();
  }
}
