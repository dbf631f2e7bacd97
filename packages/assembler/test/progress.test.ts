/**
 * The assembler's progress: the per-reader book (connections, merges, errors), its
 * views (terminal block, lines, JSON), the rate limits driven by an injected clock,
 * the import helper, and the events of real connections to `serve`.
 */
import type { Piece } from '@ddferry/protocol';
import { expect } from 'chai';

import { AssemblerProgress, type BundleProgressEvent, type ImageSource, MAX_ENTRIES } from '../src/progress.js';
import {
  assemblerDisplay, formatProgressBlock, formatProgressJson, formatReaderLine, importProgress, parseProgressInterval,
} from '../src/progress-view.js';
import type { ProgressMode } from '@ddferry/protocol';
import { serve } from '../src/server.js';
import type { AssemblerServer } from '../src/server.js';

import { Client } from './client.js';
import { CHUNK_SIZE, RESCUE_ID, hello, makePiece, tempDir } from './helpers.js';

const MB = 1_000_000;

/** An image whose merged count and `+` bytes the test moves. */
function fakeImage(path: string, size: number): ImageSource & { merge(pieces: number, bytes: number): void; sums: number } {
  let count = 0;
  let rescued = 0;
  const img = {
    path,
    size,
    binding: { rescueId: RESCUE_ID },
    sums: 0,
    get mergedCount() {
      return count;
    },
    finishedRanges() {
      ++img.sums;
      return rescued === 0 ? [] : [{ size: rescued }];
    },
    merge(pieces: number, bytes: number) {
      count += pieces;
      rescued += bytes;
    },
  };
  return img;
}

