/**
 * Block statuses and mapfile (phase) statuses, as the characters GNU ddrescue writes.
 *
 * Block statuses are ordered from least to most processed, which is also their
 * numeric code (`processedState`): `?` 0, `*` 1, `/` 2, `-` 3, `+` 4.
 */
export const BlockStatus = {
  nonTried: '?',
  nonTrimmed: '*',
  nonScraped: '/',
  badSector: '-',
  finished: '+',
} as const;
export type BlockStatus = (typeof BlockStatus)[keyof typeof BlockStatus];

/** The status characters in processed order; index = processed state. */
export const BLOCK_STATUS_CHARS = '?*/-+';

/** Status of the whole mapfile: the phase that was running when it was saved. */
export const MapfileStatus = {
  copying: '?',
  trimming: '*',
  scraping: '/',
  retrying: '-',
  filling: 'F',
  generating: 'G',
  finished: '+',
} as const;
export type MapfileStatus = (typeof MapfileStatus)[keyof typeof MapfileStatus];

const MAPFILE_STATUS_NAMES: Readonly<Record<MapfileStatus, string>> = {
  '?': 'copying',
  '*': 'trimming',
  '/': 'scraping',
  '-': 'retrying',
  F: 'filling',
  G: 'generating',
  '+': 'finished',
};

/** True if `ch` is one of `? * / - +`. */
export function isBlockStatus(ch: string): ch is BlockStatus {
  return ch.length === 1 && BLOCK_STATUS_CHARS.includes(ch);
}

/** True if `ch` is one of `? * / - F G +`. */
export function isMapfileStatus(ch: string): ch is MapfileStatus {
  return ch.length === 1 && '?*/-FG+'.includes(ch);
}

/** 0 for `?` up to 4 for `+`: how far the rescue has got with a block. */
export function processedState(st: BlockStatus): number {
  return BLOCK_STATUS_CHARS.indexOf(st);
}

/** The status whose processed state is `code` (0..4). */
export function statusOfCode(code: number): BlockStatus {
  const st = BLOCK_STATUS_CHARS[code];
  if (st === undefined) throw new Error(`invalid status code ${code}`);
  return st as BlockStatus;
}

/** ddrescue's name of a mapfile status (`copying`, `trimming`, ..., `finished`). */
export function mapfileStatusName(st: MapfileStatus): string {
  return MAPFILE_STATUS_NAMES[st];
}
