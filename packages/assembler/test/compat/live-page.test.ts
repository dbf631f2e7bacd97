/**
 * The live map page in a real headless Chromium (/usr/bin/chromium, Debian's
 * package): the page logs in with the token from the URL fragment or the
 * password field, draws the map, and redraws as a scripted reader's pieces are
 * merged; a wrong token shows the error. Fails, naming the reason, when
 * Chromium cannot start.
 */
import { createHmac } from 'node:crypto';
import { writeFile } from 'node:fs/promises';

import { decodePng, planChunks, RENDER_PALETTE } from '@ddferry/mapfile';
import type { RgbaImage } from '@ddferry/mapfile';
import type { Limits, StatusMessage } from '@ddferry/protocol';
import { resolveLimits } from '@ddferry/protocol';
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import { chromium } from 'playwright-core';

import { serve } from '../../src/server.js';
import type { AssemblerServer } from '../../src/server.js';
import { Client } from '../client.js';
import { CHUNK_SIZE, FINGERPRINT, hello, makePiece, RESCUE_ID, tempDir } from '../helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const LIMITS: Limits = resolveLimits({ maxFrameBytes: 64 * 1024, maxMessageBytes: 128 * 1024 });
/** 1 MiB: 2048 cells of one sector, 256 chunks. */
const SIZE = 1 << 20;
const FP = { ...FINGERPRINT, size: SIZE };
const CHUNKS = planChunks({ sourceSize: SIZE, sectorSize: 512, chunkSize: CHUNK_SIZE });

/** What the page's script exposes, and the few DOM names these callbacks use (the tests compile without the DOM library). */
interface PageGlobals {
  readonly ddferryLive: {
    readonly state: { readonly phase: string; readonly maps: unknown[]; readonly images: { readonly sizes: Record<string, number> }[] };
    hmacJs(k: Uint8Array, m: Uint8Array): Uint8Array;
  };
  readonly document: { getElementById(id: string): { readonly textContent: string | null } | null };
}

