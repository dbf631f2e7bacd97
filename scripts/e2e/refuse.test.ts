/**
 * A scripted websocket client against a real `ddferry-assembler serve` process: what the
 * assembler must refuse (wrong token, another rescue, oversize and malformed messages,
 * pieces outside the plan, with bad checksums, with a damaged seal, or under a merged
 * seq with other content) and what it must not do with a valid piece (overwrite rescued
 * bytes, move statuses back). The client holds the token, so it seals what it sends
 * (protocol version 2), as a reader would, or as a token holder forging pieces could.
 * Afterwards a normal reader run on the same image still succeeds.
 */
import { createCipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  type Fingerprint, type Message, type Piece, type RescueKeys, type SealedPiece, authHmac, decodeEnvelope, encodeEnvelope, encodePieceFrames,
  headerHashOf, makeExtent, makeNonce, makeRescueId, openSealedPiece, PROTO_TEXT, PROTOCOL_VERSION, sealPiece, TAG_BYTES, verifyServerProof,
} from '@ddferry/protocol';
import { expect } from 'chai';
import protobuf from 'protobufjs';
import WebSocket from 'ws';

import {
  type Assembler, type Fault, type Reader, type Scenario, awaitReader, checkMapfile, describeFaults, finalChecks, jobSize, keysOf, killAll,
  makeScenario, planOf, secretOf, startAssembler, startReader, waitFor,
} from './harness.js';

const MiB = 1 << 20;

/**
 * Seal a piece as `sealPiece` does (docs/seal.md of @ddferry/protocol), but without its
 * shape check: what a token holder forging pieces can send. One frame.
 */
function sealForged(piece: Piece, keys: RescueKeys): SealedPiece {
  const body = protobuf.parse(PROTO_TEXT).root.lookupType('ddferry.v2.SealedHeaderBody');
  const dataSize = piece.data.length;
  const plain = body.encode(body.fromObject({
    chunk: piece.chunk, extents: piece.extents.map((e) => ({ pos: e.pos, size: e.size, xxh64: e.xxh64.toString() })),
    delta: piece.delta.map((d) => ({ pos: d.pos, size: d.size, status: d.status })), dataSize, frameSize: Math.max(dataSize, 1), frameCount: dataSize > 0 ? 1 : 0,
  })).finish();
  const salt = randomBytes(16);
  const prefix = Buffer.alloc(49);
  prefix.write('DDSP', 0, 'latin1');
  prefix[4] = 1;
  Buffer.from(piece.rescueId.replace(/-/g, ''), 'hex').copy(prefix, 5);
  prefix.writeBigUInt64BE(BigInt(piece.seq), 21);
  salt.copy(prefix, 29);
  prefix.writeUInt32BE(plain.length, 45);
  const key = Buffer.from(hkdfSync('sha256', keys.sealKey, salt, 'piece v1', 32));
  const nonce = (domain: string, i: number): Buffer => {
    const n = Buffer.alloc(12);
    n.write(domain, 0, 'latin1');
    n.writeBigUInt64BE(BigInt(i), 4);
    return n;
  };
  const h = createCipheriv('aes-256-gcm', key, nonce('hdr1', 0), { authTagLength: TAG_BYTES });
  h.setAAD(prefix);
  const sealedBody = Buffer.concat([h.update(plain), h.final()]);
  const header = Buffer.concat([prefix, sealedBody, h.getAuthTag()]);
  const frames = [];
  if (dataSize > 0) {
    const c = createCipheriv('aes-256-gcm', key, nonce('frm1', 0), { authTagLength: TAG_BYTES });
    const aad = Buffer.alloc(13);
    aad.write('frm1', 0, 'latin1');
    aad[12] = 1;
    c.setAAD(aad);
    frames.push({ ciphertext: Buffer.concat([c.update(piece.data), c.final()]), tag: c.getAuthTag() });
  }
  return { rescueId: piece.rescueId, seq: piece.seq, header, headerHash: headerHashOf(header), frames, dataSize };
}

