/**
 * Map pictures in the manner of ddrescueview: the source as a grid of cells, row-major,
 * each cell a range of bytes coloured by the statuses found in it, with a title line
 * and a legend. No file I/O and no dependencies: `drawMapPixels` gives RGBA pixels
 * (`encodePng` in render-png.ts turns them into a PNG), `drawMapSvg` gives SVG text.
 */
import { UNBOUNDED } from './block.js';
import { GLYPH_ADVANCE, GLYPH_HEIGHT, LINE_HEIGHT, glyphColumns, textWidth } from './font5x7.js';
import { formatNum } from './format-num.js';

/**
 * The colours of map pictures, as CSS hex strings. The five block statuses use
 * ddrescueview's colours (its `COLOR_*` constants, which Lazarus writes as `$BBGGRR`):
 * non-tried `$404040`, non-trimmed `$00e0ff`, non-scraped ("non-split") `$ff2020`, bad
 * `$0000ff`, finished `$20e020`, no data `clGray`, current position `$ffff00`. The
 * pipeline's states refine finished (`+`) bytes and take hues none of those use: teal
 * (rescued, not yet shipped), violet (shipped, not yet merged), dark green (merged).
 */
export const RENDER_PALETTE = Object.freeze({
  nonTried: '#404040',
  nonTrimmed: '#ffe000',
  nonScraped: '#2020ff',
  badSector: '#ff0000',
  finished: '#20e020',
  rescued: '#00a0a0',
  shipped: '#b040e0',
  merged: '#006400',
  /** cells with no block in them (past the end, before the first block) and grid lines */
  noData: '#808080',
  /** the frame around the cell that holds the mapfile's current position */
  active: '#00ffff',
  background: '#ffffff',
  text: '#000000',
} as const);

/**
 * The states a cell can hold; the index is the state's code. 0..4 are the block
 * statuses' processed states (`?` `*` `/` `-` `+`); 5..7 refine `+` with the pipeline's
 * overlays.
 */
export const RENDER_STATES = Object.freeze(['nonTried', 'nonTrimmed', 'nonScraped', 'badSector', 'finished', 'rescued', 'shipped', 'merged'] as const);
export type RenderState = (typeof RENDER_STATES)[number];

/** Legend labels of the states. */
export const RENDER_STATE_LABELS: Readonly<Record<RenderState, string>> = Object.freeze({
  nonTried: 'non-tried',
  nonTrimmed: 'non-trimmed',
  nonScraped: 'non-scraped',
  badSector: 'bad-sector',
  finished: 'rescued',
  rescued: 'rescued, not shipped',
  shipped: 'shipped, not merged',
  merged: 'merged',
});

/**
 * ddrescueview's blending weights (`WEIGHT_*`): a cell's colour is the weighted mean of
 * the colours of the states present in it, whatever their share of the cell, so one
 * bad sector turns a cell mostly red. The overlay states weigh as finished.
 */
export const BLEND_WEIGHTS = Object.freeze([1, 4, 10, 40, 2, 2, 2, 2] as const);

/** `worst` mixing: the first state of this list present in a cell gives its colour. */
export const WORST_FIRST = Object.freeze(['badSector', 'nonScraped', 'nonTrimmed', 'nonTried', 'rescued', 'shipped', 'merged', 'finished'] as const);

/** How a cell holding several states is coloured. */
export type CellMix = 'blend' | 'worst';

/** Runs of states in ascending order: an `SblockVector` is one (codes 0..4). */
export interface StateRuns {
  readonly length: number;
  pos(i: number): number;
  end(i: number): number;
  code(i: number): number;
}

/** Overlays of the pipeline: maps whose `+` blocks are shipped or merged bytes. */
export interface RenderOverlays {
  readonly shipped?: StateRuns | undefined;
  readonly merged?: StateRuns | undefined;
}

const FINISHED = 4;
const RESCUED = 5;
const SHIPPED = 6;
const MERGED = 7;

