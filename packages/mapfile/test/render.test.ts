import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

import { UNBOUNDED } from '../src/block.js';
import { parseMapfile } from '../src/parse.js';
import { decodePng, encodePng } from '../src/render-png.js';
import {
  BLEND_WEIGHTS, RENDER_PALETTE, RENDER_STATES, type MapLayout, type RgbaImage, type StateRuns,
  drawMapPixels, drawMapSvg, layoutMap, overlayRuns,
} from '../src/render.js';
import { SblockVector } from '../src/sblock-vector.js';
import { runCli } from './cli-harness.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'render');
const fixture = (name: string): string => join(FIXTURES, name);
const loadMap = (name: string): ReturnType<typeof parseMapfile> => parseMapfile(readFileSync(fixture(name)), { file: name });

function vector(...blocks: [number, number, string][]): SblockVector {
  const v = new SblockVector();
  for (const [pos, size, st] of blocks) v.push(pos, pos + size, '?*/-+'.indexOf(st));
  return v;
}

function rgb(hex: string): [number, number, number] {
  const n = Number.parseInt(hex.slice(1), 16);
  return [n >> 16, (n >> 8) & 0xff, n & 0xff];
}

function pixel(img: RgbaImage, x: number, y: number): [number, number, number] {
  const k = (y * img.width + x) * 4;
  return [img.data[k]!, img.data[k + 1]!, img.data[k + 2]!];
}

/** The pixel in the middle of cell `c`. */
function cellPixel(img: RgbaImage, layout: MapLayout, c: number): [number, number, number] {
  const { x, y, cols, pitch } = layout.grid;
  return pixel(img, x + 1 + (c % cols) * pitch + (pitch >> 1), y + 1 + Math.floor(c / cols) * pitch + (pitch >> 1));
}

function samePixels(a: RgbaImage, b: RgbaImage): void {
  expect([a.width, a.height]).to.deep.equal([b.width, b.height]);
  let diff = 0;
  let first = '';
  for (let k = 0; k < a.data.length; ++k) {
    if (a.data[k] !== b.data[k]) {
      if (diff++ === 0) first = `first at pixel (${(k >> 2) % a.width}, ${Math.floor((k >> 2) / a.width)})`;
    }
  }
  expect(diff, `bytes that differ, ${first}`).to.equal(0);
}