describe('AssemblerProgress', () => {
  it('counts per reader the pieces and bytes merged this run, the rate since the last snapshot, the image rescued', () => {
    let now = 0;
    const img = fakeImage('/img/disk.img', 200 * MB);
    img.merge(5, 50 * MB); // before this run
    const p = new AssemblerProgress({ clock: () => now });
    p.connected({ peer: '10.0.0.2:40112 (pc-a)', rescueId: RESCUE_ID, image: '/img/disk.img' });
    p.images = [img]; // serve sets them after the first connection may have come
    let s = p.snapshot();
    expect(s.readers).to.have.length(1);
    expect(s.readers[0]).to.deep.equal({
      rescueId: RESCUE_ID, peer: '10.0.0.2:40112 (pc-a)', image: '/img/disk.img', state: 'connected', piecesMerged: 0, bytesMerged: 0, rate: 0,
      imageRescued: 50 * MB, imageSize: 200 * MB, pctRescued: 25, bundles: null, lastError: null,
    });
    now = 10_000;
    img.merge(12, 40 * MB);
    s = p.snapshot();
    expect(s.time).to.equal(10);
    expect(s.readers[0]).to.include({ piecesMerged: 12, bytesMerged: 40 * MB, rate: 4 * MB, imageRescued: 90 * MB, pctRescued: 45 });
    const sums = img.sums;
    now = 20_000;
    s = p.snapshot();
    expect(s.readers[0]).to.include({ piecesMerged: 12, rate: 0 });
    expect(img.sums, 'the map is not summed again while nothing was merged').to.equal(sums);
  });

  it('keeps the last error and the disconnection; a reader that reconnects keeps its figures', () => {
    const img = fakeImage('/i', 10 * MB);
    const p = new AssemblerProgress({ images: [img], clock: () => 0 });
    const who = { peer: '10.0.0.2:1 (pc-a)', rescueId: RESCUE_ID };
    p.connected({ ...who, image: '/i' });
    img.merge(3, 3 * MB);
    p.problem(who, 'ERR_PIECE_CHECKSUM_MISMATCH', 'piece 4 rejected: extent 0 does not match its xxh64');
    p.disconnected(who);
    expect(p.snapshot().readers[0]).to.include({ state: 'disconnected', piecesMerged: 3 });
    p.connected({ peer: '10.0.0.2:2 (pc-a)', rescueId: RESCUE_ID, image: '/i' });
    const r = p.snapshot().readers[0]!;
    expect(r).to.include({ state: 'connected', peer: '10.0.0.2:2 (pc-a)', piecesMerged: 3, bytesMerged: 3 * MB });
    expect(r.lastError).to.deep.equal({ code: 'ERR_PIECE_CHECKSUM_MISMATCH', message: 'piece 4 rejected: extent 0 does not match its xxh64' });
  });

  it('keys a connection without a proven rescue by its address, and stays bounded', () => {
    const p = new AssemblerProgress({ clock: () => 0 });
    p.problem({ peer: '10.0.0.9:1' }, 'ERR_AUTH_FAILED', 'bad token');
    expect(p.snapshot().readers[0]).to.include({ rescueId: null, peer: '10.0.0.9:1', state: 'disconnected', image: null });
    for (let i = 2; i < 1000; ++i) p.problem({ peer: `10.0.0.9:${i}` }, 'ERR_AUTH_FAILED', 'bad token');
    expect(p.snapshot().readers).to.have.length(MAX_ENTRIES);
  });

  it('counts an import by its bundle events', () => {
    const img = fakeImage('/i', 10 * MB);
    const p = new AssemblerProgress({ images: [img], clock: () => 0 });
    const e = (over: Partial<BundleProgressEvent>): BundleProgressEvent => ({ bundle: 'piece-000001.tar', index: 1, total: 3, outcome: 'merged', pieces: 2, bytes: MB, ...over });
    p.bundle('/mnt/stick', img, e({}));
    p.bundle('/mnt/stick', img, e({ bundle: 'piece-000002.tar', index: 2, outcome: 'refused', pieces: 0, bytes: 0, code: 'ERR_PIECE_CHECKSUM_MISMATCH', reason: 'bad xxh64' }));
    let r = p.snapshot().readers[0]!;
    expect(r).to.deep.include({ peer: 'stick /mnt/stick', state: 'importing', piecesMerged: 2, bytesMerged: MB, bundles: { index: 2, total: 3 } });
    expect(r.lastError).to.deep.equal({ code: 'ERR_PIECE_CHECKSUM_MISMATCH', message: 'piece-000002.tar: bad xxh64' });
    p.bundle('/mnt/stick', img, e({ index: 3, pieces: 1, bytes: 10 }));
    r = p.snapshot().readers[0]!;
    expect(r).to.include({ state: 'imported', piecesMerged: 3, bytesMerged: MB + 10 });
  });
});

