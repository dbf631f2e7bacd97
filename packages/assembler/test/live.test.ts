import { request } from 'node:http';

import type { Block, BlockStatus } from '@ddferry/mapfile';
import type { Limits, Piece, StatusMessage } from '@ddferry/protocol';
import { authHmac, resolveLimits } from '@ddferry/protocol';
import { expect } from 'chai';
import fc from 'fast-check';

import { Image } from '../src/image.js';
import { viewerAuthHmac } from '../src/live/live-auth.js';
import { LiveFeed, MAX_DIRTY_RANGES } from '../src/live/live-feed.js';
import { cellGrid, encodeCells } from '../src/live/map-cells.js';
import type { StatusSource } from '../src/live/map-cells.js';
import { serve } from '../src/server.js';
import type { AssemblerServer, ServeOptions } from '../src/server.js';

import { Client } from './client.js';
import type { Logged } from './helpers.js';
import { CHUNK_SIZE, FINGERPRINT, bindRequest, hello, logger, makePiece, RESCUE_ID, SOURCE_SIZE, tempDir } from './helpers.js';
import { LiveClient, MapModel } from './live-client.js';

const LIMITS: Limits = resolveLimits({ maxFrameBytes: 16 * 1024, maxMessageBytes: 32 * 1024 });
const RANK: Record<BlockStatus, number> = { '+': 0, '?': 1, '*': 2, '/': 3, '-': 4 };

/** A status source over sorted, contiguous blocks from 0. */
function blocksSource(blocks: readonly { pos: number; size: number; status: BlockStatus }[]): StatusSource {
  return {
    forEachStatus(b: Block, fn: (pos: number, end: number, st: BlockStatus) => void): void {
      for (const x of blocks) {
        const p = Math.max(x.pos, b.pos);
        const e = Math.min(x.pos + x.size, b.pos + b.size);
        if (p < e) fn(p, e, x.status);
      }
    },
  };
}

/** The runs the long way: each cell's most urgent status. */
function naiveRuns(blocks: readonly { pos: number; size: number; status: BlockStatus }[], cellBytes: number, cells: number): string {
  const per: BlockStatus[] = [];
  for (let c = 0; c < cells; ++c) {
    let worst: BlockStatus | undefined;
    for (const x of blocks) {
      if (x.pos < (c + 1) * cellBytes && x.pos + x.size > c * cellBytes && (worst === undefined || RANK[x.status] > RANK[worst])) worst = x.status;
    }
    per.push(worst!);
  }
  let out = '';
  for (let i = 0; i < per.length;) {
    let j = i;
    while (j < per.length && per[j] === per[i]) ++j;
    out += `${per[i]}${j - i}`;
    i = j;
  }
  return out;
}

describe('map cells', () => {
  it('cuts a source into sector-multiple cells, at most maxCells', () => {
    expect(cellGrid(SOURCE_SIZE, 512, 65536)).to.deep.equal({ size: SOURCE_SIZE, cellBytes: 512, cells: 26 });
    const huge = cellGrid(4e12, 512, 65536);
    expect(huge.cells).to.be.at.most(65536);
    expect(huge.cellBytes % 512).to.equal(0);
    expect(huge.cells * huge.cellBytes).to.be.at.least(4e12);
    expect(() => cellGrid(100, 0, 10)).to.throw(RangeError);
  });

  it('shows a cell with its most urgent status: a bad sector is never hidden, green only when all of it is finished', () => {
    const blocks = [
      { pos: 0, size: 1000, status: '+' as const }, { pos: 1000, size: 24, status: '-' as const },
      { pos: 1024, size: 2048, status: '+' as const }, { pos: 3072, size: 1024, status: '?' as const },
    ];
    const grid = cellGrid(4096, 512, 65536);
    expect(encodeCells(blocksSource(blocks), grid, 0, grid.cells)).to.equal('+1-1+4?2');
    expect(encodeCells(blocksSource(blocks), grid, 1, 3)).to.equal('-1+1');
    expect(encodeCells(blocksSource([]), grid, 0, grid.cells)).to.equal('');
  });

  it('equals the cell-by-cell answer for any map and cell size', () => {
    const statuses: BlockStatus[] = ['?', '*', '/', '-', '+'];
    fc.assert(fc.property(
      fc.array(fc.record({ size: fc.integer({ min: 1, max: 3000 }), status: fc.constantFrom(...statuses) }), { minLength: 1, maxLength: 30 }),
      fc.integer({ min: 1, max: 40 }),
      (parts, maxCells) => {
        let pos = 0;
        const blocks = parts.map((p) => {
          const b = { pos, size: p.size, status: p.status };
          pos += p.size;
          return b;
        });
        const grid = cellGrid(pos, 1, maxCells);
        expect(encodeCells(blocksSource(blocks), grid, 0, grid.cells)).to.equal(naiveRuns(blocks, grid.cellBytes, grid.cells));
      },
    ));
  });
});

