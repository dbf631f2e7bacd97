/**
 * fast-check arbitraries for GNU ddrescue 1.27 mapfiles as TEXT, for the
 * compatibility suite: every file is fed unchanged to the real `ddrescuelog` and to
 * ours, so the text exercises the reader as much as the operations (number bases,
 * comments, CRLF, blank lines, unmerged neighbours, positions above 2^32).
 *
 * A mapfile is built in two steps: a model (status line and blocks, in the order
 * they are written) and then a random rendering of that model. Strict mapfiles are
 * contiguous; loose ones (`-L`, `-C`) are unordered with gaps and overlaps of the
 * same status.
 */
import fc from 'fast-check';

export type BlockStatusChar = '?' | '*' | '/' | '-' | '+';
export type MapfileStatusChar = BlockStatusChar | 'F' | 'G';

export const BLOCK_STATUS_CHARS: readonly BlockStatusChar[] = ['?', '*', '/', '-', '+'];
export const MAPFILE_STATUS_CHARS: readonly MapfileStatusChar[] = ['?', '*', '/', '-', 'F', 'G', '+'];

/** Largest position the wide shape reaches is about 2^45 + 60 * 2^39 < 2^46. */
const WIDE_START_MAX = 2 ** 44;
const WIDE_SIZE_MAX = 2 ** 39;
const INT_MAX = 2 ** 31 - 1;

export interface MapBlock {
  readonly pos: number;
  readonly size: number;
  readonly status: BlockStatusChar;
}

/** `[pos, end)`. */
export interface Extent {
  readonly pos: number;
  readonly end: number;
}

export interface MapfileModel {
  readonly currentPos: number;
  readonly currentStatus: MapfileStatusChar;
  /** `undefined` leaves the pass out (ddrescue then reads 1). */
  readonly currentPass: number | undefined;
  /** In the order written: contiguous for strict mapfiles, any order for loose ones. */
  readonly blocks: readonly MapBlock[];
}

/** A deliberate defect, so that error messages and exit codes get compared too. */
export type Corruption =
  | 'bad-status-char'
  | 'not-contiguous'
  | 'missing-status-line'
  | 'zero-size'
  | 'negative-pos'
  | 'octal-08'
  | 'pass-zero';

const CORRUPTIONS: readonly Corruption[] = [
  'bad-status-char',
  'not-contiguous',
  'missing-status-line',
  'zero-size',
  'negative-pos',
  'octal-08',
  'pass-zero',
];

export interface RandomMapfile {
  readonly model: MapfileModel;
  readonly text: string;
  /** The blocks' extent (lowest pos to highest end); `{0, 0}` when there are none. */
  readonly extent: Extent;
  readonly corruption: Corruption | undefined;
}

/** How a random strict mapfile looks. */
export interface MapfileShape {
  /**
   * `wide` (default): sizes from 1 byte to 2^39 and first positions up to 2^44, so
   * most files reach past 2^32. `narrow`: block sizes of at most 64 KiB, so at most
   * about 4 MiB of blocks, for `-l` lists and bitmaps.
   */
  readonly sizes?: 'wide' | 'narrow';
  /** `any` (default): mostly 0, sometimes far above 2^32. `low`: mostly 0, else below 1 MiB. */
  readonly start?: 'any' | 'low';
  /** Weight of `+` against 1 for each other block status. Default 1. */
  readonly finishedWeight?: number;
  /** Percent chance of one `Corruption`. Default 0. */
  readonly corruptPercent?: number;
  /** Default 60. */
  readonly maxBlocks?: number;
}

// ---------------------------------------------------------------------------
// Numbers

/** The ways `%lli` reads a number: decimal, `0x`/`0X` hex in either case, leading-0 octal. */
export type NumberStyle = 'dec' | 'hex' | 'HEX' | '0Xhex' | '0XHEX' | 'hex08' | 'oct';

