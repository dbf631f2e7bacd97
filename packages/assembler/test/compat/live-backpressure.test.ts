/**
 * Backpressure of the live page: a browser that stops reading while many
 * merges happen gets no backlog (at most one push waits in its socket), and
 * the latest map once it reads again. Slow (tens of merges of a 65 536-block
 * mapfile, until the kernel's socket buffers are full), hence here.
 */
import { writeFile } from 'node:fs/promises';

import { planChunks } from '@ddferry/mapfile';
import type { Limits } from '@ddferry/protocol';
import { resolveLimits } from '@ddferry/protocol';
import { expect } from 'chai';

import { cellGrid, encodeCells } from '../../src/live/map-cells.js';
import { serve } from '../../src/server.js';
import type { AssemblerServer, ServeOptions } from '../../src/server.js';
import { Client } from '../client.js';
import { CHUNK_SIZE, FINGERPRINT, hello, makePiece, RESCUE_ID, tempDir } from '../helpers.js';
import { LiveClient, MapModel } from '../live-client.js';
import type { LiveMessage } from '../live-client.js';

const LIMITS: Limits = resolveLimits({ maxFrameBytes: 16 * 1024, maxMessageBytes: 32 * 1024 });

describe('live page backpressure', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: AssemblerServer | undefined;
  let img: string;
  const sockets: { ws: { terminate(): void } }[] = [];
  const quiet: ServeOptions['log'] = { info: () => undefined, warn: () => undefined, error: () => undefined };

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    img = `${dir}/disk.img`;
  });
  afterEach(async () => {
    for (const c of sockets.splice(0)) c.ws.terminate();
    await server?.close();
    server = undefined;
    await cleanup();
  });

  async function start(options: Partial<ServeOptions> = {}): Promise<AssemblerServer> {
    server = await serve({ images: [img], listen: { host: '127.0.0.1', port: 0 }, secret: 'open-sesame-0123456789abcdef', limits: LIMITS, log: quiet, ...options });
    return server;
  }
  async function viewer(): Promise<LiveClient> {
    const c = await LiveClient.connect(server!.url);
    sockets.push(c);
    return c;
  }

  it('holds pushes to a browser that does not read, then sends it the latest map (bounded socket buffer)', async function () {
    this.timeout(120_000);
    // 65 536 sectors alternately non-tried and bad: a whole map is about 260 kB of JSON
    const sectors = 65536;
    const size = sectors * 512;
    const lines = ['# Mapfile. Created by a test', '0x00000000  ?  1'];
    for (let i = 0; i < sectors; ++i) lines.push(`0x${(i * 512).toString(16)}  0x200  ${i % 2 === 0 ? '?' : '-'}`);
    await writeFile(`${img}.map`, `${lines.join('\n')}\n`);
    const fp = { ...FINGERPRINT, size };
    const s = await start({ live: { flushIntervalMs: 1, highWaterBytes: 64 * 1024 }, merge: { maxBatchPieces: 64 } });
    const v = await viewer();
    expect((await v.login('open-sesame-0123456789abcdef'))?.type).to.equal('welcome');
    const r = await Client.connect(s.url, LIMITS);
    sockets.push(r);
    expect((await r.handshake('open-sesame-0123456789abcdef', hello(RESCUE_ID, fp)))?.type).to.equal('welcome');
    await v.until((m) => m.type === 'map');
    v.ws.pause();
    // rounds of 64 pieces in 64 chunks, each finishing 2 sectors apart: more than 64 changed ranges per merge, so whole maps
    const chunks = planChunks({ sourceSize: size, sectorSize: 512, chunkSize: CHUNK_SIZE });
    let seq = 0;
    // until the browser's socket is full (the kernel's buffers hold a few MB), then some more
    let rounds = 0;
    let extra = 8;
    for (let round = 0; extra > 0; ++round) {
      if (round === 200) throw new Error(`200 rounds and the kernel took every push (${v.bytes} bytes read): the test did not reach backpressure`);
      if (s.live!.stats().deferred > 0) --extra;
      ++rounds;
      const batch: number[] = [];
      for (let k = 0; k < 64; ++k) {
        const c = chunks[(round * 64 + k) % chunks.length]!;
        const p = makePiece(++seq, c.pos / CHUNK_SIZE, [{ pos: c.pos, size: 512, status: '+' }, { pos: c.pos + 1024, size: 512, status: '+' }], seq, RESCUE_ID);
        r.sendPiece(p);
        batch.push(seq);
      }
      const got = new Set<number>();
      while (got.size < batch.length) for (const m of (await r.expect('receipt')).merged) got.add(m.seq);
    }
    const stats = s.live!.stats();
    expect(stats.maxBufferedBytes).to.be.at.most(64 * 1024 + 1024 * 1024);
    v.ws.resume();
    const grid = cellGrid(size, 512, 65536);
    const truth = encodeCells(s.images[0]!, grid, 0, grid.cells);
    const model = new MapModel();
    for (const m of v.all) model.apply(m);
    const runsOf = (cells: string[]): string => cells.join('').replace(/(.)\1*/g, (x) => `${x[0]}${x.length}`);
    const deadline = Date.now() + 60_000;
    while (v.inbox.length > 0 || runsOf(model.maps.get(0)!) !== truth) {
      if (Date.now() > deadline) throw new Error('the page never got the latest map');
      const m = await v.next(60_000);
      if (m === undefined) throw new Error('the live socket closed');
      model.apply(m);
    }
    const maps = v.all.filter((m: LiveMessage) => m.type === 'map').length;
    expect(maps).to.be.lessThan(rounds);
  });
});