function rgb(hex: string): [number, number, number] {
  const n = Number.parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function pixel(img: RgbaImage, x: number, y: number): [number, number, number] {
  const i = (y * img.width + x) * 4;
  return [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!];
}

function differing(a: RgbaImage, b: RgbaImage): number {
  if (a.width !== b.width || a.height !== b.height) return Number.POSITIVE_INFINITY;
  let n = 0;
  for (let i = 0; i < a.data.length; i += 4) if (a.data[i] !== b.data[i] || a.data[i + 1] !== b.data[i + 1] || a.data[i + 2] !== b.data[i + 2]) ++n;
  return n;
}

describe('live page in headless Chromium', function () {
  this.timeout(120_000);
  let browser: Browser;
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: AssemblerServer;
  const sockets: Client[] = [];

  before(async () => {
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
      });
    } catch (err) {
      throw new Error(`Chromium cannot start (${CHROMIUM}, Debian package chromium): ${(err as Error).message.split('\n')[0]}`);
    }
  });
  after(async () => {
    await browser?.close();
  });
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    server = await serve({
      images: [`${dir}/disk.img`], listen: { host: '127.0.0.1', port: 0 }, secret: 's3s@me token 0123456789abcdef', limits: LIMITS,
      log: { info: () => undefined, warn: () => undefined, error: () => undefined }, live: { flushIntervalMs: 20 },
    });
  });
  afterEach(async () => {
    for (const c of sockets.splice(0)) c.ws.terminate();
    await server.close();
    await cleanup();
  });

  async function open(fragment: string): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(`${server.pageUrl!}${fragment}`);
    (page as unknown as { scriptErrors: string[] }).scriptErrors = errors;
    return page;
  }

  async function reader(): Promise<Client> {
    const c = await Client.connect(server.url, LIMITS);
    sockets.push(c);
    expect((await c.handshake('s3s@me token 0123456789abcdef', hello(RESCUE_ID, FP)))?.type).to.equal('welcome');
    return c;
  }

  async function canvasShot(page: Page): Promise<RgbaImage> {
    return decodePng(await page.locator('#map-0').screenshot());
  }

  /** Centre of cell `c` on the canvas, in CSS pixels. */
  async function cellCentre(page: Page, c: number): Promise<[number, number]> {
    const { side, cols } = await page.$eval('#map-0', (el) => {
      const { dataset } = el as unknown as { dataset: Record<string, string> };
      return { side: Number(dataset.side), cols: Number(dataset.cols) };
    });
    return [(c % cols) * side + Math.floor(side / 2), Math.floor(c / cols) * side + Math.floor(side / 2)];
  }

  it('logs in with the token of the fragment, hides it, draws the map and redraws it as pieces are merged', async () => {
    const page = await open(`#token=${encodeURIComponent('s3s@me token 0123456789abcdef')}`);
    await page.waitForFunction(() => (globalThis as unknown as PageGlobals).ddferryLive.state.phase === 'live');
    expect(page.url()).to.not.contain('token');
    expect(await page.locator('#conn').textContent()).to.equal('live');
    expect(await page.locator('#noauth').isHidden()).to.equal(true);
    expect(await page.locator('#login').isHidden()).to.equal(true);

    const r = await reader();
    await page.waitForFunction(() => (globalThis as unknown as PageGlobals).ddferryLive.state.maps[0] !== undefined);
    await page.waitForTimeout(100);
    const before = await canvasShot(page);
    expect(before.width).to.be.greaterThan(100);
    const target = 8 * 20 + 3; // a sector of chunk 20
    const [x, y] = await cellCentre(page, target);
    expect(pixel(before, x, y)).to.deep.equal(rgb(RENDER_PALETTE.nonTried));

    // chunks 16..23 rescued, a bad sector in chunk 22
    for (let k = 16; k < 24; ++k) {
      const c = CHUNKS[k]!;
      const steps = k === 22
        ? [{ pos: c.pos, size: 1024, status: '+' as const }, { pos: c.pos + 1024, size: 512, status: '-' as const }, { pos: c.pos + 1536, size: c.size - 1536, status: '+' as const }]
        : [{ pos: c.pos, size: c.size, status: '+' as const }];
      r.sendPiece(makePiece(k + 1, k, steps, k + 1, RESCUE_ID));
    }
    const merged = new Set<number>();
    while (merged.size < 8) for (const s of (await r.expect('receipt')).merged) merged.add(s.seq);
    await page.waitForFunction(() => {
      const live = (globalThis as unknown as PageGlobals).ddferryLive;
      return live.state.images[0]?.sizes['+'] === 8 * 4096 - 512;
    });
    await page.waitForTimeout(100);
    const afterShot = await canvasShot(page);
    expect(differing(before, afterShot)).to.be.greaterThan(0);
    expect(pixel(afterShot, x, y)).to.deep.equal(rgb(RENDER_PALETTE.finished));
    const [bx, by] = await cellCentre(page, 8 * 22 + 2);
    expect(pixel(afterShot, bx, by)).to.deep.equal(rgb(RENDER_PALETTE.badSector));
    const [ux, uy] = await cellCentre(page, 8 * 30);
    expect(pixel(afterShot, ux, uy)).to.deep.equal(rgb(RENDER_PALETTE.nonTried));
    expect(await page.locator('.rescued').textContent()).to.equal('rescued 3.08 %');

    const status: StatusMessage = {
      type: 'status', phase: '*', message: 'Trimming failed blocks...', pass: 1, pos: CHUNKS[22]!.pos + 1024, finishedSize: 8 * 4096 - 512,
      nonTriedSize: SIZE - 8 * 4096, nonTrimmedSize: 0, nonScrapedSize: 0, badSectorSize: 512, readErrors: 1, currentRate: 2_500_000,
      averageRate: 1_800_000, chunk: 22, chunkCount: 256, spoolBytes: 4096, spoolPieces: 1, runTime: 75,
      paused: 'link', pausedText: 'the spool is full and the link is down', pausedSeconds: 65, readingPos: CHUNKS[22]!.pos + 1024, readingSize: 512, readingSeconds: 31,
    };
    r.send(status);
    await page.waitForFunction(() => ((globalThis as unknown as PageGlobals).document.getElementById('readers-body')?.textContent ?? '').includes('trimming'));
    const row = await page.locator('#readers-body tr').first().textContent();
    expect(row).to.contain('test-reader').and.contain('23 of 256').and.contain('2.50 MB/s').and.contain('1m 15s')
      .and.contain('paused 1m 5s: the spool is full and the link is down').and.contain('reading 512 B at').and.contain('for 31s');
    await page.waitForTimeout(100);
    if (process.env.LIVE_SCREENSHOT !== undefined) await writeFile(process.env.LIVE_SCREENSHOT, await page.screenshot({ fullPage: true }));
    expect((page as unknown as { scriptErrors: string[] }).scriptErrors).to.deep.equal([]);
    await page.close();
  });

  it('shows the error and asks for the token again when the token is wrong', async () => {
    const page = await open('#token=wrong');
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.locator('#error').textContent()).to.contain('ERR_LIVE_AUTH_FAILED');
    expect(await page.locator('#login').isVisible()).to.equal(true);
    expect(await page.locator('#conn').textContent()).to.equal('refused');
    if (process.env.LIVE_SCREENSHOT !== undefined) await writeFile(process.env.LIVE_SCREENSHOT.replace(/\.png$/, '-refused.png'), await page.screenshot());
    await reader();
    await page.waitForTimeout(300);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).ddferryLive.state.maps.length)).to.equal(0);

    // the password field logs in
    await page.fill('#token', 's3s@me token 0123456789abcdef');
    await page.click('#login button');
    await page.waitForFunction(() => (globalThis as unknown as PageGlobals).ddferryLive.state.phase === 'live');
    expect(await page.locator('#error').isHidden()).to.equal(true);
    expect(await page.locator('#login').isHidden()).to.equal(true);
    await page.waitForFunction(() => (globalThis as unknown as PageGlobals).ddferryLive.state.maps[0] !== undefined);
    await page.close();
  });

  it('asks for the token when the URL has none', async () => {
    const page = await open('');
    await page.waitForSelector('#login', { state: 'visible' });
    expect(await page.locator('#conn').textContent()).to.equal('token needed');
    await page.close();
  });

  it('computes HMAC-SHA256 in JavaScript as Node does (for plain-http pages without crypto.subtle)', async () => {
    const page = await open('#token=x');
    const cases: [string, string][] = [['', ''], ['key', 'The quick brown fox jumps over the lazy dog'], ['k'.repeat(100), 'm'.repeat(55)], ['é', 'm'.repeat(56)], ['t', 'm'.repeat(64)], ['t', 'x'.repeat(1000)]];
    for (const [key, msg] of cases) {
      const got = await page.evaluate(([k, m]) => {
        const live = (globalThis as unknown as PageGlobals).ddferryLive;
        return Array.from(live.hmacJs(new TextEncoder().encode(k), new TextEncoder().encode(m)));
      }, [key, msg] as const);
      expect(Buffer.from(got).toString('hex')).to.equal(createHmac('sha256', key).update(msg).digest('hex'));
    }
    await page.close();
  });
});