export const numberStyleArb: fc.Arbitrary<NumberStyle> = fc.oneof(
  { arbitrary: fc.constant<NumberStyle>('dec'), weight: 4 },
  { arbitrary: fc.constantFrom<NumberStyle>('hex', 'HEX', '0Xhex', '0XHEX'), weight: 4 },
  { arbitrary: fc.constant<NumberStyle>('hex08'), weight: 2 },
  { arbitrary: fc.constant<NumberStyle>('oct'), weight: 2 },
);

/** Write `n` (a non-negative safe integer) as C source would. */
export function formatCNumber(n: number, style: NumberStyle): string {
  switch (style) {
    case 'dec':
      return n.toString(10);
    case 'hex':
      return `0x${n.toString(16)}`;
    case 'HEX':
      return `0x${n.toString(16).toUpperCase()}`;
    case '0Xhex':
      return `0X${n.toString(16)}`;
    case '0XHEX':
      return `0X${n.toString(16).toUpperCase()}`;
    case 'hex08':
      return `0x${n.toString(16).toUpperCase().padStart(8, '0')}`;
    case 'oct':
      return n === 0 ? '0' : `0${n.toString(8)}`;
  }
}

// ---------------------------------------------------------------------------
// Models

const oddSmallArb = fc.integer({ min: 0, max: 499 }).map((k) => 2 * k + 1);

function sizeArb(shape: MapfileShape): fc.Arbitrary<number> {
  if (shape.sizes === 'narrow') {
    return fc.oneof(
      { arbitrary: oddSmallArb, weight: 3 },
      { arbitrary: fc.integer({ min: 1, max: 128 }).map((k) => k * 512), weight: 5 },
      { arbitrary: fc.integer({ min: 1, max: 65536 }), weight: 1 },
    );
  }
  return fc.oneof(
    { arbitrary: oddSmallArb, weight: 3 },
    { arbitrary: fc.integer({ min: 1, max: 2048 }).map((k) => k * 512), weight: 5 },
    { arbitrary: fc.integer({ min: 1, max: 2 ** 18 }).map((k) => k * 4096), weight: 1 },
    { arbitrary: fc.integer({ min: 1, max: WIDE_SIZE_MAX }), weight: 1 },
  );
}

function startArb(shape: MapfileShape): fc.Arbitrary<number> {
  if (shape.start === 'low') {
    return fc.oneof(
      { arbitrary: fc.constant(0), weight: 6 },
      { arbitrary: fc.integer({ min: 1, max: 2048 }).map((k) => k * 512), weight: 1 },
      { arbitrary: oddSmallArb, weight: 1 },
    );
  }
  return fc.oneof(
    { arbitrary: fc.constant(0), weight: 6 },
    { arbitrary: fc.integer({ min: 1, max: 4096 }).map((k) => k * 512), weight: 1 },
    { arbitrary: fc.integer({ min: -4096, max: 4096 }).map((d) => 2 ** 32 + d), weight: 1 },
    { arbitrary: fc.integer({ min: 1, max: WIDE_START_MAX }), weight: 1 },
  );
}

function blockStatusArb(finishedWeight = 1): fc.Arbitrary<BlockStatusChar> {
  return fc.oneof(
    { arbitrary: fc.constantFrom<BlockStatusChar>('?', '*', '/', '-'), weight: 4 },
    { arbitrary: fc.constant<BlockStatusChar>('+'), weight: finishedWeight },
  );
}

/**
 * Statuses for `n` consecutive blocks. A quarter of the blocks repeat their left
 * neighbour's status, so unmerged same-status neighbours are common.
 */
function statusRunArb(n: number, finishedWeight = 1): fc.Arbitrary<BlockStatusChar[]> {
  return fc
    .array(fc.tuple(blockStatusArb(finishedWeight), fc.noBias(fc.integer({ min: 0, max: 3 }))), { minLength: n, maxLength: n })
    .map((picks) => {
      const out: BlockStatusChar[] = [];
      for (const [status, repeat] of picks) out.push(repeat === 0 && out.length > 0 ? out[out.length - 1]! : status);
      return out;
    });
}