describe('render', () => {
  describe('RENDER_PALETTE', () => {
    it("holds ddrescueview's colours, frozen, with overlay colours apart from them", () => {
      expect(Object.isFrozen(RENDER_PALETTE)).to.equal(true);
      // ddrescueview's COLOR_* constants are Lazarus $BBGGRR values
      const bgr = (v: number): string => `#${(((v & 0xff) << 16) | (v & 0xff00) | (v >> 16)).toString(16).padStart(6, '0')}`;
      expect(RENDER_PALETTE.nonTried).to.equal(bgr(0x404040));
      expect(RENDER_PALETTE.nonTrimmed).to.equal(bgr(0x00e0ff));
      expect(RENDER_PALETTE.nonScraped).to.equal(bgr(0xff2020));
      expect(RENDER_PALETTE.badSector).to.equal(bgr(0x0000ff));
      expect(RENDER_PALETTE.finished).to.equal(bgr(0x20e020));
      expect(RENDER_PALETTE.noData).to.equal(bgr(0x808080));
      expect(RENDER_PALETTE.active).to.equal(bgr(0xffff00));
      const all = [...RENDER_STATES.map((s) => RENDER_PALETTE[s]), RENDER_PALETTE.noData, RENDER_PALETTE.active, RENDER_PALETTE.background];
      expect(new Set(all).size).to.equal(all.length);
      // each overlay colour is far (in RGB distance) from every other colour of the grid
      const dist = (a: string, b: string): number => Math.hypot(...rgb(a).map((v, i) => v - rgb(b)[i]!));
      for (const o of ['rescued', 'shipped', 'merged'] as const) {
        for (const other of all) if (other !== RENDER_PALETTE[o]) expect(dist(RENDER_PALETTE[o], other), `${o} vs ${other}`).to.be.above(90);
      }
    });
  });

  describe('#layoutMap', () => {
    it('gives each status its colour in a cell of its own, in both mixing rules', () => {
      const map = vector([0, 512, '?'], [512, 512, '*'], [1024, 512, '/'], [1536, 512, '-'], [2048, 512, '+']);
      for (const mix of ['blend', 'worst'] as const) {
        const layout = layoutMap(map, { mix });
        expect(layout.bytesPerCell).to.equal(512);
        expect(layout.cellCount).to.equal(5);
        const img = drawMapPixels(layout);
        for (let c = 0; c < 5; ++c) expect(cellPixel(img, layout, c), `${mix} cell ${c}`).to.deep.equal(rgb(RENDER_PALETTE[RENDER_STATES[c]!]));
      }
    });

    it("blends a cell's statuses with ddrescueview's weights, or takes the worst", () => {
      // 4 sectors a cell: cell 0 holds + and -, cell 1 holds ? and +, cell 2 holds * / and +
      const map = vector([0, 1536, '+'], [1536, 512, '-'], [2048, 512, '?'], [2560, 1536, '+'], [4096, 512, '*'], [4608, 512, '/'], [5120, 1024, '+']);
      const blend = layoutMap(map, { sectorSize: 2048 });
      expect(blend.bytesPerCell).to.equal(2048);
      const mean = (codes: number[]): number => {
        const w = codes.reduce((a, c) => a + BLEND_WEIGHTS[c]!, 0);
        const ch = (i: number): number => Math.trunc(codes.reduce((a, c) => a + BLEND_WEIGHTS[c]! * rgb(RENDER_PALETTE[RENDER_STATES[c]!])[i]!, 0) / w);
        return (ch(0) << 16) | (ch(1) << 8) | ch(2);
      };
      expect([...blend.cellColours]).to.deep.equal([mean([3, 4]), mean([0, 4]), mean([1, 2, 4])]);
      // (2 * green + 40 * red) / 42, per channel, truncated as ddrescueview does
      expect(blend.cellColours[0]).to.equal((244 << 16) | (10 << 8) | 1);
      const worst = layoutMap(map, { sectorSize: 2048, mix: 'worst' });
      expect([...worst.cellColours].map((c) => `#${c.toString(16).padStart(6, '0')}`)).to.deep.equal([RENDER_PALETTE.badSector, RENDER_PALETTE.nonTried, RENDER_PALETTE.nonScraped]);
    });

    it('counts the bytes of each status for the legend, with percentages', () => {
      const m = loadMap('known.map');
      const layout = layoutMap(m.blocks, { currentPos: m.currentPos });
      const byState = Object.fromEntries(layout.legend.map((e) => [e.state, [e.bytes, e.percent]]));
      // the blocks of known.map, added by hand
      expect(byState).to.deep.equal({
        finished: [0x1400000 + 0xbffe00 + 0xd80000 + 0x1000000, '61.50'],
        nonTried: [0x2000000, '32.00'],
        nonTrimmed: [0x100000 + 0x400000, '5.00'],
        nonScraped: [2 * 0x80000, '1.00'],
        badSector: [0x200 + 0x80000, '0.50'],
      });
      expect(layout.size).to.equal(100 * 2 ** 20);
      const text = layout.texts.map((t) => t.text).join('\n');
      expect(text).to.include('rescued 61.50%');
      expect(text).to.match(/bad-sector +524800 B +524800 B +0\.50%/);
      expect(text).to.match(/rescued +64486912 B +64486 kB +61\.50%/);
      expect(layout.activeCell).to.equal(Math.floor(0x3200000 / layout.bytesPerCell));
    });

    it('draws a 1-block map as one large cell', () => {
      const layout = layoutMap(vector([0, 512, '+']), { name: 'tiny.map' });
      expect(layout.cellCount).to.equal(1);
      expect(layout.grid.pitch).to.equal(64);
      const img = drawMapPixels(layout);
      expect(cellPixel(img, layout, 0)).to.deep.equal(rgb(RENDER_PALETTE.finished));
      expect(layout.texts[0]!.text).to.equal('tiny.map  512 B (512 B)  rescued 100.00%');
    });

    it('draws a map without blocks as an empty grid with a note', () => {
      const m = parseMapfile(Buffer.from('0x00000000     ?               1\n'), { file: 'empty.map' });
      expect(m.blocks.length).to.equal(0);
      const layout = layoutMap(m.blocks, { name: 'empty.map' });
      expect(layout.cellCount).to.equal(0);
      expect(layout.legend.every((e) => e.bytes === 0 && e.percent === '-')).to.equal(true);
      expect(layout.texts.map((t) => t.text)).to.include('empty map: no bytes to draw');
      const img = drawMapPixels(layout);
      expect(img.data.length).to.equal(800 * 600 * 4);
      expect(drawMapSvg(layout)).to.not.include(RENDER_PALETTE.noData);
    });

    it('draws a map whose last block is unbounded up to that block', () => {
      const layout = layoutMap(vector([0, 1 << 20, '+'], [1 << 20, UNBOUNDED - (1 << 20), '?']));
      expect(layout.unbounded).to.equal(true);
      expect(layout.size).to.equal(1 << 20);
      expect(layout.legend.find((e) => e.state === 'finished')!.percent).to.equal('100.00');
      expect(layout.texts[0]!.text).to.include('size unknown');
    });

    it('lays out a 2^40-byte map exactly, up to its last sector', () => {
      const T = 2 ** 40;
      const map = vector([0, T / 2, '+'], [T / 2, 512, '-'], [T / 2 + 512, T / 2 - 1024, '+'], [T - 512, 512, '/']);
      const layout = layoutMap(map, { mix: 'worst' });
      expect(layout.bytesPerCell % 512).to.equal(0);
      expect(layout.bytesPerCell).to.equal(Math.ceil(T / 512 / (97 * 56)) * 512);
      expect(layout.cellCount).to.equal(Math.ceil(T / layout.bytesPerCell));
      expect(layout.bytesByState.reduce((a, b) => a + b, 0)).to.equal(T);
      expect(layout.bytesByState[3]).to.equal(512);
      const colours = [...layout.cellColours];
      const bad = Number.parseInt(RENDER_PALETTE.badSector.slice(1), 16);
      const scraped = Number.parseInt(RENDER_PALETTE.nonScraped.slice(1), 16);
      expect(colours.indexOf(bad)).to.equal(Math.floor(T / 2 / layout.bytesPerCell));
      expect(colours.lastIndexOf(bad)).to.equal(colours.indexOf(bad));
      expect(colours.at(-1)).to.equal(scraped);
      expect(layout.texts[0]!.text).to.include('1099511627776 B (1099 GB)');
    });

    it('refuses sizes out of range', () => {
      expect(() => layoutMap(vector([0, 512, '+']), { width: 319 })).to.throw(RangeError, /width/);
      expect(() => layoutMap(vector([0, 512, '+']), { height: 4097 })).to.throw(RangeError, /height/);
      expect(() => layoutMap(vector([0, 512, '+']), { sectorSize: 0 })).to.throw(RangeError, /sectorSize/);
    });
  });

  describe('#overlayRuns', () => {
    it("splits '+' bytes into merged, shipped and rescued; other statuses stay", () => {
      const map = vector([0, 1000, '+'], [1000, 10, '-'], [1010, 990, '+'], [2000, 1000, '?']);
      const shipped = vector([0, 1500, '+'], [1500, 1500, '?']);
      const merged = vector([0, 200, '?'], [200, 300, '+'], [500, 2500, '?']);
      const runs = overlayRuns(map, { shipped, merged });
      const list = (r: StateRuns): [number, number, number][] => Array.from({ length: r.length }, (_, i) => [r.pos(i), r.end(i), r.code(i)]);
      expect(list(runs)).to.deep.equal([[0, 200, 6], [200, 500, 7], [500, 1000, 6], [1000, 1010, 3], [1010, 1500, 6], [1500, 2000, 5], [2000, 3000, 0]]);
      expect(list(overlayRuns(map, {}))).to.deep.equal([[0, 1000, 5], [1000, 1010, 3], [1010, 2000, 5], [2000, 3000, 0]]);
    });
  });

  describe('pictures of test/fixtures/render/known.map', () => {
    it('PNG equals the committed picture, pixel for pixel', async () => {
      const m = loadMap('known.map');
      const layout = layoutMap(m.blocks, { width: 480, height: 320, name: 'known.map', currentPos: m.currentPos });
      const png = await encodePng(drawMapPixels(layout));
      samePixels(await decodePng(png), await decodePng(readFileSync(fixture('known.png'))));
    });

    it('SVG equals the committed text, and its rectangles have the PNG colours', async () => {
      const m = loadMap('known.map');
      const layout = layoutMap(m.blocks, { width: 480, height: 320, name: 'known.map', currentPos: m.currentPos });
      const svg = drawMapSvg(layout);
      expect(svg).to.equal(readFileSync(fixture('known.svg'), 'utf8'));
      const img = await decodePng(readFileSync(fixture('known.png')));
      const rects = [...svg.matchAll(/<rect x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)" fill="(#[0-9a-f]{6})"\/>/g)];
      expect(rects.length).to.be.above(50);
      for (const [, x, y, w, h, fill] of rects) {
        for (const [px, py] of [[+x!, +y!], [+x! + +w! - 1, +y! + +h! - 1]] as const) expect(pixel(img, px, py), `rect at ${x},${y}`).to.deep.equal(rgb(fill!));
      }
      expect(Buffer.byteLength(svg)).to.be.below(8000);
    });

    it('PNG with both overlays and worst mixing equals the committed picture', async () => {
      const m = loadMap('known.map');
      const runs = overlayRuns(m.blocks, { shipped: loadMap('shipped.map').blocks, merged: loadMap('merged.map').blocks });
      const layout = layoutMap(runs, { name: 'known.map', currentPos: m.currentPos, mix: 'worst', overlay: true });
      const bytes = Object.fromEntries(layout.legend.map((e) => [e.state, e.bytes]));
      expect(bytes).to.include({ merged: 0x1000000, shipped: 0x2800000 - 0x1000000 - 0x200 - 0x280000, rescued: 0x800000 + 0x1000000 });
      samePixels(drawMapPixels(layout), await decodePng(readFileSync(fixture('known-overlay.png'))));
    });
  });

  describe('ddferry-map render', () => {
    let dir = '';
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'ddferry-render-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('writes the PNG and SVG of a mapfile', async () => {
      const png = await runCli(['render', fixture('known.map'), '-o', 'k.png', '--width', '480', '--height', '320'], dir);
      expect(png.stderr).to.equal('');
      expect(png.status).to.equal(0);
      expect(png.stdout.toString()).to.equal('k.png: 480x320, 1736 cells of 60416 bytes over 104857600 bytes\n');
      samePixels(await decodePng(readFileSync(join(dir, 'k.png'))), await decodePng(readFileSync(fixture('known.png'))));
      const svg = await runCli(['render', fixture('known.map'), '--output', join(dir, 'k.svg'), '--width', '480', '--height', '320'], '/');
      expect(svg.status).to.equal(0);
      expect(readFileSync(join(dir, 'k.svg'), 'utf8')).to.equal(readFileSync(fixture('known.svg'), 'utf8'));
    });

    it('draws the overlays', async () => {
      const r = await runCli(['render', fixture('known.map'), '-o', 'o.png', '--mix', 'worst', '--overlay-shipped', fixture('shipped.map'), '--overlay-merged', fixture('merged.map')], dir);
      expect(r.status).to.equal(0);
      samePixels(await decodePng(readFileSync(join(dir, 'o.png'))), await decodePng(readFileSync(fixture('known-overlay.png'))));
    });

    it('refuses an overlay of another size, naming both files', async () => {
      writeFileSync(join(dir, 'other.map'), '0x0 + 1\n0x0 0x1000 +\n');
      const r = await runCli(['render', fixture('known.map'), '-o', 'o.png', '--overlay-merged', 'other.map'], dir);
      expect(r.status).to.equal(1);
      expect(r.stderr).to.include(join(dir, 'other.map')).and.include('known.map').and.include('[ERR_RENDER_OVERLAY_SIZE]');
    });

    it('refuses an output that is neither .png nor .svg, and bad options, with exit status 1', async () => {
      const cases: [string[], string][] = [
        [['render', fixture('known.map'), '-o', 'k.jpg'], 'ERR_RENDER_OUTPUT_TYPE'],
        [['render', fixture('known.map')], 'ERR_USAGE'],
        [['render', fixture('known.map'), '-o', 'k.png', '--colour', 'x'], 'ERR_USAGE'],
        [['render', fixture('known.map'), '-o', 'k.png', '--width', '100'], 'ERR_ARG_OUT_OF_LIMITS'],
        [['render', fixture('known.map'), '-o', 'k.png', '--mix', 'mean'], 'ERR_ARG_INVALID'],
        [['render', join(dir, 'missing.map'), '-o', 'k.png'], 'ERR_MAPFILE_NOT_FOUND'],
        [['render', fixture('known.map'), '-o', join(dir, 'no-folder', 'k.png')], 'ERR_RENDER_WRITE'],
      ];
      for (const [argv, code] of cases) {
        const r = await runCli(argv, dir);
        expect(r.status, argv.join(' ')).to.equal(1);
        expect(r.stderr, argv.join(' ')).to.include(`[${code}]`);
      }
    });

    it('exits 2 on a malformed mapfile, writing nothing', async () => {
      writeFileSync(join(dir, 'bad.map'), '0x0 + 1\n0x0 0x1000 +\n0x2000 0x1000 +\n');
      const r = await runCli(['render', 'bad.map', '-o', 'k.png'], dir);
      expect(r.status).to.equal(2);
      expect(r.stderr).to.include('[ERR_MAPFILE_NOT_CONTIGUOUS]');
      expect(() => readFileSync(join(dir, 'k.png'))).to.throw(/ENOENT/);
    });

    it('prints its help', async () => {
      const r = await runCli(['render', '--help'], dir);
      expect(r.status).to.equal(0);
      expect(r.stdout.toString()).to.include('--overlay-shipped MAP').and.include('--mix blend|worst');
    });
  });
});