class RunList implements StateRuns {
  #pos: number[] = [];
  #end: number[] = [];
  #code: number[] = [];
  get length(): number {
    return this.#pos.length;
  }
  pos(i: number): number {
    return this.#pos[i]!;
  }
  end(i: number): number {
    return this.#end[i]!;
  }
  code(i: number): number {
    return this.#code[i]!;
  }
  push(pos: number, end: number, code: number): void {
    const n = this.#pos.length;
    if (pos >= end) return;
    if (n > 0 && this.#end[n - 1] === pos && this.#code[n - 1] === code) this.#end[n - 1] = end;
    else {
      this.#pos.push(pos);
      this.#end.push(end);
      this.#code.push(code);
    }
  }
}

/** A cursor over the `+` blocks of an overlay, moving forwards only. */
class FinishedCursor {
  readonly #runs: StateRuns | undefined;
  #i = 0;
  constructor(runs: StateRuns | undefined) {
    this.#runs = runs;
  }
  /** Cut `[pos, end)` into parts inside and outside the overlay's `+` blocks, in order. */
  split(pos: number, end: number, emit: (pos: number, end: number, inside: boolean) => void): void {
    const r = this.#runs;
    if (!r) {
      emit(pos, end, false);
      return;
    }
    let x = pos;
    while (x < end) {
      while (this.#i < r.length && (r.code(this.#i) !== FINISHED || r.end(this.#i) <= x)) ++this.#i;
      if (this.#i < r.length && r.pos(this.#i) <= x) {
        const y = Math.min(end, r.end(this.#i));
        emit(x, y, true);
        x = y;
      } else {
        const y = this.#i < r.length ? Math.min(end, r.pos(this.#i)) : end;
        emit(x, y, false);
        x = y;
      }
    }
  }
}

/**
 * Refine the finished blocks of `map` with the overlays: a `+` byte is merged if it is
 * `+` in `merged`, else shipped if it is `+` in `shipped`, else rescued (not shipped).
 * Other statuses of `map` are kept as they are, whatever the overlays say. Linear in
 * the number of blocks of the three maps.
 */
export function overlayRuns(map: StateRuns, overlays: RenderOverlays): StateRuns {
  const out = new RunList();
  const merged = new FinishedCursor(overlays.merged);
  const shipped = new FinishedCursor(overlays.shipped);
  for (let i = 0; i < map.length; ++i) {
    const code = map.code(i);
    if (code !== FINISHED) {
      out.push(map.pos(i), map.end(i), code);
      continue;
    }
    merged.split(map.pos(i), map.end(i), (p, e, isMerged) => {
      if (isMerged) out.push(p, e, MERGED);
      else shipped.split(p, e, (q, f, isShipped) => out.push(q, f, isShipped ? SHIPPED : RESCUED));
    });
  }
  return out;
}

/** Options of `layoutMap`. */
export interface LayoutOptions {
  /** Picture width in pixels, 320..4096. Default 800. */
  readonly width?: number;
  /** Picture height in pixels, 240..4096. Default 600. */
  readonly height?: number;
  /** Cells hold whole sectors of this size. Default 512. */
  readonly sectorSize?: number;
  /** Colouring of cells that hold several states. Default `blend` (ddrescueview's). */
  readonly mix?: CellMix;
  /** Name shown in the title line. Default `mapfile`. */
  readonly name?: string;
  /** The mapfile's current position, framed as ddrescueview does; none if omitted. */
  readonly currentPos?: number;
  /** True if the runs carry overlay states: the legend then splits finished into them. */
  readonly overlay?: boolean;
}

/** Default options of `layoutMap`. */
export const LAYOUT_DEFAULTS = Object.freeze({ width: 800, height: 600, sectorSize: 512, mix: 'blend' as CellMix, name: 'mapfile', overlay: false });

/** One line of the legend. */
export interface LegendEntry {
  readonly state: RenderState;
  readonly colour: string;
  readonly bytes: number;
  /** Percentage of the drawn size, two decimals ("-" for an empty map). */
  readonly percent: string;
}

/** A text line of the picture (top-left corner, in pixels). */
export interface TextItem {
  readonly x: number;
  readonly y: number;
  readonly text: string;
}

/** A filled square of the picture (legend swatches). */
export interface Swatch {
  readonly x: number;
  readonly y: number;
  readonly size: number;
  readonly colour: string;
}

/** Everything both drawers need: where the cells, texts and swatches go. */
export interface MapLayout {
  readonly width: number;
  readonly height: number;
  /** Size of a font pixel in picture pixels (1 or 2). */
  readonly scale: number;
  /** Bytes drawn: the end of the last block (its start if it is unbounded). */
  readonly size: number;
  readonly unbounded: boolean;
  readonly bytesPerCell: number;
  readonly cellCount: number;
  /** Grid: top-left corner, columns, rows used, cell pitch (a cell is pitch-1 pixels wide, plus one of grid line). */
  readonly grid: { readonly x: number; readonly y: number; readonly cols: number; readonly rows: number; readonly pitch: number };
  /** `0xRRGGBB` of each cell. */
  readonly cellColours: Uint32Array;
  /** The state mask of each cell (bit `1 << code`). */
  readonly cellMasks: Uint8Array;
  /** Index of the framed cell, or -1. */
  readonly activeCell: number;
  readonly legend: readonly LegendEntry[];
  readonly bytesByState: readonly number[];
  readonly texts: readonly TextItem[];
  readonly swatches: readonly Swatch[];
}

/** RGBA pixels, row-major, 4 bytes a pixel. */
export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

function rgbOf(hex: string): number {
  return Number.parseInt(hex.slice(1), 16);
}

function hexOf(rgb: number): string {
  return `#${rgb.toString(16).padStart(6, '0')}`;
}

const STATE_RGB = RENDER_STATES.map((s) => rgbOf(RENDER_PALETTE[s]));
const NO_DATA_RGB = rgbOf(RENDER_PALETTE.noData);

/** The colour of every state mask (0..255), for one mixing rule. */
function mixTable(mix: CellMix): Uint32Array {
  const table = new Uint32Array(256);
  for (let mask = 0; mask < 256; ++mask) {
    if (mask === 0) {
      table[mask] = NO_DATA_RGB;
    } else if (mix === 'worst') {
      const st = WORST_FIRST.find((s) => (mask & (1 << RENDER_STATES.indexOf(s))) !== 0)!;
      table[mask] = STATE_RGB[RENDER_STATES.indexOf(st)]!;
    } else {
      let r = 0, g = 0, b = 0, w = 0;
      for (let code = 0; code < 8; ++code) {
        if ((mask & (1 << code)) === 0) continue;
        const c = STATE_RGB[code]!;
        const k = BLEND_WEIGHTS[code]!;
        r += k * (c >> 16);
        g += k * ((c >> 8) & 0xff);
        b += k * (c & 0xff);
        w += k;
      }
      table[mask] = (Math.trunc(r / w) << 16) | (Math.trunc(g / w) << 8) | Math.trunc(b / w);
    }
  }
  return table;
}

const MIX_TABLES: Readonly<Record<CellMix, Uint32Array>> = { blend: mixTable('blend'), worst: mixTable('worst') };

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer from ${min} to ${max} (got ${v})`);
}

function percentOf(bytes: number, size: number): string {
  return size > 0 ? ((100 * bytes) / size).toFixed(2) : '-';
}

/** `text` shortened with `...` in the middle to at most `chars` characters. */
function fit(text: string, chars: number): string {
  if (text.length <= chars) return text;
  if (chars <= 3) return text.slice(0, chars);
  const keep = chars - 3;
  return `${text.slice(0, Math.ceil(keep / 2))}...${text.slice(text.length - Math.floor(keep / 2))}`;
}

/**
 * Lay out the picture of `runs` (a mapfile's blocks, or `overlayRuns` of them).
 *
 * The drawn size N is the end of the last block (for a map whose last block is
 * unbounded, that block's start). As in ddrescueview, every cell holds the same
 * number of whole sectors, `ceil(N / (cells * sectorSize)) * sectorSize` bytes, cell
 * `i` holds `[i * bytesPerCell, (i + 1) * bytesPerCell)`, and a cell's colour depends
 * on which states occur in it, not on how much of it they fill. The cell pitch is
 * the largest from 64 down to 8 pixels at which every sector gets a cell of its own;
 * maps with more sectors than 8-pixel cells share sectors among cells.
 * Linear in the number of runs plus the number of cells.
 * @throws RangeError if an option is out of range.
 */
export function layoutMap(runs: StateRuns, options: LayoutOptions = {}): MapLayout {
  const o = { ...LAYOUT_DEFAULTS, ...options };
  checkInt('width', o.width, 320, 4096);
  checkInt('height', o.height, 240, 4096);
  checkInt('sectorSize', o.sectorSize, 1, 1 << 20);
  if (o.mix !== 'blend' && o.mix !== 'worst') throw new RangeError(`mix must be 'blend' or 'worst' (got ${String(o.mix)})`);
  const n = runs.length;
  const lastEnd = n > 0 ? runs.end(n - 1) : 0;
  const unbounded = lastEnd === UNBOUNDED;
  const size = unbounded ? runs.pos(n - 1) : lastEnd;

  const s = o.width >= 800 && o.height >= 560 ? 2 : 1;
  const line = LINE_HEIGHT * s;
  const margin = 4 * s;
  const chars = Math.floor((o.width - 2 * margin + s) / (GLYPH_ADVANCE * s));
  const shown: RenderState[] = o.overlay
    ? ['merged', 'shipped', 'rescued', 'nonTried', 'nonTrimmed', 'nonScraped', 'badSector']
    : ['finished', 'nonTried', 'nonTrimmed', 'nonScraped', 'badSector'];
  const legendHeight = (shown.length + 1) * line;
  const gx = margin;
  const gy = margin + line + s;
  const gw = o.width - 2 * margin;
  const gh = o.height - gy - margin - s - legendHeight;

  const sectors = Math.ceil(size / o.sectorSize);
  const capacity = (p: number): number => Math.floor((gw - 1) / p) * Math.floor((gh - 1) / p);
  let pitch = 8;
  for (let p = 64; p > 8; --p) {
    if (capacity(p) >= sectors) {
      pitch = p;
      break;
    }
  }
  const cols = Math.floor((gw - 1) / pitch);
  const maxCells = capacity(pitch);
  const bytesPerCell = Math.max(1, Math.ceil(sectors / maxCells)) * o.sectorSize;
  const cellCount = size > 0 ? Math.ceil(size / bytesPerCell) : 0;
  const rows = Math.ceil(cellCount / cols);

  const masks = new Uint8Array(cellCount);
  const bytes = new Array<number>(8).fill(0);
  for (let i = 0; i < n; ++i) {
    const p = runs.pos(i);
    const e = Math.min(runs.end(i), size);
    if (e <= p) continue;
    const code = runs.code(i);
    const bit = 1 << code;
    bytes[code]! += e - p;
    const last = Math.floor((e - 1) / bytesPerCell);
    for (let c = Math.floor(p / bytesPerCell); c <= last; ++c) masks[c]! |= bit;
  }
  const table = MIX_TABLES[o.mix];
  const colours = new Uint32Array(cellCount);
  for (let c = 0; c < cellCount; ++c) colours[c] = table[masks[c]!]!;
  const cp = o.currentPos;
  const activeCell = cp !== undefined && cp >= 0 && cp < size ? Math.floor(cp / bytesPerCell) : -1;

  const legend: LegendEntry[] = shown.map((st) => {
    const b = bytes[RENDER_STATES.indexOf(st)]!;
    return { state: st, colour: RENDER_PALETTE[st], bytes: b, percent: percentOf(b, size) };
  });
  const rescued = bytes[FINISHED]! + bytes[RESCUED]! + bytes[SHIPPED]! + bytes[MERGED]!;
  const sizeText = unbounded ? `${size} B drawn, size unknown` : `${size} B (${formatNum(size)}B)`;
  const tail = `  ${sizeText}  rescued ${percentOf(rescued, size)}%`;
  const title = `${fit(o.name, Math.max(8, chars - tail.length))}${tail}`;

  const texts: TextItem[] = [{ x: margin, y: margin, text: fit(title, chars) }];
  const swatches: Swatch[] = [];
  let y = gy + (rows > 0 ? rows * pitch + 1 : line) + 2 * s;
  if (rows === 0) texts.push({ x: gx, y: gy, text: fit('empty map: no bytes to draw', chars) });
  for (const entry of legend) {
    swatches.push({ x: margin, y, size: GLYPH_HEIGHT * s, colour: entry.colour });
    const label = RENDER_STATE_LABELS[entry.state].padEnd(o.overlay ? 20 : 11);
    const num = `${formatNum(entry.bytes)}B`;
    texts.push({ x: margin + 2 * GLYPH_ADVANCE * s, y, text: fit(`${label} ${String(entry.bytes).padStart(16)} B ${num.padStart(8)} ${entry.percent.padStart(6)}%`, chars - 2) });
    y += line;
  }
  const where = activeCell >= 0 ? `; frame: pos 0x${cp!.toString(16).toUpperCase()}` : '';
  texts.push({ x: margin, y, text: fit(`cell ${formatNum(bytesPerCell, { binary: true, limit: 999 })}B, ${o.mix}${where}`, chars) });

  return {
    width: o.width, height: o.height, scale: s, size, unbounded, bytesPerCell, cellCount,
    grid: { x: gx, y: gy, cols, rows, pitch }, cellColours: colours, cellMasks: masks, activeCell,
    legend, bytesByState: bytes, texts, swatches,
  };
}

/** Top-left pixel of cell `c`'s fill. */
function cellOrigin(layout: MapLayout, c: number): [number, number] {
  const { x, y, cols, pitch } = layout.grid;
  return [x + 1 + (c % cols) * pitch, y + 1 + Math.floor(c / cols) * pitch];
}

function fillRect(img: RgbaImage, x0: number, y0: number, w: number, h: number, rgb: number): void {
  const x1 = Math.min(img.width, x0 + w);
  const y1 = Math.min(img.height, y0 + h);
  const r = rgb >> 16, g = (rgb >> 8) & 0xff, b = rgb & 0xff;
  for (let y = Math.max(0, y0); y < y1; ++y) {
    let k = (y * img.width + Math.max(0, x0)) * 4;
    for (let x = Math.max(0, x0); x < x1; ++x, k += 4) {
      img.data[k] = r;
      img.data[k + 1] = g;
      img.data[k + 2] = b;
      img.data[k + 3] = 255;
    }
  }
}

function drawText(img: RgbaImage, x0: number, y0: number, text: string, s: number, rgb: number): void {
  for (let i = 0; i < text.length; ++i) {
    const cols = glyphColumns(text.charCodeAt(i));
    const gx = x0 + i * GLYPH_ADVANCE * s;
    for (let cx = 0; cx < cols.length; ++cx) {
      const bits = cols[cx]!;
      for (let cy = 0; cy < GLYPH_HEIGHT; ++cy) if (bits & (1 << cy)) fillRect(img, gx + cx * s, y0 + cy * s, s, s, rgb);
    }
  }
}

/** Draw `layout` as RGBA pixels (fully opaque). */
export function drawMapPixels(layout: MapLayout): RgbaImage {
  const img: RgbaImage = { width: layout.width, height: layout.height, data: new Uint8Array(layout.width * layout.height * 4) };
  fillRect(img, 0, 0, img.width, img.height, rgbOf(RENDER_PALETTE.background));
  const { x, y, cols, rows, pitch } = layout.grid;
  if (rows > 0) fillRect(img, x, y, cols * pitch + 1, rows * pitch + 1, NO_DATA_RGB);
  for (let c = 0; c < layout.cellCount; ++c) {
    const [cx, cy] = cellOrigin(layout, c);
    fillRect(img, cx, cy, pitch - 1, pitch - 1, layout.cellColours[c]!);
  }
  if (layout.activeCell >= 0) {
    const [cx, cy] = cellOrigin(layout, layout.activeCell);
    const active = rgbOf(RENDER_PALETTE.active);
    fillRect(img, cx - 1, cy - 1, pitch + 1, 1, active);
    fillRect(img, cx - 1, cy + pitch - 1, pitch + 1, 1, active);
    fillRect(img, cx - 1, cy - 1, 1, pitch + 1, active);
    fillRect(img, cx + pitch - 1, cy - 1, 1, pitch + 1, active);
  }
  for (const w of layout.swatches) fillRect(img, w.x, w.y, w.size, w.size, rgbOf(w.colour));
  const ink = rgbOf(RENDER_PALETTE.text);
  for (const t of layout.texts) drawText(img, t.x, t.y, t.text, layout.scale, ink);
  return img;
}

function xmlEscape(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

/**
 * Draw `layout` as SVG text: runs of equal cells in a row are one rectangle, and the
 * grid lines are one path drawn over them, so the picture matches `drawMapPixels`
 * cell for cell; texts use the viewer's monospace font.
 */
export function drawMapSvg(layout: MapLayout): string {
  const { width: W, height: H, scale: s } = layout;
  const { x, y, cols, rows, pitch } = layout.grid;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" shape-rendering="crispEdges">`,
    `<rect width="${W}" height="${H}" fill="${RENDER_PALETTE.background}"/>`,
  ];
  if (rows > 0) {
    const gw = cols * pitch + 1;
    const gh = rows * pitch + 1;
    out.push(`<rect x="${x}" y="${y}" width="${gw}" height="${gh}" fill="${RENDER_PALETTE.noData}"/>`);
    for (let c = 0; c < layout.cellCount; ) {
      const rgb = layout.cellColours[c]!;
      const rowEnd = Math.min(layout.cellCount, (Math.floor(c / cols) + 1) * cols);
      let e = c + 1;
      while (e < rowEnd && layout.cellColours[e] === rgb) ++e;
      if (rgb !== NO_DATA_RGB) {
        const [cx, cy] = cellOrigin(layout, c);
        out.push(`<rect x="${cx}" y="${cy}" width="${(e - c) * pitch - 1}" height="${pitch - 1}" fill="${hexOf(rgb)}"/>`);
      }
      c = e;
    }
    const d: string[] = [];
    for (let k = 1; k < cols; ++k) d.push(`M${x + k * pitch + 0.5} ${y}v${gh}`);
    for (let k = 1; k < rows; ++k) d.push(`M${x} ${y + k * pitch + 0.5}h${gw}`);
    if (d.length > 0) out.push(`<path d="${d.join('')}" stroke="${RENDER_PALETTE.noData}" stroke-width="1" fill="none"/>`);
  }
  if (layout.activeCell >= 0) {
    const [cx, cy] = cellOrigin(layout, layout.activeCell);
    out.push(`<rect x="${cx - 0.5}" y="${cy - 0.5}" width="${pitch}" height="${pitch}" stroke="${RENDER_PALETTE.active}" stroke-width="1" fill="none"/>`);
  }
  for (const w of layout.swatches) out.push(`<rect x="${w.x}" y="${w.y}" width="${w.size}" height="${w.size}" fill="${w.colour}"/>`);
  out.push(`<g font-family="monospace" font-size="${10 * s}" fill="${RENDER_PALETTE.text}">`);
  for (const t of layout.texts) out.push(`<text xml:space="preserve" x="${t.x}" y="${t.y + GLYPH_HEIGHT * s}" textLength="${textWidth(t.text) * s}">${xmlEscape(t.text)}</text>`);
  out.push('</g>', '</svg>', '');
  return out.join('\n');
}