function currentPassArb(): fc.Arbitrary<number | undefined> {
  return fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 1 },
    { arbitrary: fc.integer({ min: 1, max: 5 }), weight: 6 },
    { arbitrary: fc.integer({ min: 1, max: INT_MAX }), weight: 1 },
  );
}

/** Random status-line fields for a file whose blocks span `extent`. */
function statusLineArb(extent: Extent): fc.Arbitrary<Pick<MapfileModel, 'currentPos' | 'currentStatus' | 'currentPass'>> {
  return fc.record({
    currentPos: fc.oneof(
      { arbitrary: fc.constant(0), weight: 2 },
      { arbitrary: fc.integer({ min: extent.pos, max: extent.end }), weight: 3 },
      { arbitrary: fc.integer({ min: 0, max: 2 ** 45 }), weight: 1 },
    ),
    currentStatus: fc.constantFrom(...MAPFILE_STATUS_CHARS),
    currentPass: currentPassArb(),
  });
}

function extentOf(blocks: readonly MapBlock[]): Extent {
  if (blocks.length === 0) return { pos: 0, end: 0 };
  let pos = Number.POSITIVE_INFINITY;
  let end = 0;
  for (const b of blocks) {
    pos = Math.min(pos, b.pos);
    end = Math.max(end, b.pos + b.size);
  }
  return { pos, end };
}

/** A strict (contiguous) mapfile model: 1 to `maxBlocks` blocks. */
export function mapfileModelArb(shape: MapfileShape = {}): fc.Arbitrary<MapfileModel> {
  const maxBlocks = shape.maxBlocks ?? 60;
  return fc
    .record({
      start: startArb(shape),
      sizes: fc.array(sizeArb(shape), { minLength: 1, maxLength: maxBlocks }),
    })
    .chain(({ start, sizes }) => {
      const end = start + sizes.reduce((a, b) => a + b, 0);
      return fc.record({
        statuses: statusRunArb(sizes.length, shape.finishedWeight),
        line: statusLineArb({ pos: start, end }),
      }).map(({ statuses, line }) => {
        const blocks: MapBlock[] = [];
        let pos = start;
        sizes.forEach((size, i) => {
          blocks.push({ pos, size, status: statuses[i]! });
          pos += size;
        });
        return { ...line, blocks };
      });
    });
}

/** Merge neighbours of the same status, as ddrescue's `compact_sblock_vector` does. */
export function compactBlocks(blocks: readonly MapBlock[]): MapBlock[] {
  const out: MapBlock[] = [];
  for (const b of blocks) {
    const last = out[out.length - 1];
    if (last && last.status === b.status && last.pos + last.size === b.pos) {
      out[out.length - 1] = { pos: last.pos, size: last.size + b.size, status: b.status };
    } else {
      out.push(b);
    }
  }
  return out;
}

/** A position strictly inside `[pos, end)`'s interior, biased to sector multiples. */
function interiorPosArb(pos: number, end: number): fc.Arbitrary<number> {
  const any = fc.integer({ min: pos + 1, max: end - 1 });
  const firstSector = Math.floor(pos / 512) + 1;
  const lastSector = Math.ceil(end / 512) - 1;
  if (lastSector < firstSector) return any;
  return fc.oneof(any, fc.integer({ min: firstSector, max: lastSector }).map((k) => k * 512));
}

/** Up to `maxCuts` sorted distinct cut positions inside `(pos, end)`. */
function cutsArb(pos: number, end: number, maxCuts: number, preferred: readonly number[] = []): fc.Arbitrary<number[]> {
  if (end - pos < 2 || maxCuts === 0) return fc.constant([]);
  const inside = preferred.filter((p) => p > pos && p < end);
  const candidate =
    inside.length > 0 ? fc.oneof(fc.constantFrom(...inside), interiorPosArb(pos, end)) : interiorPosArb(pos, end);
  return fc
    .array(candidate, { maxLength: maxCuts })
    .map((cuts) => [...new Set(cuts)].sort((a, b) => a - b));
}

