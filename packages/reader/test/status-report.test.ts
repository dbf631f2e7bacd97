import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { BlockStatus } from '@ddferry/mapfile';
import { planChunks } from '@ddferry/mapfile';
import type { Message, StatusMessage } from '@ddferry/protocol';
import { decodeEnvelope, DEFAULT_LIMITS, deriveRescueKeys, encodeEnvelope, makeNonce, PROTOCOL_VERSION, serverProof, verifyAuthHmac } from '@ddferry/protocol';
import { expect } from 'chai';
import { WebSocketServer } from 'ws';

import { Spool } from '../src/job/spool.js';
import type { StatusFigures } from '../src/lan/status-report.js';
import { statusMessage } from '../src/lan/status-report.js';
import { SeqCounter } from '../src/job/seq-counter.js';
import { Link } from '../src/lan/link.js';

const RESCUE_ID = '0f3c2a4e-9b1d-4c6e-8a7f-1234567890ab';
const SIZE = 1 << 20;
const CHUNKS = planChunks({ sourceSize: SIZE, sectorSize: 512, chunkSize: 64 * 1024 });
const FINGERPRINT = { size: SIZE, logicalSectorSize: 512, physicalSectorSize: 512, model: 'M', serial: 'S', wwn: '', kind: 'file' as const };

function figures(over: Partial<StatusFigures> = {}, sizes: Partial<Record<BlockStatus, number>> = {}): StatusFigures {
  const all: Record<BlockStatus, number> = { '?': 600_000, '*': 1000, '/': 2000, '-': 512, '+': SIZE - 603_512, ...sizes };
  return {
    currentStatus: '?', currentMessage: 'Copying non-tried blocks... Pass 1 (forwards)', currentPass: 1, currentPos: 5 * 65536 + 7,
    readErrors: 3, cRate: 1_000_000, aRate: 900_000, map: { sizeOf: (st) => all[st] }, ...over,
  };
}

describe('statusMessage', () => {
  it('tells the engine figures, the whole-source sizes, the chunk holding pos and the spool', () => {
    const s = statusMessage(figures(), { chunks: CHUNKS, spool: { count: 4, bytes: 70_000 }, runTime: 12 });
    expect(s).to.deep.equal({
      type: 'status', phase: '?', message: 'Copying non-tried blocks... Pass 1 (forwards)', pass: 1, pos: 5 * 65536 + 7,
      finishedSize: SIZE - 603_512, nonTriedSize: 600_000, nonTrimmedSize: 1000, nonScrapedSize: 2000, badSectorSize: 512,
      readErrors: 3, currentRate: 1_000_000, averageRate: 900_000, chunk: 5, chunkCount: 16, spoolBytes: 70_000, spoolPieces: 4, runTime: 12,
      paused: '', pausedText: '', pausedSeconds: 0, readingPos: 0, readingSize: 0, readingSeconds: 0,
    });
    // what it makes always passes the codec
    expect(() => encodeEnvelope(s, DEFAULT_LIMITS)).to.not.throw();
  });

  it('tells why reading waits and the read the disk has not answered, with their seconds', () => {
    const now = 1_700_000_000_000;
    const s = statusMessage(figures(), {
      chunks: CHUNKS, spool: { count: 4, bytes: 70_000 }, runTime: 12, now,
      pause: { reason: 'link', text: 'the spool is full and the link is down', since: now - 7_400 },
      reading: { pos: 0x30000, size: 65536, since: now - 41_900 },
    });
    expect([s.paused, s.pausedText, s.pausedSeconds]).to.deep.equal(['link', 'the spool is full and the link is down', 7]);
    expect([s.readingPos, s.readingSize, s.readingSeconds]).to.deep.equal([0x30000, 65536, 41]);
    const back = decodeEnvelope(encodeEnvelope(s, DEFAULT_LIMITS), DEFAULT_LIMITS);
    expect(back).to.deep.equal(s);
  });

  it('sends 0 for unbounded or negative figures, the last chunk past the end, and clips long messages', () => {
    const s = statusMessage(figures({ currentPos: SIZE + 10, currentMessage: 'x'.repeat(5000), cRate: -1 }, { '?': Number.POSITIVE_INFINITY }),
      { chunks: CHUNKS, spool: { count: 0, bytes: 0 }, runTime: -3 });
    expect(s.nonTriedSize).to.equal(0);
    expect(s.currentRate).to.equal(0);
    expect(s.runTime).to.equal(0);
    expect(s.chunk).to.equal(15);
    expect(s.message.length).to.equal(200);
    expect(() => encodeEnvelope(s, DEFAULT_LIMITS)).to.not.throw();
  });
});

