import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { planChunks } from '@ddferry/mapfile';
import {
  type Message, decodeEnvelope, DEFAULT_LIMITS, deriveRescueKeys, encodeEnvelope, makeExtent, makeNonce, PROTOCOL_VERSION, serverProof,
} from '@ddferry/protocol';
import { expect } from 'chai';
import { WebSocketServer } from 'ws';

import { Spool } from '../src/pipeline/spool.js';
import { WsShipper } from '../src/pipeline/ws-shipper.js';

const RESCUE_ID = '0f3c2a4e-9b1d-4c6e-8a7f-1234567890ab';
const SIZE = 1 << 20;
const CHUNKS = planChunks({ sourceSize: SIZE, sectorSize: 512, chunkSize: 64 * 1024 });
const FINGERPRINT = { size: SIZE, logicalSectorSize: 512, physicalSectorSize: 512, model: 'M', serial: 'S', wwn: '', kind: 'file' as const };

describe('WsShipper (refusals)', () => {
  let dir: string;
  let wss: WebSocketServer;
  let shipper: WsShipper | undefined;
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

  async function start(url: string, logs: string[]): Promise<WsShipper> {
    const spool = await Spool.open({ dir: join(dir, 'spool'), seqFile: join(dir, 'seq.json'), capacity: 1 << 20, plan: { rescueId: RESCUE_ID, sourceSize: SIZE, sectorSize: 512, chunks: CHUNKS }, keys: deriveRescueKeys('wrong', RESCUE_ID) });
    const s = new WsShipper({ url, secret: 'wrong', rescueId: RESCUE_ID, fingerprint: FINGERPRINT, chunkSize: 64 * 1024, sectorSize: 512, spool, log: (l) => logs.push(l) });
    s.start();
    return s;
  }

  beforeEach(async () => {
    sessions = 0;
    dir = await mkdtemp(join(tmpdir(), 'ddferry-shipper-'));
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
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
      expect(shipper.fatal?.message).to.include(`the assembler refused: ${code}`);
      await new Promise((r) => setTimeout(r, 600)); // a retry would come after 250 ms
      expect(sessions, 'sessions opened').to.equal(1);
      expect(logs.filter((l) => l.includes('retrying'))).to.deep.equal([]);
    });
  }

  it('keeps retrying a refusal that may pass (the assembler busy)', async () => {
    const logs: string[] = [];
    shipper = await start(await refusing('ERR_SERVER_BUSY'), logs);
    expect(await shipper.firstWelcome(1500)).to.equal(null);
    expect(shipper.fatal).to.equal(null);
    expect(sessions).to.be.at.least(2);
    expect(logs.some((l) => l.includes('retrying'))).to.equal(true);
  });
});

describe('WsShipper (what the assembler says it holds)', () => {
  const SECRET = 'the shipper tests\' token';
  let dir: string;
  let wss: WebSocketServer;
  let shipper: WsShipper | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ddferry-shipper-'));
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
  });
  afterEach(async () => {
    shipper?.stop();
    shipper = undefined;
    await new Promise<void>((r) => wss.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  /** An assembler that welcomes, answers each Query with `answer(seqs)`, and never acknowledges a piece. */
  function assembler(answer: (seqs: readonly number[]) => { seq: number; headerHash: string }[], queried: number[][]): string {
    wss.on('connection', (ws) => {
      const nonce = makeNonce();
      let clientNonce: Uint8Array = new Uint8Array(0);
      ws.on('message', (data: Buffer) => {
        const m: Message = decodeEnvelope(data, DEFAULT_LIMITS);
        const send = (x: Message): void => ws.send(encodeEnvelope(x, DEFAULT_LIMITS));
        if (m.type === 'hello') {
          clientNonce = m.clientNonce;
          send({ type: 'challenge', serverNonce: nonce, protocolVersion: PROTOCOL_VERSION });
        } else if (m.type === 'auth') {
          send({ type: 'welcome', serverProof: serverProof(SECRET, nonce, clientNonce, RESCUE_ID), finished: [], imageSize: SIZE, maxMergedSeq: 9 });
        } else if (m.type === 'query') {
          queried.push([...m.seqs]);
          send({ type: 'answer', merged: answer(m.seqs), more: false });
        }
      });
    });
    return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  }

  async function spoolOfOne(): Promise<Spool> {
    const spool = await Spool.open({
      dir: join(dir, 'spool'), seqFile: join(dir, 'seq.json'), capacity: 1 << 20,
      plan: { rescueId: RESCUE_ID, sourceSize: SIZE, sectorSize: 512, chunks: CHUNKS }, keys: deriveRescueKeys(SECRET, RESCUE_ID),
    });
    const data = new Uint8Array(4096).fill(3);
    await spool.put({ rescueId: RESCUE_ID, seq: spool.nextSeq(), chunk: 0, extents: [makeExtent(0, data)], delta: [{ pos: 0, size: 4096, status: '+' }], data });
    return spool;
  }

  it('keeps a spooled piece the assembler names under another header hash (R5), and drops it under its own', async () => {
    const spool = await spoolOfOne();
    const own = (await spool.headerHash(1))!;
    let hash = 'ff'.repeat(16);
    const queried: number[][] = [];
    const logs: string[] = [];
    shipper = new WsShipper({
      url: assembler(() => [{ seq: 1, headerHash: hash }], queried), secret: SECRET, rescueId: RESCUE_ID, fingerprint: FINGERPRINT, chunkSize: 64 * 1024, sectorSize: 512,
      spool, log: (l) => logs.push(l),
    });
    shipper.start();
    expect(await shipper.firstWelcome(10_000)).to.not.equal(null);
    expect(queried).to.deep.equal([[1]]);
    expect(spool.has(1), 'a claim under another hash frees nothing').to.equal(true);
    expect(logs.join('')).to.contain('holds another piece under seq 1');
    expect(spool.nextSeq(), 'numbered above the largest seq the image merged').to.equal(10);
    shipper.stop();
    hash = own;
    shipper = new WsShipper({
      url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, secret: SECRET, rescueId: RESCUE_ID, fingerprint: FINGERPRINT, chunkSize: 64 * 1024, sectorSize: 512,
      spool, log: () => undefined,
    });
    shipper.start();
    expect(await shipper.firstWelcome(10_000)).to.not.equal(null);
    expect(spool.has(1)).to.equal(false);
  });
});