/** A small move of a border: none, a few bytes, or a few sectors, either way. */
const borderDeltaArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.constant(0), weight: 4 },
  { arbitrary: fc.integer({ min: -4096, max: 4096 }), weight: 1 },
  { arbitrary: fc.integer({ min: -64, max: 64 }).map((k) => k * 512), weight: 1 },
);

/** An extent near `extent`: same borders, or moved a little (never below 0 or empty). */
function nearbyExtentArb(extent: Extent): fc.Arbitrary<Extent> {
  return fc.tuple(borderDeltaArb, borderDeltaArb).map(([d1, d2]) => {
    const pos = Math.max(0, extent.pos + d1);
    const end = Math.max(pos + 1, extent.end + d2);
    return { pos, end };
  });
}

function splitIntoBlocks(extent: Extent, cuts: readonly number[], statuses: readonly BlockStatusChar[]): MapBlock[] {
  const borders = [extent.pos, ...cuts, extent.end];
  const blocks: MapBlock[] = [];
  for (let i = 0; i + 1 < borders.length; ++i) {
    blocks.push({ pos: borders[i]!, size: borders[i + 1]! - borders[i]!, status: statuses[i]! });
  }
  return blocks;
}

/**
 * A strict model over about `extent` (borders same or moved a little), cut at random
 * positions, often at `preferred` ones.
 */
function modelOverArb(extent: Extent, preferred: readonly number[] = [], finishedWeight = 1): fc.Arbitrary<MapfileModel> {
  return nearbyExtentArb(extent).chain((ext) =>
    cutsArb(ext.pos, ext.end, 59, preferred).chain((cuts) =>
      fc.record({ statuses: statusRunArb(cuts.length + 1, finishedWeight), line: statusLineArb(ext) }).map(({ statuses, line }) => ({
        ...line,
        blocks: splitIntoBlocks(ext, cuts, statuses),
      })),
    ),
  );
}

/**
 * How a second mapfile relates to the first:
 * - `random`: about the same extent (same or slightly moved borders), cut anywhere
 *   (often at the first file's borders), random statuses;
 * - `resplit`: the same blocks after compaction, cut differently (`-p` finds them equal);
 * - `finished-only`: like `resplit`, but non-`+` blocks get other non-`+` statuses
 *   (`-P` finds them equal, `-p` usually not).
 */
export type SecondMode = 'random' | 'resplit' | 'finished-only';

/** A strict mapfile model over roughly the same extent as `first`. */
export function secondModelArb(first: MapfileModel, mode: SecondMode): fc.Arbitrary<MapfileModel> {
  const extent = extentOf(first.blocks);
  if (mode === 'random') return modelOverArb(extent, first.blocks.map((b) => b.pos));
  const compacted = compactBlocks(first.blocks);
  const pieces = compacted.map((b) =>
    fc
      .tuple(cutsArb(b.pos, b.pos + b.size, 2), fc.array(fc.constantFrom<BlockStatusChar>('?', '*', '/', '-'), { minLength: 3, maxLength: 3 }))
      .map(([cuts, others]) =>
        splitIntoBlocks({ pos: b.pos, end: b.pos + b.size }, cuts, [0, 1, 2].map((i) =>
          mode === 'finished-only' && b.status !== '+' ? others[i]! : b.status)),
      ),
  );
  return fc.record({ pieces: fc.tuple(...pieces), line: statusLineArb(extent) }).map(({ pieces: ps, line }) => ({
    ...line,
    blocks: ps.flat(),
  }));
}

/**
 * A loose mapfile model over about `extent`: segments that are `+` (sometimes written
 * as two overlapping lines), gaps, or (unless `finishedOnly`) other statuses, written
 * in random order.
 */
