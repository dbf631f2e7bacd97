import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { planChunks } from '@ddferry/mapfile';
import { decodeEnvelope, DEFAULT_LIMITS, deriveRescueKeys, encodeEnvelope, makeExtent, makeNonce, PieceCollector, PROTOCOL_VERSION, serverProof } from '@ddferry/protocol';
import { expect } from 'chai';
import { type WebSocket, WebSocketServer } from 'ws';

import { SeqCounter } from '../src/job/seq-counter.js';
import { Spool, spoolFileName } from '../src/job/spool.js';
import { Link, type LinkOptions } from '../src/lan/link.js';

const RESCUE_ID = '0f3c2a4e-9b1d-4c6e-8a7f-1234567890ab';
const SIZE = 1 << 20;
const CHUNKS = planChunks({ sourceSize: SIZE, sectorSize: 512, chunkSize: 64 * 1024 });
/** A larger source for pieces of 2 MiB, in chunks of 8 MiB. */
const PIECE_BYTES = 2 << 20;
const CHUNK_BIG = 8 << 20;
const SIZE_BIG = 32 << 20;
const CHUNKS_BIG = planChunks({ sourceSize: SIZE_BIG, sectorSize: 512, chunkSize: CHUNK_BIG });
const FINGERPRINT = { size: SIZE, logicalSectorSize: 512, physicalSectorSize: 512, model: 'M', serial: 'S', wwn: '', kind: 'file' as const };