describe('assembler progress views', () => {
  const reader = {
    rescueId: RESCUE_ID, peer: '10.0.0.2:40112 (pc-a)', image: '/img/disk.img', state: 'connected' as const, piecesMerged: 12, bytesMerged: 40 * MB,
    rate: 4_250_000, imageRescued: 90 * MB, imageSize: 200 * MB, pctRescued: 45, bundles: null, lastError: null,
  };

  it('draws two lines per reader on a terminal', () => {
    expect(formatProgressBlock({ time: 72, readers: [reader] })).to.deep.equal([
      `rescue ${RESCUE_ID} from 10.0.0.2:40112 (pc-a) -> /img/disk.img: connected`,
      '    merged 12 pieces, 40 MB, 4.3 MB/s; image 45.00% rescued (90 MB of 200 MB); last error: none',
    ]);
    expect(formatProgressBlock({ time: 0, readers: [] })).to.deep.equal(['no reader yet']);
  });

  it('prints one line per reader, errors on one line and clipped', () => {
    const long = `${'x'.repeat(150)}\nsecond line`;
    expect(formatReaderLine(72, { ...reader, state: 'disconnected', lastError: { code: 'ERR_LINK', message: 'gone' } })).to.equal(
      `ddferry-assembler: [1m:12s] rescue ${RESCUE_ID} from 10.0.0.2:40112 (pc-a) -> /img/disk.img: disconnected; `
      + 'merged 12 pieces, 40 MB, 4.3 MB/s; image 45.00% rescued (90 MB of 200 MB); last error: ERR_LINK: gone',
    );
    const line = formatReaderLine(3, { ...reader, rescueId: null, image: null, peer: '10.0.0.9:1', piecesMerged: 1, lastError: { code: 'ERR_AUTH_FAILED', message: long } });
    expect(line).to.equal(`ddferry-assembler: [3s] from 10.0.0.9:1: connected; merged 1 piece, 40 MB, 4.3 MB/s; no image; last error: ERR_AUTH_FAILED: ${'x'.repeat(99)}…`);
    expect(formatReaderLine(3, { ...reader, peer: 'stick /mnt/s', state: 'importing', bundles: { index: 2, total: 5 } }))
      .to.contain(`rescue ${RESCUE_ID} from the stick /mnt/s -> /img/disk.img: importing, bundle 2/5;`);
  });

  it('prints JSON with stable keys, in bytes and seconds', () => {
    const o = JSON.parse(formatProgressJson({ time: 72, readers: [reader] })) as { readers: object[] };
    expect(Object.keys(o)).to.deep.equal(['type', 'time', 'readers']);
    expect(o).to.include({ type: 'progress', time: 72 });
    expect(Object.keys(o.readers[0]!)).to.deep.equal([
      'rescueId', 'peer', 'image', 'state', 'piecesMerged', 'bytesMerged', 'rate', 'imageRescued', 'imageSize', 'pctRescued', 'bundles', 'lastError',
    ]);
  });

  it('parses --progress-interval, refusing what is not 0.1 to 86400 seconds with ERR_USAGE', () => {
    expect(parseProgressInterval('2.5')).to.equal(2.5);
    for (const bad of ['', 'x', '0', '0.05', '86401', '-1']) {
      expect(() => parseProgressInterval(bad)).to.throw().with.property('code', 'ERR_USAGE');
    }
  });
});

describe('assembler ProgressDisplay', () => {
  function setup(mode: ProgressMode, interval?: number) {
    let now = 0;
    const img = fakeImage('/i', 10 * MB);
    const book = new AssemblerProgress({ images: [img], clock: () => now });
    const out: string[] = [];
    const messages: string[] = [];
    const d = assemblerDisplay({ mode, interval, write: (t) => out.push(t), messages: (t) => messages.push(t), clock: () => now, snapshot: () => book.snapshot() });
    return { d, out, messages, book, img, at: (ms: number) => { now = ms; } };
  }

  it('redraws a terminal in place at most once a second; messages erase it first', () => {
    const t = setup('tty');
    t.d.update();
    expect(t.out).to.deep.equal(['no reader yet\x1B[K\n\x1B[J']);
    t.book.connected({ peer: 'a:1', rescueId: RESCUE_ID, image: '/i' });
    t.at(999);
    t.d.update();
    expect(t.out).to.have.length(1);
    t.at(1000);
    t.d.update();
    expect(t.out).to.have.length(2);
    expect(t.out[1]!.startsWith('\r\x1B[1A')).to.equal(true);
    t.d.message('ddferry-assembler: a:1: connected');
    expect(t.out[2]).to.equal('\r\x1B[2A\x1B[J');
    expect(t.messages).to.deep.equal(['ddferry-assembler: a:1: connected\n']);
    t.at(1500);
    t.d.update();
    t.d.finish();
    expect(t.out).to.have.length(4);
    expect(t.out[3]!.startsWith('\r'), 'drawn below the message').to.equal(false);
  });

  it('prints at each interval a line per reader that changed, and every reader at the end', () => {
    const t = setup('lines', 10);
    t.book.connected({ peer: 'a:1', rescueId: RESCUE_ID, image: '/i' });
    t.d.update();
    expect(t.out).to.have.length(1);
    t.at(10_000);
    t.d.update();
    expect(t.out, 'nothing changed: no line').to.have.length(1);
    t.img.merge(1, MB);
    t.at(15_000);
    t.d.update();
    expect(t.out, 'within the interval').to.have.length(1);
    t.at(20_000);
    t.d.update();
    expect(t.out).to.have.length(2);
    expect(t.out[1]).to.contain('merged 1 piece, 1000 kB');
    t.d.finish();
    expect(t.out).to.have.length(3);
  });

  it('prints one JSON object per interval with --json', () => {
    const t = setup('json', 1);
    for (const ms of [0, 500, 1000, 1999, 2000]) {
      t.at(ms);
      t.d.update();
    }
    t.d.finish();
    expect(t.out.map((l) => (JSON.parse(l) as { type: string }).type)).to.deep.equal(['progress', 'progress', 'progress', 'progress']);
  });

  it('gives the import command a display fed by its bundle events', () => {
    const out: string[] = [];
    const img = fakeImage('/i', 10 * MB);
    const ip = importProgress({ mode: 'json', write: (t) => out.push(t), messages: (t) => out.push(t), clock: () => 0, folder: '/mnt/s', image: img });
    ip.onBundle({ bundle: 'piece-000001.tar', index: 1, total: 2, outcome: 'merged', pieces: 1, bytes: 512 });
    ip.onBundle({ bundle: 'piece-000002.tar', index: 2, total: 2, outcome: 'merged', pieces: 1, bytes: 512 });
    ip.finish();
    expect(out).to.have.length(2);
    const last = JSON.parse(out[1]!) as { readers: Array<Record<string, unknown>> };
    expect(last.readers[0]).to.include({ state: 'imported', piecesMerged: 2, bytesMerged: 1024 });
  });
});