export function looseModelArb(extent: Extent, finishedOnly = false): fc.Arbitrary<MapfileModel> {
  const kindArb = fc.oneof(
    { arbitrary: fc.constant<BlockStatusChar | 'gap'>('+'), weight: 3 },
    { arbitrary: fc.constant<BlockStatusChar | 'gap'>('gap'), weight: 2 },
    {
      arbitrary: finishedOnly ? fc.constant<BlockStatusChar | 'gap'>('gap') : fc.constantFrom<BlockStatusChar | 'gap'>('?', '*', '/', '-'),
      weight: 1,
    },
  );
  return nearbyExtentArb(extent).chain((ext) =>
    cutsArb(ext.pos, ext.end, 20).chain((cuts) => {
      const borders = [ext.pos, ...cuts, ext.end];
      const segments = borders.slice(0, -1).map((pos, i) => ({ pos, end: borders[i + 1]! }));
      const segmentArbs = segments.map((seg) =>
        fc.tuple(kindArb, fc.boolean(), fc.integer({ min: 0, max: 2 ** 30 }), fc.integer({ min: 0, max: 2 ** 30 })).map(
          ([kind, overlap, r1, r2]): MapBlock[] => {
            if (kind === 'gap') return [];
            const size = seg.end - seg.pos;
            if (kind !== '+' || !overlap || size < 3) return [{ pos: seg.pos, size, status: kind }];
            // Two lines [pos, m2) and [m1, end) with pos < m1 < m2 < end: they overlap.
            const m1 = seg.pos + 1 + (r1 % (size - 2));
            const m2 = m1 + 1 + (r2 % (seg.end - m1 - 1));
            return [
              { pos: seg.pos, size: m2 - seg.pos, status: '+' },
              { pos: m1, size: seg.end - m1, status: '+' },
            ];
          },
        ),
      );
      return fc.tuple(...segmentArbs).chain((parts) => {
        const blocks = parts.flat();
        return fc.record({
          order: fc.shuffledSubarray(blocks, { minLength: blocks.length, maxLength: blocks.length }),
          line: statusLineArb(ext),
        }).map(({ order, line }) => ({ ...line, blocks: order }));
      });
    }),
  );
}

// ---------------------------------------------------------------------------
// Rendering

const commentCharArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), weight: 20 },
  { arbitrary: fc.constantFrom('é', '€', '\t', 'ÿ'), weight: 1 },
);
const commentTextArb = fc.array(commentCharArb, { maxLength: 30 }).map((cs) => cs.join(''));
/** LF, CRLF, and very rarely a lone CR (which does not end a line for ddrescue). */
const eolArb = fc.oneof(
  { arbitrary: fc.constant('\n'), weight: 90 },
  { arbitrary: fc.constant('\r\n'), weight: 30 },
  { arbitrary: fc.constant('\r'), weight: 1 },
);
/** Mostly none; rarely so long that the line passes ddrescue's 127-character buffer. */
const indentArb = fc.oneof(
  { arbitrary: fc.constant(''), weight: 60 },
  { arbitrary: fc.constantFrom(' ', '  ', '\t', ' \t '), weight: 10 },
  { arbitrary: fc.integer({ min: 80, max: 130 }).map((n) => ' '.repeat(n)), weight: 1 },
);
/** Any C white space may separate fields, even vertical tab and form feed. */
const separatorArb = fc.oneof(
  { arbitrary: fc.constant(' '), weight: 40 },
  { arbitrary: fc.constantFrom('  ', '\t', ' \t', '     '), weight: 10 },
  { arbitrary: fc.constantFrom('\v', '\f', ' \r '), weight: 1 },
);

/** A line that is not data: blank, white space only, or a comment. Ends with its EOL. */
const fillerLineArb: fc.Arbitrary<string> = fc
  .tuple(
    fc.oneof(
      { arbitrary: fc.constant(''), weight: 2 },
      { arbitrary: fc.constantFrom(' ', '\t', '   '), weight: 1 },
      { arbitrary: fc.tuple(indentArb, commentTextArb).map(([i, t]) => `${i}#${t}`), weight: 3 },
      { arbitrary: fc.constant('# Mapfile. Created by GNU ddrescue version 1.27'), weight: 1 },
    ),
    eolArb,
  )
  .map(([line, eol]) => line + eol);

