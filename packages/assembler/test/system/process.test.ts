/**
 * The real `ddferry-assembler` process (the built bin): clean stop on SIGTERM,
 * and kill -9 in the middle of merging, then a restart: nothing lost, the
 * mapfile never claims bytes that are not in the image.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { HelloMessage, Piece } from '@ddferry/protocol';
import { makeNonce, PROTOCOL_VERSION } from '@ddferry/protocol';
import { expect } from 'chai';

import { Client } from '../client.js';
import { FINGERPRINT, makePiece, PLUS, readImage, readStatuses, RESCUE_ID, seal, tempDir } from '../helpers.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '../../bin/ddferry-assembler.js');
const MIB = 1024 * 1024;
const SIZE = 4 * MIB;
const CHUNK = MIB;
const PIECE = 64 * 1024;

function helloBig(): HelloMessage {
  return {
    type: 'hello', protocolVersion: PROTOCOL_VERSION, rescueId: RESCUE_ID, fingerprint: { ...FINGERPRINT, size: SIZE },
    clientNonce: makeNonce(), readerName: 'system-test', chunkSize: CHUNK, sectorSize: 512,
  };
}

function pieces(): Piece[] {
  const out: Piece[] = [];
  for (let seq = 1; seq <= SIZE / PIECE; ++seq) {
    const pos = (seq - 1) * PIECE;
    out.push(makePiece(seq, Math.floor(pos / CHUNK), [{ pos, size: PIECE - 512, status: '+' }, { pos: pos + PIECE - 512, size: 512, status: '-' }]));
  }
  return out;
}

interface Running {
  readonly child: ChildProcess;
  readonly url: string;
  readonly stderr: string[];
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function start(image: string): Promise<Running> {
  const child = spawn(process.execPath, [BIN, 'serve', image, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (ws:\/\/\S+)\n/.exec(out);
      if (m) resolve(m[1]!);
    });
    void exit.then(() => reject(new Error(`exited before listening: ${stderr.join('')}`)));
  });
  return { child, url, stderr, exit };
}

describe('ddferry-assembler (process)', function () {
  this.timeout(120_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => cleanup());

  it('exits 0 on SIGTERM after a handshake', async () => {
    const a = await start(`${dir}/disk.img`);
    const c = await Client.connect(a.url);
    expect((await c.handshake('', helloBig()))?.type).to.equal('welcome');
    a.child.kill('SIGTERM');
    expect(await a.exit).to.deep.equal({ code: 0, signal: null });
    expect((await c.closed).code).to.equal(1001);
  });

  it('loses nothing when killed with SIGKILL while merging: the mapfile claims only written bytes, a restart completes', async () => {
    const image = `${dir}/disk.img`;
    const all = pieces();
    const expected = new Uint8Array(SIZE);
    for (const p of all) expected.set(p.data, p.extents[0]!.pos);

    // sealed once, as a reader's spool holds them: sent again, each is the same piece
    const sealed = all.map((p) => seal(p, ''));
    const a = await start(image);
    const c = await Client.connect(a.url);
    expect((await c.handshake('', helloBig()))?.type).to.equal('welcome');
    for (const p of sealed) c.sendPiece(p);
    let acked = 0;
    while (acked < 8) {
      const m = await c.next();
      if (m?.type === 'receipt') acked += m.merged.length;
    }
    a.child.kill('SIGKILL');
    expect((await a.exit).signal).to.equal('SIGKILL');

    const codes = await readStatuses(`${image}.map`);
    const bytes = await readImage(image, SIZE);
    for (let i = 0; i < SIZE; ++i) {
      if (codes[i] === PLUS && bytes[i] !== expected[i]) expect.fail(`byte ${i} is + in the mapfile but not in the image`);
    }
    const b = await start(image);
    const d = await Client.connect(b.url);
    const welcome = await d.handshake('', helloBig());
    if (welcome?.type !== 'welcome') throw new Error('no welcome');
    expect(welcome.maxMergedSeq).to.be.at.least(acked);
    d.send({ type: 'query', seqs: sealed.map((p) => p.seq) });
    const answer = await d.expect('answer');
    expect(answer.more).to.equal(false);
    expect(answer.merged.length).to.be.at.least(acked);
    for (const r of answer.merged) {
      expect(r.headerHash).to.equal(sealed[r.seq - 1]!.headerHash);
      expect(codes[(r.seq - 1) * PIECE]).to.equal(PLUS);
    }
    const done = new Set(answer.merged.map((r) => r.seq));
    const resend = sealed.filter((p) => !done.has(p.seq) || p.seq === 1);
    for (const p of resend) d.sendPiece(p);
    const got = new Set<number>();
    while (got.size < resend.length) {
      const m = await d.next();
      if (m?.type !== 'receipt') throw new Error(`unexpected ${m?.type}`);
      expect(m.rejected).to.deep.equal([]);
      for (const s of m.merged) got.add(s.seq);
    }
    b.child.kill('SIGINT');
    expect(await b.exit).to.deep.equal({ code: 0, signal: null });
    expect(await readImage(image, SIZE)).to.deep.equal(expected);
    const final = await readStatuses(`${image}.map`);
    for (const p of all) {
      expect(final[p.extents[0]!.pos]).to.equal(PLUS);
      expect(final[p.extents[0]!.pos + PIECE - 1]).to.equal(3);
    }
  });

  it('writes an IMAGE.map that GNU ddrescuelog 1.27 reads', async function () {
    if (spawnSync('ddrescuelog', ['--version']).status !== 0) this.skip();
    const image = `${dir}/disk.img`;
    const a = await start(image);
    const c = await Client.connect(a.url);
    await c.handshake('', helloBig());
    const [p1, p2] = pieces();
    c.sendPiece(p1!);
    c.sendPiece(p2!);
    let acked = 0;
    while (acked < 2) {
      const m = await c.next();
      if (m?.type === 'receipt') acked += m.merged.length;
    }
    a.child.kill('SIGTERM');
    await a.exit;
    const r = spawnSync('ddrescuelog', ['-t', `${image}.map`], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/rescued:\s+130048 B,\s+in\s+2 area/);
    expect(r.stdout).to.match(/bad-sector:\s+1024 B,\s+in\s+2 area/);
  });
});