describe('Link', () => {
  let dir: string;
  let wss: WebSocketServer;
  let shipper: Link | undefined;
  let sessions = 0;

  /** An assembler that answers the Auth of every session with an Error `code`. */
  async function refusing(code: string): Promise<string> {
    wss.on('connection', (ws) => {
      ++sessions;
      ws.on('message', (data: Buffer) => {
        const m = decodeEnvelope(data, DEFAULT_LIMITS);
        if (m.type === 'hello') ws.send(encodeEnvelope({ type: 'challenge', serverNonce: makeNonce(), protocolVersion: PROTOCOL_VERSION }, DEFAULT_LIMITS));
        else if (m.type === 'auth') ws.send(encodeEnvelope({ type: 'error', code, message: 'refused by the test.' }, DEFAULT_LIMITS));
      });
    });
    return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  }

  async function start(url: string, logs: string[], extra: Partial<LinkOptions> = {}): Promise<Link> {
    const seq = await SeqCounter.open(join(dir, 'seq.json'));
    const spool = await Spool.open({ dir: join(dir, 'spool'), capacity: 1 << 20, plan: { rescueId: RESCUE_ID, sourceSize: SIZE, sectorSize: 512, chunks: CHUNKS }, keys: deriveRescueKeys('wrong', RESCUE_ID) }, seq);
    const s = new Link({ url, secret: 'wrong', rescueId: RESCUE_ID, fingerprint: FINGERPRINT, chunkSize: 64 * 1024, sectorSize: 512, spool, log: (l) => logs.push(l), ...extra });
    s.start();
    return s;
  }

  /**
   * An assembler that welcomes every session (Challenge, then Welcome with its proof)
   * and hands every later message of it to `after`.
   */
  function welcoming(secret: string, after: (ws: WebSocket, m: ReturnType<typeof decodeEnvelope>) => void): void {
    wss.on('connection', (ws) => {
      ++sessions;
      const nonce = makeNonce();
      let clientNonce: Uint8Array = new Uint8Array();
      ws.on('message', (data: Buffer) => {
        const m = decodeEnvelope(data, DEFAULT_LIMITS);
        if (m.type === 'hello') {
          clientNonce = m.clientNonce;
          ws.send(encodeEnvelope({ type: 'challenge', serverNonce: nonce, protocolVersion: PROTOCOL_VERSION }, DEFAULT_LIMITS));
        } else if (m.type === 'auth') {
          ws.send(encodeEnvelope({ type: 'welcome', serverProof: serverProof(secret, nonce, clientNonce, RESCUE_ID), finished: [], maxMergedSeq: 0, imageSize: SIZE }, DEFAULT_LIMITS));
        } else {
          after(ws, m);
        }
      });
    });
  }

  /** An assembler that welcomes every session, then answers nothing (no pong, no receipt): a frozen process. */
  function freezing(secret: string): string {
    welcoming(secret, () => undefined);
    return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  }

  /** An assembler that welcomes every session, answers Queries with nothing merged, and rejects every piece with `code`. */
  function rejecting(secret: string, code: string, onPiece: (m: { seq: number }) => void): void {
    welcoming(secret, (ws, m) => {
      if (m.type === 'query') {
        ws.send(encodeEnvelope({ type: 'answer', merged: [], more: false }, DEFAULT_LIMITS));
      } else if (m.type === 'pieceEnd') {
        onPiece(m);
        ws.send(encodeEnvelope({ type: 'receipt', merged: [], rejected: [{ seq: m.seq, code, reason: 'refused by the test', headerHash: '00'.repeat(16) }] }, DEFAULT_LIMITS));
      }
    });
  }

  beforeEach(async () => {
    sessions = 0;
    dir = await mkdtemp(join(tmpdir(), 'ddferry-shipper-'));
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
    await new Promise<void>((r) => wss.once('listening', () => r()));
  });
  afterEach(async () => {
    shipper?.stop();
    shipper = undefined;
    await new Promise<void>((r) => wss.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  for (const code of ['ERR_AUTH_FAILED', 'ERR_PROTO_WRONG_RESCUE', 'ERR_PROTO_WRONG_DEVICE', 'ERR_PROTO_VERSION_MISMATCH']) {
    it(`stops at once on ${code} before any Welcome: firstWelcome gives null, fatal names it, no retry`, async () => {
      const logs: string[] = [];
      shipper = await start(await refusing(code), logs);
      const welcome = await shipper.firstWelcome(10_000);
      expect(welcome).to.equal(null);
      expect(shipper.fatal?.code).to.equal('ERR_LINK');
      expect(shipper.fatal?.message).to.include(code);
      expect(shipper.snapshot().lastError).to.include(code);
      await new Promise((r) => setTimeout(r, 600)); // a retry would come after 250 ms
      expect(sessions, 'sessions opened').to.equal(1);
      expect(logs.filter((l) => l.includes('retrying'))).to.deep.equal([]);
    });
  }

  it('sends a piece this run wrote as read back; once the assembler refuses it, opens it whole before sending again (a damaged file is not sent again)', async () => {
    const secret = 'the secret';
    const sent: number[] = [];
    rejecting(secret, 'ERR_SEAL_FRAME_AUTH_FAILED', (m) => sent.push(m.seq));
    const seq = await SeqCounter.open(join(dir, 'seq.json'));
    const keys = deriveRescueKeys(secret, RESCUE_ID);
    // nothing kept in memory: the link takes the piece from its file
    const spool = await Spool.open({ dir: join(dir, 'spool'), capacity: 1 << 20, plan: { rescueId: RESCUE_ID, sourceSize: SIZE, sectorSize: 512, chunks: CHUNKS }, keys, memoryBytes: 1 }, seq);
    const data = randomBytes(16 * 1024); // incompressible: its frame is raw
    const { seq: n } = await spool.put({ rescueId: RESCUE_ID, seq: seq.next(), chunk: 0, extents: [makeExtent(0, data)], delta: [{ pos: 0, size: data.length, status: '+' }], data, mapState: undefined });
    const file = join(dir, 'spool', spoolFileName(n));
    const bytes = await readFile(file);
    const at = bytes.length - 1024 - 4096; // in the frame's ciphertext: before its entry's padding and the archive's end
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x10, at);
    await writeFile(file, bytes);
    const logs: string[] = [];
    shipper = new Link({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, secret, rescueId: RESCUE_ID, fingerprint: FINGERPRINT, chunkSize: 64 * 1024, sectorSize: 512, spool, log: (l) => logs.push(l), maxBackoffMs: 200 });
    shipper.start();
    await new Promise((r) => setTimeout(r, 1500));
    expect(sent, logs.join('\n')).to.deep.equal([n]);
    expect(shipper.snapshot().lastError ?? '', logs.join('\n')).to.contain('ERR_SEAL_FRAME_AUTH_FAILED');
  });

  it('sends the pieces of its spool as views of their blocks, and gives a block back only once the socket has taken its last message: pieces sealed meanwhile in recycled blocks change no byte sent', async function () {
    this.timeout(60_000);
    const secret = 'the secret';
    const keys = deriveRescueKeys(secret, RESCUE_ID);
    const plan = { rescueId: RESCUE_ID, sourceSize: SIZE_BIG, sectorSize: 512, chunks: CHUNKS_BIG };
    const collector = new PieceCollector({ plan, keys, limits: DEFAULT_LIMITS });
    const opened = new Map<number, Uint8Array>();
    const errors: string[] = [];
    let peer: WebSocket | undefined;
    welcoming(secret, (ws, m) => {
      peer = ws;
      if (m.type === 'query') {
        ws.send(encodeEnvelope({ type: 'answer', merged: [], more: false }, DEFAULT_LIMITS));
        return;
      }
      if (m.type !== 'pieceHeader' && m.type !== 'pieceData' && m.type !== 'pieceEnd') return;
      try {
        const piece = collector.accept(m);
        if (piece !== undefined) {
          opened.set(piece.seq, Buffer.from(piece.data));
          ws.send(encodeEnvelope({ type: 'receipt', merged: [{ seq: piece.seq, headerHash: piece.headerHash }], rejected: [] }, DEFAULT_LIMITS));
        }
      } catch (err) {
        errors.push((err as Error).message);
        collector.reset();
      }
    });
    const seq = await SeqCounter.open(join(dir, 'seq.json'));
    const spool = await Spool.open({ dir: join(dir, 'spool'), capacity: 256 << 20, plan, keys, memoryBytes: 64 << 20 }, seq);
    const owned: boolean[] = [];
    const owns = spool.owns.bind(spool);
    spool.owns = (p) => {
      const o = owns(p);
      owned.push(o);
      return o;
    };
    const datas = new Map<number, Uint8Array>();
    const put = async (n: number): Promise<void> => {
      for (let i = 0; i < n; ++i) {
        const s = seq.next();
        const pos = ((s - 1) % 16) * PIECE_BYTES;
        const data = randomBytes(PIECE_BYTES); // incompressible: one raw frame of 2 MiB
        datas.set(s, data);
        await spool.put({ rescueId: RESCUE_ID, seq: s, chunk: Math.floor(pos / CHUNK_BIG), extents: [makeExtent(pos, data)], delta: [{ pos, size: data.length, status: '+' }], data, mapState: undefined }, { sync: false });
      }
    };
    await put(8);
    const logs: string[] = [];
    shipper = new Link({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, secret, rescueId: RESCUE_ID, fingerprint: { ...FINGERPRINT, size: SIZE_BIG }, chunkSize: CHUNK_BIG, sectorSize: 512, spool, log: (l) => logs.push(l) });
    shipper.start();
    // the assembler stops reading: messages wait on the reader's side, in the socket's queue
    for (let i = 0; i < 400 && peer === undefined; ++i) await new Promise((r) => setTimeout(r, 10));
    expect(peer, logs.join('\n')).to.not.equal(undefined);
    const socket = (peer as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    await new Promise((r) => setTimeout(r, 300));
    // pieces sealed now take the blocks given back so far
    await put(8);
    await new Promise((r) => setTimeout(r, 300));
    socket.resume();
    for (let i = 0; i < 1000 && opened.size < 16 && errors.length === 0; ++i) await new Promise((r) => setTimeout(r, 10));
    expect(errors, logs.join('\n')).to.deep.equal([]);
    expect([...opened.keys()].sort((a, b) => a - b)).to.deep.equal([...datas.keys()]);
    for (const [s, data] of datas) expect(Buffer.from(data).equals(opened.get(s)!), `piece ${s}`).to.equal(true);
    expect(owned.length).to.be.at.least(16);
    expect(owned.every((o) => o)).to.equal(true);
  });

  it('sends a rejected piece again after a backoff that doubles (250 ms, 500 ms, 1 s…), not at once and for ever', async () => {
    const secret = 'the secret';
    const sent: number[] = [];
    rejecting(secret, 'ERR_IMAGE_WRITE', () => sent.push(Date.now()));
    const seq = await SeqCounter.open(join(dir, 'seq.json'));
    const spool = await Spool.open({ dir: join(dir, 'spool'), capacity: 1 << 20, plan: { rescueId: RESCUE_ID, sourceSize: SIZE, sectorSize: 512, chunks: CHUNKS }, keys: deriveRescueKeys(secret, RESCUE_ID) }, seq);
    const data = randomBytes(4096);
    await spool.put({ rescueId: RESCUE_ID, seq: seq.next(), chunk: 0, extents: [makeExtent(0, data)], delta: [{ pos: 0, size: data.length, status: '+' }], data, mapState: undefined });
    const logs: string[] = [];
    shipper = new Link({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, secret, rescueId: RESCUE_ID, fingerprint: FINGERPRINT, chunkSize: 64 * 1024, sectorSize: 512, spool, log: (l) => logs.push(l) });
    shipper.start();
    await new Promise((r) => setTimeout(r, 2000));
    // sent at 0, 0.25, 0.75, 1.75 s: 4 times in 2 s (before: hundreds, as fast as the loopback turns round)
    expect(sent.length, logs.join('\n')).to.be.within(2, 5);
    const gaps = sent.slice(1).map((t, i) => t - sent[i]!);
    expect(gaps[0]!).to.be.at.least(240);
    if (gaps.length > 1) expect(gaps[1]!).to.be.at.least(490);
    expect(logs[0]).to.contain('ERR_IMAGE_WRITE').and.contain('again from the spool in 0.25 s, attempt 2');
  });

  it('keeps retrying a refusal that may pass (the assembler busy)', async () => {
    const logs: string[] = [];
    shipper = await start(await refusing('ERR_SERVER_BUSY'), logs);
    expect(await shipper.firstWelcome(1500)).to.equal(null);
    expect(shipper.fatal).to.equal(null);
    expect(sessions).to.be.at.least(2);
    expect(logs.some((l) => l.includes('retrying'))).to.equal(true);
  });

  it('takes a peer that stops answering for dead within deadMs, closes the connection and connects again', async () => {
    const logs: string[] = [];
    shipper = await start(freezing('s3cret-of-the-test'), logs, { secret: 's3cret-of-the-test', pingMs: 200, deadMs: 1200, maxBackoffMs: 300 });
    expect(await shipper.firstWelcome(5000)).to.not.equal(null);
    expect(shipper.snapshot().state).to.equal('connected');
    const t0 = Date.now();
    while (sessions < 2 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
    const took = Date.now() - t0;
    expect(sessions, logs.join('\n')).to.equal(2);
    expect(took).to.be.within(1000, 4000);
    expect(logs.some((l) => l.includes('ERR_LINK') && l.includes('no answer for'))).to.equal(true);
    expect(shipper.snapshot().sessions).to.be.at.least(1);
  });

  it('keeps a connection whose peer answers its pings, however long nothing else is said', async () => {
    const pong = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => pong.once('listening', () => r()));
    const logs: string[] = [];
    const saved = wss;
    wss = pong;
    try {
      shipper = await start(freezing('another-secret!!'), logs, { secret: 'another-secret!!', pingMs: 200, deadMs: 1000 });
      expect(await shipper.firstWelcome(5000)).to.not.equal(null);
      await new Promise((r) => setTimeout(r, 3000));
      expect(sessions).to.equal(1);
      expect(shipper.snapshot().state).to.equal('connected');
      expect(logs.filter((l) => l.includes('ERR_LINK'))).to.deep.equal([]);
    } finally {
      shipper?.stop();
      shipper = undefined;
      wss = saved;
      await new Promise<void>((r) => pong.close(() => r()));
    }
  });

  it('waits at most maxBackoffMs between attempts, and counts the time down from when the link went down', async () => {
    const logs: string[] = [];
    shipper = await start(await refusing('ERR_SERVER_BUSY'), logs, { maxBackoffMs: 400 });
    const down = shipper.snapshot().since;
    await new Promise((r) => setTimeout(r, 3000));
    // 250, 400, 400...: at least 6 attempts in 3 s
    expect(sessions).to.be.at.least(6);
    expect(shipper.snapshot().since).to.equal(down);
    expect(shipper.snapshot().state).to.not.equal('connected');
  });
});