interface Job {
  readonly rescueId: string;
  readonly fingerprint: Fingerprint;
  readonly chunkSize: number;
  readonly sectorSize: number;
  readonly sourceSize: number;
}

/** One websocket connection, its decoded messages and its close. */
class Client {
  readonly ws: WebSocket;
  readonly inbox: Message[] = [];
  readonly problems: string[] = [];
  closeInfo: { code: number; reason: string } | undefined;
  #wake: (() => void) | undefined;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    const wake = (): void => {
      const w = this.#wake;
      this.#wake = undefined;
      w?.();
    };
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      try {
        if (!isBinary) throw new Error('a text message');
        this.inbox.push(decodeEnvelope(data));
      } catch (err) {
        this.problems.push(`undecodable message from the assembler: ${(err as Error).message}`);
      }
      wake();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closeInfo = { code, reason: reason.toString() };
      wake();
    });
    ws.on('error', (err) => {
      this.problems.push(err.message);
      wake();
    });
  }

  static async connect(url: string): Promise<Client> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const c = new Client(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return c;
  }

  /** The next message, or undefined once the connection closed (or after `ms`). */
  async next(ms = 15_000): Promise<Message | undefined> {
    const end = Date.now() + ms;
    for (;;) {
      const m = this.inbox.shift();
      if (m) return m;
      if (this.closeInfo || Date.now() > end) return undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 200);
      });
    }
  }

  /** The next message of this type (others are skipped). */
  async nextOf<T extends Message['type']>(type: T, ms = 15_000): Promise<Extract<Message, { type: T }> | Extract<Message, { type: 'error' }> | undefined> {
    for (;;) {
      const m = await this.next(ms);
      if (!m || m.type === type || m.type === 'error') return m as Extract<Message, { type: T }> | Extract<Message, { type: 'error' }> | undefined;
    }
  }

  /** Wait for the close; returns its code. */
  async closed(ms = 15_000): Promise<{ code: number; reason: string } | undefined> {
    await waitFor(() => this.closeInfo !== undefined, ms);
    return this.closeInfo;
  }

  send(msg: Message): void {
    this.ws.send(encodeEnvelope(msg), { binary: true });
  }

  sendRaw(bytes: Uint8Array, binary = true): void {
    this.ws.send(bytes, { binary });
  }

  /** A sealed piece as a reader sends it: PieceHeader, PieceData per frame, PieceEnd. */
  sendPiece(piece: SealedPiece): void {
    for (const frame of encodePieceFrames(piece)) this.sendRaw(frame);
  }

  /** Hello, Challenge, Auth with `secret` (default: the scenario's token); returns the Welcome or the Error. */
  async handshake(job: Job, o: { secret?: string; rescueId?: string; fingerprint?: Fingerprint } = {}): Promise<Message | undefined> {
    const clientNonce = makeNonce();
    const rescueId = o.rescueId ?? job.rescueId;
    this.send({
      type: 'hello', protocolVersion: PROTOCOL_VERSION, rescueId, fingerprint: o.fingerprint ?? job.fingerprint, clientNonce,
      readerName: 'e2e-script', chunkSize: job.chunkSize, sectorSize: job.sectorSize,
    });
    const challenge = await this.next();
    if (challenge?.type !== 'challenge') return challenge;
    this.send({ type: 'auth', hmac: authHmac(o.secret ?? secret, challenge.serverNonce, clientNonce, rescueId) });
    const welcome = await this.next();
    if (welcome?.type === 'welcome') {
      expect(verifyServerProof(o.secret ?? secret, challenge.serverNonce, clientNonce, rescueId, welcome.serverProof), 'the assembler proves it knows the token').to.equal(true);
    }
    return welcome;
  }

  close(): void {
    this.ws.terminate();
  }
}

/** The shared secret of the scenario (set in `before`). */
let secret = '';

function sha(file: string): string {
  return existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : 'absent';
}

