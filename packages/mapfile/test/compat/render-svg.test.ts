/**
 * SVG map pictures rasterised by a real browser (Chromium, headless) against the PNG
 * drawer: the grid (cells, grid lines, the frame) and the legend's swatches must be the
 * same pixels. Texts are left out: the SVG uses the browser's monospace font.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

import { parseMapfile } from '../../src/parse.js';
import { decodePng } from '../../src/render-png.js';
import { type MapLayout, type RgbaImage, drawMapPixels, drawMapSvg, layoutMap, overlayRuns } from '../../src/render.js';

const CHROMIUM = '/usr/bin/chromium';
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'render');
const load = (name: string): ReturnType<typeof parseMapfile> => parseMapfile(readFileSync(join(FIXTURES, name)), { file: name });

/** Chromium's screenshot of `svg` at its own size. */
async function rasterise(svg: string, width: number, height: number, dir: string): Promise<RgbaImage> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install the Debian package chromium (CI's .ci/run does)`);
  const file = join(dir, 'map.svg');
  const shot = join(dir, 'shot.png');
  writeFileSync(file, svg);
  const r = spawnSync(CHROMIUM, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic', '--hide-scrollbars', '--force-device-scale-factor=1', `--user-data-dir=${join(dir, 'profile')}`,
    `--window-size=${width},${height}`, `--screenshot=${shot}`, `file://${file}`,
  ], { timeout: 120_000 });
  if (r.error || !existsSync(shot)) {
    throw new Error(`Chromium could not make a screenshot (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr.toString().slice(-500)}`);
  }
  return decodePng(readFileSync(shot));
}

function expectSameRegion(a: RgbaImage, b: RgbaImage, x0: number, y0: number, w: number, h: number, what: string): void {
  for (let y = y0; y < y0 + h; ++y) {
    for (let x = x0; x < x0 + w; ++x) {
      const k = (y * a.width + x) * 4;
      const pa = [a.data[k], a.data[k + 1], a.data[k + 2]];
      const pb = [b.data[k], b.data[k + 1], b.data[k + 2]];
      if (pa[0] !== pb[0] || pa[1] !== pb[1] || pa[2] !== pb[2]) expect(pb, `${what}: pixel (${x}, ${y})`).to.deep.equal(pa);
    }
  }
}

function expectSvgLikePng(layout: MapLayout, shot: RgbaImage): void {
  const png = drawMapPixels(layout);
  expect([shot.width, shot.height]).to.deep.equal([png.width, png.height]);
  const { x, y, cols, rows, pitch } = layout.grid;
  expectSameRegion(png, shot, x, y, cols * pitch + 1, rows * pitch + 1, 'grid');
  for (const s of layout.swatches) expectSameRegion(png, shot, s.x, s.y, s.size, s.size, `swatch ${s.colour}`);
}

describe('SVG map pictures in Chromium', function () {
  this.timeout(300_000);
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-render-svg-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('draws the grid and swatches of known.map as the PNG does (480x320, blend)', async () => {
    const m = load('known.map');
    const layout = layoutMap(m.blocks, { width: 480, height: 320, name: 'known.map', currentPos: m.currentPos });
    expectSvgLikePng(layout, await rasterise(drawMapSvg(layout), 480, 320, dir));
  });

  it('draws the overlays as the PNG does (800x600, worst, doubled texts)', async () => {
    const m = load('known.map');
    const runs = overlayRuns(m.blocks, { shipped: load('shipped.map').blocks, merged: load('merged.map').blocks });
    const layout = layoutMap(runs, { name: 'known.map', currentPos: m.currentPos, mix: 'worst', overlay: true });
    expect(layout.scale).to.equal(2);
    expectSvgLikePng(layout, await rasterise(drawMapSvg(layout), 800, 600, dir));
  });
});