describe('LiveFeed', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let image: Image;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    image = await Image.open(`${dir}/disk.img`);
  });
  afterEach(async () => {
    await image.close();
    await cleanup();
  });

  const commitPlus = (pos: number, size: number): Promise<void> => image.exclusive(() => image.commit({ writes: [{ pos, data: new Uint8Array(size).fill(1) }], statuses: [], pieces: [] }));

  it('gives a new viewer the images and readers at once, and the whole map once the image is bound', async () => {
    const feed = new LiveFeed([image]);
    let wakes = 0;
    const v = feed.add(() => ++wakes);
    expect(v.take().map((m) => m.type)).to.deep.equal(['images', 'readers']);
    await image.bind(bindRequest());
    expect(wakes).to.equal(1);
    const msgs = v.take();
    expect(msgs.map((m) => m.type)).to.deep.equal(['images', 'map']);
    expect(msgs[1]).to.deep.include({ image: 0, cells: 26, cellBytes: 512, runs: '?26' });
    expect(v.pending).to.equal(false);
    feed.close();
  });

  it('joins touching changes into one update and sends the latest statuses, not each step', async () => {
    await image.bind(bindRequest());
    const feed = new LiveFeed([image]);
    const v = feed.add(() => undefined);
    v.take();
    await commitPlus(0, 512);
    await commitPlus(512, 512);
    await commitPlus(4096, 512);
    const msgs = v.take();
    expect(msgs.filter((m) => m.type === 'map-update')).to.deep.equal([
      { type: 'map-update', image: 0, from: 0, runs: '+2' },
      { type: 'map-update', image: 0, from: 8, runs: '+1' },
    ]);
    expect(msgs.find((m) => m.type === 'images')).to.deep.nested.include({ 'images[0].sizes.+': 1536, 'images[0].merged': 0 });
    feed.close();
  });

  it('sends the whole map instead of more than MAX_DIRTY_RANGES updates', async () => {
    const big = await Image.open(`${dir}/big.img`);
    const size = 2 * (MAX_DIRTY_RANGES + 2) * 512;
    await big.bind({ rescueId: RESCUE_ID, fingerprint: { ...FINGERPRINT, size }, chunkSize: 4096, sectorSize: 512 });
    const feed = new LiveFeed([big]);
    const v = feed.add(() => undefined);
    v.take();
    for (let i = 0; i <= MAX_DIRTY_RANGES; ++i) {
      await big.exclusive(() => big.commit({ writes: [{ pos: 2 * i * 512, data: new Uint8Array(512) }], statuses: [], pieces: [] }));
    }
    const msgs = v.take();
    expect(msgs.map((m) => m.type)).to.deep.equal(['images', 'map']);
    expect(msgs[1]).to.have.property('runs').that.matches(/^(\+1\?1){64}\+1\?3$/);
    feed.close();
    await big.close();
  });

  it('keeps only the latest Status of each reader, and marks a reader gone', () => {
    let now = 1000;
    const feed = new LiveFeed([image], { now: () => now });
    const v = feed.add(() => undefined);
    v.take();
    const key = {};
    const info = { peer: '10.0.0.2:5000 (pc-a)', rescueId: RESCUE_ID, image: image.path };
    const status = (pos: number): StatusMessage => ({
      type: 'status', phase: '?', message: 'Copying', pass: 1, pos, finishedSize: pos, nonTriedSize: 0, nonTrimmedSize: 0, nonScrapedSize: 0,
      badSectorSize: 0, readErrors: 0, currentRate: 5, averageRate: 4, chunk: 0, chunkCount: 4, spoolBytes: 0, spoolPieces: 0, runTime: 1, paused: '', pausedText: '', pausedSeconds: 0, readingPos: 0, readingSize: 0, readingSeconds: 0,
    });
    feed.readerStatus(key, info, status(512));
    feed.readerStatus(key, info, status(1024));
    now += 1500;
    let readers = v.take().find((m) => m.type === 'readers');
    expect(readers).to.deep.nested.include({ 'readers[0].status.pos': 1024, 'readers[0].connected': true, 'readers[0].ageMs': 1500 });
    expect((readers as { readers: readonly unknown[] }).readers).to.have.length(1);
    feed.readerGone(key);
    readers = v.take().find((m) => m.type === 'readers');
    expect(readers).to.deep.nested.include({ 'readers[0].connected': false });
    feed.readerStatus({}, info, status(2048));
    readers = v.take().find((m) => m.type === 'readers');
    expect((readers as { readers: readonly { status: { pos: number } }[] }).readers.map((r) => r.status.pos)).to.deep.equal([2048]);
    feed.close();
  });
});

