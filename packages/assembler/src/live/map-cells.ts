/**
 * The image map as the live page sees it: the source cut into at most
 * `maxCells` cells of `cellBytes` bytes (a multiple of the sector size, so
 * cells follow sector boundaries), each shown with the most urgent status it
 * holds, sent run-length encoded.
 *
 * | a cell holding | shows |
 * |---|---|
 * | any `-` (bad sector) | `-` |
 * | else any `/` (non-scraped) | `/` |
 * | else any `*` (non-trimmed) | `*` |
 * | else any `?` (non-tried) | `?` |
 * | only `+` (finished) | `+` |
 *
 * So a cell is green only when all of it is rescued, and a single bad sector
 * is never hidden by a large cell. Where `cellBytes` is the sector size (a
 * source of at most `maxCells` sectors) the picture is exact.
 */
import type { Block, BlockStatus } from '@ddferry/mapfile';

/** Cells of a map, at most; a 4 TB source gets cells of about 61 MiB. */
export const DEFAULT_MAX_CELLS = 65_536;

const RANK: Readonly<Record<BlockStatus, number>> = { '+': 0, '?': 1, '*': 2, '/': 3, '-': 4 };

/** How a source is cut into cells. */
export interface CellGrid {
  /** Source size in bytes. */
  readonly size: number;
  /** Bytes per cell (the last cell may be shorter). */
  readonly cellBytes: number;
  /** `ceil(size / cellBytes)`, at most `maxCells`. */
  readonly cells: number;
}

/**
 * The grid for a source of `size` bytes: the smallest multiple of `sectorSize`
 * that gives at most `maxCells` cells.
 * @throws RangeError for a size, sector size or cell count that is not a positive integer (size may be 0).
 */
export function cellGrid(size: number, sectorSize: number, maxCells: number): CellGrid {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`cellGrid: size must be an integer >= 0, not ${size}`);
  if (!Number.isSafeInteger(sectorSize) || sectorSize <= 0) throw new RangeError(`cellGrid: sectorSize must be a positive integer, not ${sectorSize}`);
  if (!Number.isSafeInteger(maxCells) || maxCells <= 0) throw new RangeError(`cellGrid: maxCells must be a positive integer, not ${maxCells}`);
  const least = Math.max(1, Math.ceil(size / maxCells));
  const cellBytes = Math.ceil(least / sectorSize) * sectorSize;
  return { size, cellBytes, cells: Math.ceil(size / cellBytes) };
}

/** Whatever tells statuses in order, as `Image.forEachStatus` does. */
export interface StatusSource {
  forEachStatus(block: Block, fn: (pos: number, end: number, status: BlockStatus) => void): void;
}

/**
 * Cells `[from, to)` of `grid` as runs: `<status><count>` repeated (`?12+3-1`),
 * counts in cells. Empty if the source tells nothing (an unbound image).
 */
export function encodeCells(source: StatusSource, grid: CellGrid, from: number, to: number): string {
  const g = grid.cellBytes;
  const pos = Math.min(grid.size, from * g);
  const end = Math.min(grid.size, to * g);
  const out: string[] = [];
  let runStatus: BlockStatus | undefined;
  let runCount = 0;
  const emit = (st: BlockStatus, n: number): void => {
    if (st === runStatus) {
      runCount += n;
      return;
    }
    if (runStatus !== undefined) out.push(`${runStatus}${runCount}`);
    runStatus = st;
    runCount = n;
  };
  let cell = -1;
  let worst: BlockStatus = '+';
  source.forEachStatus({ pos, size: end - pos }, (p, e, st) => {
    const c0 = Math.floor(p / g);
    const c1 = Math.floor((e - 1) / g);
    if (c0 === cell) {
      if (RANK[st] > RANK[worst]) worst = st;
    } else {
      if (cell >= 0) emit(worst, 1);
      cell = c0;
      worst = st;
    }
    if (c1 > c0) {
      emit(worst, 1);
      if (c1 - 1 > c0) emit(st, c1 - 1 - c0);
      cell = c1;
      worst = st;
    }
  });
  if (cell >= 0) emit(worst, 1);
  if (runStatus !== undefined) out.push(`${runStatus}${runCount}`);
  return out.join('');
}

/** Cells `[from, to)` touched by the byte range `b`. */
export function cellsOf(grid: CellGrid, b: Block): [number, number] {
  const g = grid.cellBytes;
  return [Math.floor(b.pos / g), Math.min(grid.cells, Math.ceil((b.pos + b.size) / g))];
}