describe('Link#setStatusSource', () => {
  let dir: string;
  let wss: WebSocketServer;
  let shipper: Link | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ddferry-status-'));
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
  });
  afterEach(async () => {
    shipper?.stop();
    await new Promise<void>((r) => wss.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  it('sends a Status right after the Welcome, again while connected, and once more on stop, each from the source at that time', async () => {
    const secret = 'sesame';
    const got: StatusMessage[] = [];
    let enough: () => void = () => undefined;
    let last: () => void = () => undefined;
    let stopped = false;
    const lastCame = new Promise<void>((r) => {
      last = r;
    });
    const done = new Promise<void>((r) => {
      enough = r;
    });
    wss.on('connection', (ws) => {
      const nonce = makeNonce();
      let hello: Extract<Message, { type: 'hello' }> | undefined;
      ws.on('message', (data: Buffer) => {
        const m = decodeEnvelope(data, DEFAULT_LIMITS);
        if (m.type === 'hello') {
          hello = m;
          ws.send(encodeEnvelope({ type: 'challenge', serverNonce: nonce, protocolVersion: PROTOCOL_VERSION }, DEFAULT_LIMITS));
        } else if (m.type === 'auth') {
          expect(verifyAuthHmac(secret, nonce, hello!.clientNonce, RESCUE_ID, m.hmac)).to.equal(true);
          ws.send(encodeEnvelope({
            type: 'welcome', serverProof: serverProof(secret, nonce, hello!.clientNonce, RESCUE_ID), finished: [], maxMergedSeq: 0, imageSize: SIZE,
          }, DEFAULT_LIMITS));
        } else if (m.type === 'status') {
          got.push(m);
          if (got.length === 3) enough();
          if (stopped) last();
        }
      });
    });
    const plan = { rescueId: RESCUE_ID, sourceSize: SIZE, sectorSize: 512, chunks: CHUNKS };
    const spool = await Spool.open({ dir: join(dir, 'spool'), capacity: 1 << 20, plan, keys: deriveRescueKeys(secret, RESCUE_ID) }, await SeqCounter.open(join(dir, 'seq')));
    const port = (wss.address() as AddressInfo).port;
    shipper = new Link({
      url: `ws://127.0.0.1:${port}`, secret, rescueId: RESCUE_ID, fingerprint: FINGERPRINT, chunkSize: 65536, sectorSize: 512, spool, log: () => undefined,
    });
    let calls = 0;
    shipper.setStatusSource(() => {
      ++calls;
      return calls === 1 ? null : statusMessage(figures({ currentPos: calls * 65536 }), { chunks: CHUNKS, spool, runTime: calls });
    });
    shipper.start();
    await done;
    // the first call (right after the Welcome) returned null and sent nothing
    expect(got.map((s) => s.pos)).to.deep.equal([2 * 65536, 3 * 65536, 4 * 65536]);
    expect(got.map((s) => s.chunk)).to.deep.equal([2, 3, 4]);
    expect(got[0]!.runTime).to.equal(2);
    // stop sends the last figures before it ends the connection
    stopped = true;
    shipper.stop();
    await lastCame;
    expect(got.at(-1)!.pos).to.equal(calls * 65536);
  });
});