function http(port: number, method: string, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('live page on the serve port', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: AssemblerServer | undefined;
  let logged: Logged;
  let img: string;
  const sockets: { ws: { terminate(): void } }[] = [];

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    img = `${dir}/disk.img`;
    logged = logger();
  });
  afterEach(async () => {
    for (const c of sockets.splice(0)) c.ws.terminate();
    await server?.close();
    server = undefined;
    await cleanup();
  });

  async function start(options: Partial<ServeOptions> = {}): Promise<AssemblerServer> {
    server = await serve({
      images: [img], listen: { host: '127.0.0.1', port: 0 }, secret: 'open-sesame-0123456789abcdef', limits: LIMITS, log: logged.log, live: { flushIntervalMs: 5 }, ...options,
    });
    return server;
  }
  async function viewer(headers: Record<string, string> = {}): Promise<LiveClient> {
    const c = await LiveClient.connect(server!.url, headers);
    sockets.push(c);
    return c;
  }
  async function reader(): Promise<Client> {
    const c = await Client.connect(server!.url, LIMITS);
    sockets.push(c);
    expect((await c.handshake('open-sesame-0123456789abcdef'))?.type).to.equal('welcome');
    return c;
  }

  it('answers GET / with the page, /live without upgrade with 426, other methods 405, other paths 404', async () => {
    const s = await start();
    expect(s.pageUrl).to.equal(`http://127.0.0.1:${s.port}/`);
    const page = await http(s.port, 'GET', '/?x=1');
    expect(page.status).to.equal(200);
    expect(page.headers['content-type']).to.contain('text/html');
    expect(page.headers['content-security-policy']).to.match(/script-src 'sha256-[A-Za-z0-9+/=]+'/).and.contain("connect-src 'self'");
    expect(page.body).to.contain('ddferry assembler').and.contain('/live');
    expect((await http(s.port, 'HEAD', '/')).status).to.equal(200);
    expect((await http(s.port, 'GET', '/live')).status).to.equal(426);
    const post = await http(s.port, 'POST', '/');
    expect(post.status).to.equal(405);
    expect(post.headers.allow).to.equal('GET, HEAD');
    expect((await http(s.port, 'PUT', '/live')).status).to.equal(405);
    expect((await http(s.port, 'GET', '/IMAGE.map')).status).to.equal(404);
    expect((await http(s.port, 'GET', '/../etc/passwd')).status).to.equal(404);
  });

  it('refuses a websocket on /live opened by a page of another origin (403)', async () => {
    await start();
    let err: unknown;
    try {
      await viewer({ origin: 'http://evil.example' });
    } catch (e) {
      err = e;
    }
    expect(String(err)).to.contain('HTTP 403');
    expect(logged.lines.some((l) => l.includes('ERR_LIVE_ORIGIN'))).to.equal(true);
    const same = await viewer({ origin: `http://127.0.0.1:${server!.port}` });
    expect((await same.login('open-sesame-0123456789abcdef'))?.type).to.equal('welcome');
  });

  it('refuses a wrong token with ERR_LIVE_AUTH_FAILED and close 1008, sending nothing of the images', async () => {
    await start();
    const v = await viewer();
    const answer = await v.login('wrong');
    expect(answer).to.deep.include({ type: 'error', code: 'ERR_LIVE_AUTH_FAILED' });
    expect((await v.closed).code).to.equal(1008);
    expect(v.all.map((m) => m.type)).to.deep.equal(['challenge', 'error']);
    expect(logged.lines.some((l) => l.startsWith('warn') && l.includes('ERR_LIVE_AUTH_FAILED'))).to.equal(true);
  });

  it('never takes a reader\'s Auth as a page login, nor a page login as a reader\'s Auth (other labels)', async () => {
    await start();
    const v = await viewer();
    const challenge = await v.next();
    const serverNonce = Buffer.from(challenge!.serverNonce as string, 'base64');
    const clientNonce = Buffer.alloc(32, 7);
    v.send({ type: 'auth', clientNonce: clientNonce.toString('base64'), hmac: Buffer.from(authHmac('open-sesame-0123456789abcdef', serverNonce, clientNonce, '')).toString('base64') });
    expect(await v.next()).to.deep.include({ type: 'error', code: 'ERR_LIVE_AUTH_FAILED' });

    const r = await Client.connect(server!.url, LIMITS);
    sockets.push(r);
    const h = hello();
    r.send(h);
    const ch = await r.expect('challenge');
    r.send({ type: 'auth', hmac: viewerAuthHmac('open-sesame-0123456789abcdef', ch.serverNonce, h.clientNonce) });
    expect(await r.expect('error')).to.deep.include({ code: 'ERR_AUTH_FAILED' });
  });

  it('refuses a malformed login and anything sent after the login (read-only)', async () => {
    await start();
    const bad = await viewer();
    await bad.next();
    bad.send({ type: 'auth', clientNonce: 'short', hmac: 'AAAA' });
    expect(await bad.next()).to.deep.include({ type: 'error', code: 'ERR_LIVE_AUTH_FAILED' });
    const junk = await viewer();
    await junk.next();
    junk.ws.send('not json');
    expect(await junk.next()).to.deep.include({ type: 'error', code: 'ERR_LIVE_MALFORMED' });
    const v = await viewer();
    expect((await v.login('open-sesame-0123456789abcdef'))?.type).to.equal('welcome');
    v.send({ type: 'auth' });
    await v.until((m) => m.type === 'error' && m.code === 'ERR_LIVE_MALFORMED');
    expect((await v.closed).code).to.equal(1008);
  });

  it('pushes the map once a reader binds the image, then the changes of each merged piece, and the readers\' Status', async () => {
    const s = await start();
    const v = await viewer();
    expect(await v.login('open-sesame-0123456789abcdef')).to.deep.include({ type: 'welcome', auth: 'hmac' });
    const first = await v.until((m) => m.type === 'images');
    expect(first).to.deep.nested.include({ 'images[0].rescueId': null, 'images[0].path': img });

    const model = new MapModel();
    const r = await reader();
    model.apply(await v.until((m) => m.type === 'map'));
    expect(model.maps.get(0)!.join('')).to.equal('?'.repeat(26));

    const piece: Piece = makePiece(1, 1, [
      { pos: CHUNK_SIZE, size: 1536, status: '+' }, { pos: CHUNK_SIZE + 1536, size: 512, status: '-' }, { pos: CHUNK_SIZE + 2048, size: 1000, status: '+' },
    ]);
    const sealed = r.sendPiece(piece);
    expect(await r.expect('receipt')).to.deep.include({ merged: [{ seq: 1, headerHash: sealed.headerHash }] });
    const update = await v.until((m) => m.type === 'map-update');
    model.apply(update);
    // sectors 8-10 finished, 11 bad, 12 finished, 13 partly finished (1000 bytes end mid-sector), the rest untried
    expect(model.maps.get(0)!.join('')).to.equal(`${'?'.repeat(8)}+++-+${'?'.repeat(13)}`);
    const grid = cellGrid(SOURCE_SIZE, 512, 65536);
    expect(model.maps.get(0)!.join('')).to.equal(encodeCells(s.images[0]!, grid, 0, grid.cells).replace(/([?*/+-])(\d+)/g, (_m, c: string, n: string) => c.repeat(Number(n))));
    // the images summary goes in the same push, before the map changes
    const summary = v.all.filter((m) => m.type === 'images').at(-1)!;
    expect(summary).to.deep.nested.include({ 'images[0].merged': 1, 'images[0].sizes.+': 2536, 'images[0].sizes.-': 512 });

    const status: StatusMessage = {
      type: 'status', phase: '*', message: 'Trimming failed blocks...', pass: 1, pos: CHUNK_SIZE + 1536, finishedSize: 2536, nonTriedSize: SOURCE_SIZE - 3048,
      nonTrimmedSize: 0, nonScrapedSize: 0, badSectorSize: 512, readErrors: 1, currentRate: 1000, averageRate: 800, chunk: 1, chunkCount: 4,
      spoolBytes: 0, spoolPieces: 0, runTime: 9, paused: 'link', pausedText: 'the spool is full\u202e and the link is down', pausedSeconds: 12,
      readingPos: CHUNK_SIZE + 2048, readingSize: 512, readingSeconds: 40,
    };
    r.send(status);
    const readers = await v.until((m) => m.type === 'readers' && (m.readers as unknown[]).length > 0);
    expect(readers).to.deep.nested.include({
      'readers[0].rescueId': RESCUE_ID, 'readers[0].image': img, 'readers[0].connected': true, 'readers[0].status.phase': '*',
      'readers[0].status.readErrors': 1, 'readers[0].status.chunkCount': 4,
      // why reading waits and the read the disk hangs on reach the page; the reader's text has no bidi characters
      'readers[0].status.paused': 'link', 'readers[0].status.pausedSeconds': 12, 'readers[0].status.readingSeconds': 40,
      'readers[0].status.readingPos': CHUNK_SIZE + 2048,
    });
    expect((readers.readers as { status: { pausedText: string } }[])[0]!.status.pausedText).to.equal('the spool is full? and the link is down');
    expect((readers.readers as { peer: string }[])[0]!.peer).to.contain('test-reader');
    r.close();
    await v.until((m) => m.type === 'readers' && (m.readers as { connected: boolean }[])[0]?.connected === false);
  });

  it('logs in without a token when the server has none, and says so', async () => {
    await start({ secret: undefined });
    const v = await viewer();
    const challenge = await v.next();
    expect(challenge).to.deep.include({ type: 'challenge', auth: 'none' });
    v.send({ type: 'auth' });
    expect(await v.next()).to.deep.include({ type: 'welcome', auth: 'none', proof: '' });
  });

  it('refuses viewers past maxViewers with ERR_LIVE_BUSY (close 1013)', async () => {
    await start({ live: { maxViewers: 1, flushIntervalMs: 5 } });
    const a = await viewer();
    expect((await a.login('open-sesame-0123456789abcdef'))?.type).to.equal('welcome');
    const b = await viewer();
    expect(await b.next()).to.deep.include({ type: 'error', code: 'ERR_LIVE_BUSY' });
    expect((await b.closed).code).to.equal(1013);
  });

  it('answers 404 to every request with live: false, and readers still connect', async () => {
    const s = await start({ live: false });
    expect(s.pageUrl).to.equal(undefined);
    expect((await http(s.port, 'GET', '/')).status).to.equal(404);
    await reader();
  });
});