describe('serve progress events', () => {
  let server: AssemblerServer | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  const clients: Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await server?.close();
    server = undefined;
    await cleanup?.();
  });

  it('tells a reader\'s connection, merges, rejected pieces and disconnection; a wrong token is keyed by address', async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    const img = `${t.dir}/disk.img`;
    const progress = new AssemblerProgress({ clock: Date.now });
    const quiet = { info() {}, warn() {}, error() {} };
    server = await serve({ images: [img], listen: { host: '127.0.0.1', port: 0 }, secret: 'open-sesame-0123456789abcdef', log: quiet, progress });
    progress.images = server.images;
    const bad = await Client.connect(server.url);
    clients.push(bad);
    await bad.handshake('wrong');
    await bad.closed;
    const c = await Client.connect(server.url);
    clients.push(c);
    expect((await c.handshake('open-sesame-0123456789abcdef'))?.type).to.equal('welcome');
    c.sendPiece(makePiece(1, 1, [{ pos: CHUNK_SIZE, size: 1536, status: '+' }]));
    expect((await c.expect('receipt')).merged.map((r) => r.seq)).to.deep.equal([1]);
    const broken: Piece = makePiece(2, 1, [{ pos: CHUNK_SIZE + 2048, size: 512, status: '+' }]);
    broken.data[0] = broken.data[0]! ^ 1;
    c.sendPiece(broken);
    expect((await c.expect('receipt')).rejected.map((r) => r.seq)).to.deep.equal([2]);
    let readers = progress.snapshot().readers;
    const stranger = readers.find((r) => r.rescueId === null)!;
    expect(stranger.lastError?.code).to.equal('ERR_AUTH_FAILED');
    const ours = readers.find((r) => r.rescueId === hello().rescueId)!;
    expect(ours).to.include({ state: 'connected', image: server.images[0]!.path, piecesMerged: 1, bytesMerged: 1536 });
    expect(ours.lastError?.code).to.match(/^ERR_PIECE_/);
    c.ws.close();
    await c.closed;
    for (let i = 0; i < 100 && progress.snapshot().readers.find((r) => r.rescueId !== null)!.state !== 'disconnected'; ++i) await new Promise((r) => setTimeout(r, 20));
    readers = progress.snapshot().readers;
    expect(readers.find((r) => r.rescueId !== null)!.state).to.equal('disconnected');
  });
});