const fillersArb = fc.oneof(
  { arbitrary: fc.constant<string[]>([]), weight: 6 },
  { arbitrary: fc.array(fillerLineArb, { minLength: 1, maxLength: 3 }), weight: 1 },
);

/** What follows the last field: nothing, a comment after white space, or (blocks only) glued junk. */
function tailArb(blockLine: boolean): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constant(''), weight: 8 },
    { arbitrary: fc.tuple(fc.constantFrom(' ', '  ', '\t'), commentTextArb).map(([s, t]) => `${s}#${t}`), weight: 2 },
    { arbitrary: fc.constantFrom(' ', '\t'), weight: 1 },
    { arbitrary: blockLine ? fc.constantFrom('#glued', 'junk', ' trailing words') : fc.constant(''), weight: 1 },
  );
}

interface LineLook {
  readonly before: readonly string[];
  readonly indent: string;
  readonly sep1: string;
  readonly sep2: string;
  readonly style1: NumberStyle;
  readonly style2: NumberStyle;
  readonly tail: string;
  readonly eol: string;
}

function lineLookArb(blockLine: boolean): fc.Arbitrary<LineLook> {
  return fc.record({
    before: fillersArb,
    indent: indentArb,
    sep1: separatorArb,
    sep2: separatorArb,
    style1: numberStyleArb,
    style2: numberStyleArb,
    tail: tailArb(blockLine),
    eol: eolArb,
  });
}

/** `%d` reads the pass in decimal, so leading zeros are harmless: `010` is 10. */
const passZerosArb = fc.oneof({ arbitrary: fc.constant(''), weight: 8 }, { arbitrary: fc.constantFrom('0', '00'), weight: 1 });

interface Rendering {
  readonly header: readonly string[];
  readonly statusLook: LineLook;
  readonly passZeros: string;
  readonly blockLooks: readonly LineLook[];
  readonly trailer: readonly string[];
  readonly finalEol: boolean;
  readonly corruption: { readonly kind: Corruption; readonly at: number } | undefined;
}

function renderingArb(blockCount: number, corruptPercent: number): fc.Arbitrary<Rendering> {
  return fc.record({
    header: fillersArb,
    statusLook: lineLookArb(false),
    passZeros: passZerosArb,
    blockLooks: fc.array(lineLookArb(true), { minLength: blockCount, maxLength: blockCount }),
    trailer: fillersArb,
    finalEol: fc.oneof({ arbitrary: fc.constant(true), weight: 9 }, { arbitrary: fc.constant(false), weight: 1 }),
    corruption: fc.noBias(fc.integer({ min: 0, max: 99 })).chain((roll) =>
      roll < corruptPercent
        ? fc.record({ kind: fc.constantFrom(...CORRUPTIONS), at: fc.nat() })
        : fc.constant(undefined),
    ),
  });
}