describe('the assembler refuses what it must (scripted client against ddferry-assembler serve)', function () {
  this.timeout(120_000);
  let s: Scenario;
  let asm: Assembler;
  let job: Job;
  let source: Buffer;
  let keys: RescueKeys;
  const clients: Client[] = [];
  const open = async (): Promise<Client> => {
    const c = await Client.connect(asm.url);
    clients.push(c);
    return c;
  };
  /** A piece of this job over [pos, pos+data.length), all `+`. */
  const piece = (seq: number, pos: number, data: Uint8Array, chunk = Math.floor(pos / job.chunkSize)): Piece => ({
    rescueId: job.rescueId, seq, chunk, extents: [makeExtent(pos, data)], delta: [{ pos, size: data.length, status: '+' }], data,
  }) as Piece;
  const seal = (p: Piece): SealedPiece => sealPiece(p, keys);
  const imageState = (): string => `${sha(s.image)} ${sha(`${s.image}.map`)} ${sha(`${s.image}.ddferry.json`)} ${sha(`${s.image}.ddferry.pieces`)}`;
  const logged = async (text: string): Promise<boolean> => waitFor(() => asm.stderr().includes(text), 5000);

  before(async function () {
    s = makeScenario({ size: 16 * MiB + 3 * 512, bad: [[3 * MiB, 8192], [8 * MiB - 2048, 4096]], chunkSize: '4MiB', seed: 3 });
    job = JSON.parse(readFileSync(join(s.job, 'job.json'), 'utf8')) as Job;
    source = readFileSync(s.source);
    secret = secretOf(s);
    keys = keysOf(s);
    asm = await startAssembler(s);
  });

  afterEach(function () {
    for (const c of clients.splice(0)) c.close();
  });

  after(async function () {
    await killAll();
    s?.remove();
  });

  it('wrong token: Error ERR_AUTH_FAILED, connection closed, logged, nothing bound or written', async function () {
    const c = await open();
    const answer = await c.handshake(job, { secret: 'not the token' });
    expect(answer?.type, JSON.stringify(answer)).to.equal('error');
    expect(answer?.type === 'error' && answer.code).to.equal('ERR_AUTH_FAILED');
    expect((await c.closed())?.code, 'close code').to.equal(1008);
    expect(await logged('ERR_AUTH_FAILED'), `assembler stderr: ${asm.stderr()}`).to.equal(true);
    expect(existsSync(`${s.image}.ddferry.json`), 'IMAGE.ddferry.json after a refused reader').to.equal(false);
    expect(existsSync(`${s.image}.map`), 'IMAGE.map after a refused reader').to.equal(false);
  });

  it('the right token binds the image; then another rescue id is refused naming both rescues', async function () {
    const c1 = await open();
    const w = await c1.handshake(job);
    expect(w?.type, JSON.stringify(w)).to.equal('welcome');
    expect(readFileSync(`${s.image}.ddferry.json`, 'utf8')).to.include(job.rescueId);
    c1.close();
    const other = makeRescueId();
    const c2 = await open();
    const e = await c2.handshake(job, { rescueId: other });
    expect(e?.type, JSON.stringify(e)).to.equal('error');
    if (e?.type !== 'error') return;
    expect(e.code).to.equal('ERR_PROTO_WRONG_RESCUE');
    expect(e.message, 'the Error names the reader\'s rescue').to.include(other);
    expect(e.message, 'the Error names the image\'s rescue').to.include(job.rescueId);
    expect(await c2.closed(), 'closed').to.not.equal(undefined);
    expect(await logged(other), `assembler stderr names the refused rescue: ${asm.stderr()}`).to.equal(true);
  });

  it('the same rescue id from another device is refused naming both fingerprints', async function () {
    const c = await open();
    const fingerprint: Fingerprint = { ...job.fingerprint, size: job.fingerprint.size + 4096, model: 'OTHER-DISK', serial: 'X123' };
    const e = await c.handshake(job, { fingerprint });
    expect(e?.type, JSON.stringify(e)).to.equal('error');
    if (e?.type !== 'error') return;
    expect(e.code).to.match(/^ERR_PROTO_WRONG_(DEVICE|RESCUE)$/);
    expect(e.message).to.include(String(job.fingerprint.size));
    expect(e.message).to.include(String(fingerprint.size));
    expect(await c.closed(), 'closed').to.not.equal(undefined);
  });

  it('oversize messages (> 8 MiB) close the connection with an error, before and after the handshake', async function () {
    const before = imageState();
    const c1 = await open();
    expect((await c1.handshake(job))?.type).to.equal('welcome');
    c1.sendRaw(Buffer.alloc(8 * MiB + 1024, 7));
    const e1 = await c1.nextOf('receipt');
    expect(e1?.type === 'error' && e1.code, JSON.stringify(e1)).to.equal('ERR_PROTO_MESSAGE_TOO_LARGE');
    expect((await c1.closed())?.code, 'close code').to.equal(1009);
    const c2 = await open();
    c2.sendRaw(Buffer.alloc(12 * MiB, 1));
    // the server closes with 1009 as soon as the length is read; a client still writing the rest of 12 MiB may meet the
    // TCP reset first and see 1006 (abnormal closure): either way the connection is closed and the log names the code
    expect((await c2.closed())?.code, 'close code of a message far over the limit').to.be.oneOf([1009, 1006]);
    expect(await logged('ERR_PROTO_MESSAGE_TOO_LARGE'), asm.stderr()).to.equal(true);
    expect(imageState(), 'image files unchanged').to.equal(before);
  });

  it('garbage, truncated and text messages get a coded Error and a close', async function () {
    const before = imageState();
    const garbage = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 131 + 17) & 0xff));
    const hello = encodeEnvelope({
      type: 'hello', protocolVersion: PROTOCOL_VERSION, rescueId: job.rescueId, fingerprint: job.fingerprint, clientNonce: makeNonce(),
      readerName: 'e2e-script', chunkSize: job.chunkSize, sectorSize: job.sectorSize,
    });
    const cases: Array<[string, (c: Client) => Promise<void>]> = [
      ['garbage first message', async (c) => c.sendRaw(garbage)],
      ['truncated Hello', async (c) => c.sendRaw(hello.subarray(0, hello.length - 9))],
      ['text message', async (c) => c.sendRaw(Buffer.from('hello?'), false)],
      ['garbage after the handshake', async (c) => {
        expect((await c.handshake(job))?.type).to.equal('welcome');
        c.sendRaw(garbage);
      }],
      ['truncated pieceHeader after the handshake', async (c) => {
        expect((await c.handshake(job))?.type).to.equal('welcome');
        const header = encodePieceFrames(seal(piece(700001, MiB, source.subarray(MiB, MiB + 4096)))).next().value!;
        c.sendRaw(header.subarray(0, header.length - 5));
      }],
    ];
    for (const [what, act] of cases) {
      const c = await open();
      await act(c);
      const e = await c.nextOf('receipt');
      expect(e?.type, `${what}: ${JSON.stringify(e)}`).to.equal('error');
      expect(e?.type === 'error' && e.code, what).to.match(/^ERR_PROTO_/);
      expect(await c.closed(), `${what}: closed`).to.not.equal(undefined);
    }
    expect(imageState(), 'image files unchanged').to.equal(before);
  });

  it('the test\'s forging sealer seals as sealPiece does (a piece it seals opens and checks)', function () {
    const p = piece(1, MiB, source.subarray(MiB, MiB + 8192));
    const opened = openSealedPiece(sealForged(p, keys), { keys, plan: planOf(s) });
    expect(opened.extents).to.deep.equal(p.extents);
    expect(Buffer.from(opened.data).equals(Buffer.from(p.data))).to.equal(true);
  });

  it('pieces outside the source or their chunk, or marking + without data: rejected receipts naming their hashes, nothing written', async function () {
    const c = await open();
    expect((await c.handshake(job))?.type).to.equal('welcome');
    const before = imageState();
    const size = jobSize(s);
    const last = Math.floor((size - 1) / job.chunkSize);
    const data = Buffer.alloc(4096, 0xee);
    const bad: Array<[string, SealedPiece]> = [
      ['an extent past the end of the source', seal(piece(800001, size, data, last))],
      ['an extent across the end of the source', seal(piece(800002, size - 2048, data, last))],
      ['an extent at 2^50', seal(piece(800003, 2 ** 50, data, last))],
      ['a chunk not in the plan', seal(piece(800004, MiB, data, 999))],
      ['an extent outside its chunk', seal(piece(800005, 5 * MiB, data, 0))],
      // sealPiece refuses to seal it: a token holder can still forge it
      ['+ in the delta without data', sealForged({ ...piece(800006, MiB, data), extents: [], data: new Uint8Array(0) }, keys)],
    ];
    for (const [what, p] of bad) {
      c.sendPiece(p);
      const r = await c.nextOf('receipt');
      expect(r?.type, `${what}: ${JSON.stringify(r)}`).to.equal('receipt');
      if (r?.type !== 'receipt') return;
      expect(r.merged.map((x) => x.seq), `${what}: merged`).to.not.include(p.seq);
      expect(r.rejected.map((x) => x.seq), `${what}: rejected`).to.include(p.seq);
      const rejected = r.rejected.find((x) => x.seq === p.seq)!;
      expect(rejected.code, `${what}: ${rejected.reason}`).to.match(/^ERR_PIECE_/);
      expect(rejected.headerHash, `${what}: the refusal names the piece's header hash`).to.equal(p.headerHash);
    }
    expect(c.closeInfo, 'the connection stays open after rejected pieces').to.equal(undefined);
    expect(imageState(), 'IMAGE, IMAGE.map and the binding unchanged').to.equal(before);
    expect(await logged('rejected'), asm.stderr()).to.equal(true);
  });

  it('a flipped data byte, a flipped bit of a sealed frame or of the sealed header: rejected; the intact piece is merged; twice is harmless (A2); its seq with other content is refused (A4)', async function () {
    const c = await open();
    expect((await c.handshake(job))?.type).to.equal('welcome');
    const pos = MiB;
    const data = Buffer.from(source.subarray(pos, pos + 64 * 1024));
    const good = seal(piece(810001, pos, data));
    const before = imageState();
    const rejectedOf = (r: Message | undefined): string[] | false => r?.type === 'receipt' && r.rejected.map((x) => `${x.seq} ${x.code}`);
    // sealed with a data byte that is not what the extent's xxh64 says (a token holder's bad data)
    const flipped = Buffer.from(data);
    flipped[12345] = flipped[12345]! ^ 0x10;
    c.sendPiece(seal({ ...piece(810001, pos, data), data: flipped }));
    let r = await c.nextOf('receipt');
    expect(rejectedOf(r), JSON.stringify(r)).to.deep.equal(['810001 ERR_PIECE_CHECKSUM_MISMATCH']);
    // a bit of the sealed frame flipped on the way
    const frame = good.frames[0]!;
    const badFrame = Buffer.from(frame.ciphertext);
    badFrame[777] = badFrame[777]! ^ 0x01;
    c.sendPiece({ ...good, frames: [{ ciphertext: badFrame, tag: frame.tag }] });
    r = await c.nextOf('receipt');
    expect(rejectedOf(r), JSON.stringify(r)).to.deep.equal(['810001 ERR_SEAL_FRAME_AUTH_FAILED']);
    // a bit of the sealed header's body flipped on the way
    const badHeader = Buffer.from(good.header);
    badHeader[60] = badHeader[60]! ^ 0x04;
    c.sendPiece({ ...good, header: badHeader, headerHash: headerHashOf(badHeader) });
    r = await c.nextOf('receipt');
    expect(rejectedOf(r), JSON.stringify(r)).to.deep.equal(['810001 ERR_SEAL_AUTH_FAILED']);
    expect(imageState(), 'nothing written by rejected pieces').to.equal(before);
    c.sendPiece(good);
    r = await c.nextOf('receipt');
    expect(r?.type === 'receipt' && r.merged, JSON.stringify(r)).to.deep.equal([{ seq: good.seq, headerHash: good.headerHash }]);
    const img = readFileSync(s.image);
    expect(img.subarray(pos, pos + data.length).equals(data), 'the merged piece is in the image').to.equal(true);
    const map = checkMapfile(`${s.image}.map`, jobSize(s)).blocks;
    expect(map.some((b) => b.status === '+' && b.pos <= pos && b.pos + b.size >= pos + data.length), 'IMAGE.map marks it +').to.equal(true);
    const once = imageState();
    c.sendPiece(good);
    r = await c.nextOf('receipt');
    expect(r?.type === 'receipt' && r.merged, JSON.stringify(r)).to.deep.equal([{ seq: good.seq, headerHash: good.headerHash }]);
    expect(imageState().split(' ').slice(0, 2), 'IMAGE and IMAGE.map after the same piece twice').to.deep.equal(once.split(' ').slice(0, 2));
    // the same seq sealed again (another header hash), over other data: refused loudly, nothing written
    const other = seal(piece(810001, pos + 128 * 1024, Buffer.from(source.subarray(pos + 128 * 1024, pos + 192 * 1024))));
    c.sendPiece(other);
    r = await c.nextOf('receipt');
    expect(r?.type === 'receipt' && r.merged.map((x) => x.seq), JSON.stringify(r)).to.deep.equal([]);
    expect(rejectedOf(r), JSON.stringify(r)).to.deep.equal(['810001 ERR_PIECE_SEQ_CONFLICT']);
    expect(imageState(), 'IMAGE, IMAGE.map and the record of merged pieces after a seq conflict').to.equal(once);
  });

  it('A3: a valid piece with other data over rescued bytes does not overwrite them; statuses never go back', async function () {
    const c = await open();
    expect((await c.handshake(job))?.type).to.equal('welcome');
    const pos = MiB;
    const len = 64 * 1024;
    const other = Buffer.alloc(len, 0x5a);
    c.sendPiece(seal(piece(820001, pos, other)));
    let r = await c.nextOf('receipt');
    expect(r?.type, JSON.stringify(r)).to.equal('receipt');
    c.sendPiece(seal({ ...piece(820002, pos, other), extents: [], data: new Uint8Array(0), delta: [{ pos, size: len, status: '-' }] }));
    r = await c.nextOf('receipt');
    expect(r?.type, JSON.stringify(r)).to.equal('receipt');
    c.sendPiece(seal({ ...piece(820003, pos, other), extents: [], data: new Uint8Array(0), delta: [{ pos, size: len, status: '?' }] }));
    r = await c.nextOf('receipt');
    expect(r?.type, JSON.stringify(r)).to.equal('receipt');
    const img = readFileSync(s.image);
    expect(img.subarray(pos, pos + len).equals(source.subarray(pos, pos + len)), 'rescued bytes overwritten by a later piece').to.equal(true);
    const map = checkMapfile(`${s.image}.map`, jobSize(s)).blocks;
    expect(map.some((b) => b.status === '+' && b.pos <= pos && b.pos + b.size >= pos + len), `IMAGE.map still + over [${pos}, ${pos + len}): ${JSON.stringify(map)}`).to.equal(true);
  });

  it('afterwards a normal reader run on the same image succeeds: IMAGE.map = common.map = GNU ddrescue', async function () {
    const startR = (): Reader => startReader(s, asm.url);
    const faults: Fault[] = [];
    const { exit, reader } = await awaitReader(s, startR(), startR, faults);
    expect(exit.code, reader.stderr()).to.equal(0);
    finalChecks(s);
    expect(asm.child.exitCode, `the assembler is still up: ${asm.stderr()}`).to.equal(null);
    expect(faults, describeFaults(faults)).to.have.length(0);
  });
});