/** The text of `model` with look `r`. */
function renderMapfile(model: MapfileModel, r: Rendering): string {
  const n = model.blocks.length;
  const bad = r.corruption;
  const target = bad && n > 0 ? bad.at % n : -1;
  const parts: string[] = [...r.header];

  if (bad?.kind !== 'missing-status-line') {
    const look = r.statusLook;
    parts.push(...look.before);
    let line = look.indent + formatCNumber(model.currentPos, look.style1) + look.sep1 + model.currentStatus;
    const pass = bad?.kind === 'pass-zero' ? 0 : model.currentPass;
    if (pass !== undefined) line += look.sep2 + r.passZeros + pass.toString(10);
    parts.push(line + look.tail + look.eol);
  }

  model.blocks.forEach((b, i) => {
    const look = r.blockLooks[i]!;
    const hit = i === target ? bad?.kind : undefined;
    let pos = formatCNumber(b.pos, look.style1);
    let size = formatCNumber(b.size, look.style2);
    let status: string = b.status;
    if (hit === 'bad-status-char') status = ['X', 'F', 'G', '%'][b.pos % 4]!;
    if (hit === 'not-contiguous') pos = formatCNumber(b.pos + 1, look.style1);
    if (hit === 'zero-size') size = '0';
    if (hit === 'negative-pos') pos = `-${pos}`;
    if (hit === 'octal-08') size = `08${b.size % 8}`;
    parts.push(...look.before, look.indent + pos + look.sep1 + size + look.sep2 + status + look.tail + look.eol);
  });

  parts.push(...r.trailer);
  let text = parts.join('');
  if (!r.finalEol) text = text.replace(/\r?\n$/, '');
  return text;
}

/** Render `model` as random mapfile text (with a `corruptPercent` chance of one defect). */
export function renderArb(model: MapfileModel, corruptPercent = 0): fc.Arbitrary<RandomMapfile> {
  return renderingArb(model.blocks.length, corruptPercent).map((r) => ({
    model,
    text: renderMapfile(model, r),
    extent: extentOf(model.blocks),
    corruption: r.corruption?.kind,
  }));
}

/** Rare strict models: no blocks at all, or the single empty block `0 0 S` that ddrescue allows. */
const degenerateModelArb: fc.Arbitrary<MapfileModel> = fc
  .record({ line: statusLineArb({ pos: 0, end: 0 }), status: fc.constantFrom(...BLOCK_STATUS_CHARS), empty: fc.boolean() })
  .map(({ line, status, empty }) => ({ ...line, blocks: empty ? [] : [{ pos: 0, size: 0, status }] }));

/** A random strict mapfile as text (one in forty has no blocks, or one empty block). */
export function mapfileArb(shape: MapfileShape = {}): fc.Arbitrary<RandomMapfile> {
  return fc
    .oneof({ arbitrary: mapfileModelArb(shape), weight: 39 }, { arbitrary: degenerateModelArb, weight: 1 })
    .chain((model) => renderArb(model, shape.corruptPercent ?? 0));
}

/** A second strict mapfile as text, over roughly the same extent as `first` (for -x/-y/-z/-p/-P and strict -m). */
export function secondMapfileArb(first: MapfileModel, mode?: SecondMode): fc.Arbitrary<RandomMapfile> {
  const modeArb = mode
    ? fc.constant(mode)
    : fc.oneof(
        { arbitrary: fc.constant<SecondMode>('random'), weight: 3 },
        { arbitrary: fc.constantFrom<SecondMode>('resplit', 'finished-only'), weight: 1 },
      );
  return modeArb.chain((m) => secondModelArb(first, m)).chain((model) => renderArb(model));
}

/** A loose domain mapfile as text: unordered `+` blocks with gaps (and, unless `finishedOnly`, some other statuses). */
export function looseMapfileArb(extent: Extent, finishedOnly = false): fc.Arbitrary<RandomMapfile> {
  return looseModelArb(extent, finishedOnly).chain((model) => renderArb(model));
}

/** A loose mapfile over a random extent of the given shape (for `-t -L`, `-C`, `-P -L`). */
export function standaloneLooseMapfileArb(shape: MapfileShape = {}): fc.Arbitrary<RandomMapfile> {
  return mapfileModelArb(shape).chain((model) => looseMapfileArb(extentOf(model.blocks)));
}

/** A strict mapfile over about `extent` (for strict `-m` domain maps; `finishedWeight` as in `MapfileShape`). */
export function mapfileOverArb(extent: Extent, finishedWeight = 1): fc.Arbitrary<RandomMapfile> {
  const ext = { pos: extent.pos, end: Math.max(extent.end, extent.pos + 1) };
  return modelOverArb(ext, [], finishedWeight).chain((model) => renderArb(model));
}
