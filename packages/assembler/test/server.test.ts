import { readFile, stat } from 'node:fs/promises';

import { processedState } from '@ddferry/mapfile';
import type { Limits, Piece } from '@ddferry/protocol';
import { deriveRescueKeys, encodeEnvelope, encodePieceFrames, makeExtent, resolveLimits, sealPiece } from '@ddferry/protocol';
import { expect } from 'chai';

import { OVERSIZE_GRACE_BYTES, serve } from '../src/server.js';
import type { AssemblerServer, ServeOptions } from '../src/server.js';

import { Client } from './client.js';
import type { Logged } from './helpers.js';
import {
  CHUNK_SIZE, hello, hold, logger, makePiece, OTHER_FINGERPRINT, OTHER_RESCUE_ID, PLUS, readImage, readStatuses, RESCUE_ID,
  seal, SOURCE_SIZE, tempDir,
} from './helpers.js';

const LIMITS: Limits = resolveLimits({ maxFrameBytes: 16 * 1024, maxMessageBytes: 32 * 1024, maxHeaderBytes: 16 * 1024 });

/** Chunk 1: 1536 bytes rescued, a bad sector, then 1000 bytes rescued. */
function piece1(): Piece {
  return makePiece(1, 1, [
    { pos: CHUNK_SIZE, size: 1536, status: '+' },
    { pos: CHUNK_SIZE + 1536, size: 512, status: '-' },
    { pos: CHUNK_SIZE + 2048, size: 1000, status: '+' },
  ]);
}

describe('serve', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: AssemblerServer | undefined;
  let logged: Logged;
  let img: string;
  const clients: Client[] = [];

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    img = `${dir}/disk.img`;
    logged = logger();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await server?.close();
    server = undefined;
    await cleanup();
  });

  async function start(options: Partial<ServeOptions> = {}): Promise<AssemblerServer> {
    server = await serve({ images: [img], listen: { host: '127.0.0.1', port: 0 }, secret: 'open-sesame-0123456789abcdef', limits: LIMITS, log: logged.log, ...options });
    return server;
  }

  async function connect(): Promise<Client> {
    const c = await Client.connect(server!.url, LIMITS);
    clients.push(c);
    return c;
  }

  describe('handshake', () => {
    it('listens on the port given (0: a free one) and names it in url', async () => {
      const s = await start();
      expect(s.port).to.be.greaterThan(0);
      expect(s.url).to.equal(`ws://127.0.0.1:${s.port}`);
    });

    it('welcomes a reader with the right token: proof, nothing finished, no seq merged, the image size; binds the image', async () => {
      await start();
      const c = await connect();
      const welcome = await c.handshake('open-sesame-0123456789abcdef');
      expect(welcome).to.deep.include({ type: 'welcome', finished: [], maxMergedSeq: 0, imageSize: SOURCE_SIZE });
      const binding = JSON.parse(await readFile(`${img}.ddferry.json`, 'utf8'));
      expect(binding.rescueId).to.equal(RESCUE_ID);
      expect(logged.lines.some((l) => l.includes(`bound to rescue ${RESCUE_ID}`))).to.equal(true);
    });

    it('refuses a wrong token with ERR_AUTH_FAILED, logs it, closes, and binds nothing', async () => {
      await start();
      const c = await connect();
      const answer = await c.handshake('wrong');
      expect(answer).to.deep.include({ type: 'error', code: 'ERR_AUTH_FAILED' });
      expect((await c.closed).code).to.equal(1008);
      expect(logged.lines.some((l) => l.startsWith('warn') && l.includes('ERR_AUTH_FAILED'))).to.equal(true);
      expect(server!.images[0]!.binding).to.equal(undefined);
    });

    it('uses the empty token when none is given, and warns that anyone can send data', async () => {
      await start({ secret: undefined });
      expect(logged.lines.some((l) => l.startsWith('warn') && l.includes('anyone'))).to.equal(true);
      const c = await connect();
      expect((await c.handshake(''))?.type).to.equal('welcome');
    });

    it('refuses another protocol version with ERR_PROTO_VERSION_MISMATCH', async () => {
      await start();
      const c = await connect();
      c.send({ ...hello(), protocolVersion: 1 });
      expect(await c.expect('error')).to.deep.include({ code: 'ERR_PROTO_VERSION_MISMATCH' });
      expect((await c.closed).code).to.equal(1008);
    });

    it('refuses a piece before the handshake with ERR_PROTO_OUT_OF_ORDER', async () => {
      await start();
      const c = await connect();
      c.sendPiece(piece1());
      expect(await c.expect('error')).to.deep.include({ code: 'ERR_PROTO_OUT_OF_ORDER' });
    });

    it('refuses a rescue that has no image with ERR_PROTO_WRONG_RESCUE, showing both rescues', async () => {
      await start();
      const first = await connect();
      expect((await first.handshake('open-sesame-0123456789abcdef'))?.type).to.equal('welcome');
      const other = await connect();
      const answer = await other.handshake('open-sesame-0123456789abcdef', hello(OTHER_RESCUE_ID, OTHER_FINGERPRINT));
      expect(answer).to.deep.include({ type: 'error', code: 'ERR_PROTO_WRONG_RESCUE' });
      if (answer?.type !== 'error') throw new Error('unreachable');
      expect(answer.message).to.contain(OTHER_RESCUE_ID).and.contain(RESCUE_ID);
      expect((await other.closed).code).to.equal(1008);
    });

    it('refuses the rescue on another device with ERR_PROTO_WRONG_DEVICE', async () => {
      await start();
      const first = await connect();
      await first.handshake('open-sesame-0123456789abcdef');
      const other = await connect();
      const answer = await other.handshake('open-sesame-0123456789abcdef', hello(RESCUE_ID, OTHER_FINGERPRINT));
      expect(answer).to.deep.include({ type: 'error', code: 'ERR_PROTO_WRONG_DEVICE' });
    });

    it('gives each rescue its own image, and the same rescue the same image when it reconnects', async () => {
      const img2 = `${dir}/other.img`;
      await start({ images: [img, img2] });
      const a = await connect();
      await a.handshake('open-sesame-0123456789abcdef');
      const b = await connect();
      expect((await b.handshake('open-sesame-0123456789abcdef', hello(OTHER_RESCUE_ID, OTHER_FINGERPRINT)))?.type).to.equal('welcome');
      expect(server!.images.map((i) => i.binding?.rescueId)).to.deep.equal([RESCUE_ID, OTHER_RESCUE_ID]);
      const p = piece1();
      const sealed = b.sendPiece({ ...p, rescueId: OTHER_RESCUE_ID });
      expect(await b.expect('receipt')).to.deep.include({ merged: [{ seq: 1, headerHash: sealed.headerHash }] });
      const again = await connect();
      const welcome = await again.handshake('open-sesame-0123456789abcdef', hello(OTHER_RESCUE_ID, OTHER_FINGERPRINT));
      expect(welcome).to.deep.include({ type: 'welcome', maxMergedSeq: 1 });
      expect((await readImage(img2)).subarray(CHUNK_SIZE, CHUNK_SIZE + 1536)).to.deep.equal(p.data.subarray(0, 1536));
      expect((await stat(img)).size).to.equal(0);
    });
  });

  describe('pieces', () => {
    it('merges a valid piece: receipt, image bytes, IMAGE.map + (and - where the piece says)', async () => {
      await start();
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      const p = piece1();
      const sealed = c.sendPiece(p);
      expect(await c.expect('receipt')).to.deep.equal({ type: 'receipt', merged: [{ seq: 1, headerHash: sealed.headerHash }], rejected: [] });
      const bytes = await readImage(img);
      const codes = await readStatuses(`${img}.map`);
      let at = 0;
      for (const e of p.extents) {
        expect(bytes.subarray(e.pos, e.pos + e.size)).to.deep.equal(p.data.subarray(at, at + e.size));
        expect([...new Set(codes.subarray(e.pos, e.pos + e.size))]).to.deep.equal([PLUS]);
        at += e.size;
      }
      expect(codes[CHUNK_SIZE + 1536]).to.equal(processedState('-'));
      expect(codes[0]).to.equal(processedState('?'));
    });

    it('acknowledges the same sealed piece sent twice (A2), and answers a Query with its seq and header hash', async () => {
      await start();
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      const sealed = c.sendPiece(piece1());
      const ref = { seq: 1, headerHash: sealed.headerHash };
      expect((await c.expect('receipt')).merged).to.deep.equal([ref]);
      c.sendPiece(sealed);
      expect((await c.expect('receipt')).merged).to.deep.equal([ref]);
      c.close();
      const d = await connect();
      const welcome = await d.handshake('open-sesame-0123456789abcdef');
      expect(welcome).to.deep.include({ maxMergedSeq: 1 });
      if (welcome?.type !== 'welcome') throw new Error('unreachable');
      expect(welcome.finished).to.deep.equal(piece1().extents.map((e) => ({ pos: e.pos, size: e.size })));
      d.send({ type: 'query', seqs: [3, 1, 2, 1] });
      expect(await d.expect('answer')).to.deep.equal({ type: 'answer', merged: [ref], more: false });
      d.send({ type: 'query', seqs: [] });
      expect(await d.expect('answer')).to.deep.equal({ type: 'answer', merged: [], more: false });
    });

    it('refuses loudly another piece under a merged seq (ERR_PIECE_SEQ_CONFLICT), writes nothing, keeps the connection', async () => {
      await start();
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      const genuine = c.sendPiece(makePiece(1, 0, [{ pos: 0, size: 512, status: '+' }]));
      await c.expect('receipt');
      const forged = c.sendPiece(makePiece(1, 0, [{ pos: 0, size: 512, status: '?' }]));
      const receipt = await c.expect('receipt');
      expect(receipt.merged).to.deep.equal([]);
      expect(receipt.rejected).to.have.length(1);
      expect(receipt.rejected[0]).to.deep.include({ seq: 1, code: 'ERR_PIECE_SEQ_CONFLICT', headerHash: forged.headerHash });
      expect(receipt.rejected[0]!.reason).to.contain(genuine.headerHash);
      expect(logged.lines.some((l) => l.startsWith('error') && l.includes('ERR_PIECE_SEQ_CONFLICT') && l.includes('piece 1'))).to.equal(true);
      expect(server!.images[0]!.mergedHash(1)).to.equal(genuine.headerHash);
      expect((await readStatuses(`${img}.map`))[0]).to.equal(PLUS);
      c.sendPiece(genuine);
      expect((await c.expect('receipt')).merged).to.deep.equal([{ seq: 1, headerHash: genuine.headerHash }]);
    });

    it('rejects a piece sealed with another token (ERR_SEAL_AUTH_FAILED), drops its frames, writes nothing, and goes on', async () => {
      await start();
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      const wrong = c.sendPiece(piece1(), 'not-open-sesame-0123456789abcdef');
      const receipt = await c.expect('receipt');
      expect(receipt.merged).to.deep.equal([]);
      expect(receipt.rejected).to.have.length(1);
      expect(receipt.rejected[0]).to.deep.include({ seq: 1, code: 'ERR_SEAL_AUTH_FAILED', headerHash: wrong.headerHash });
      expect((await stat(img)).size).to.equal(0);
      expect([...new Set(await readStatuses(`${img}.map`))]).to.deep.equal([0]);
      const good = c.sendPiece(piece1());
      expect((await c.expect('receipt')).merged).to.deep.equal([{ seq: 1, headerHash: good.headerHash }]);
    });

    it('rejects a flipped bit in a sealed frame (ERR_SEAL_FRAME_AUTH_FAILED), and data not matching its xxh64 sealed by a token holder (ERR_PIECE_CHECKSUM_MISMATCH)', async () => {
      await start();
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      const sealed = seal(piece1(), 'open-sesame-0123456789abcdef');
      const frame = sealed.frames[0]!;
      const ciphertext = Buffer.from(frame.ciphertext);
      ciphertext[100]! ^= 0x04;
      c.sendPiece({ ...sealed, frames: [{ ...frame, ciphertext }] });
      expect((await c.expect('receipt')).rejected[0]).to.deep.include({ seq: 1, code: 'ERR_SEAL_FRAME_AUTH_FAILED', headerHash: sealed.headerHash });
      const good = piece1();
      const data = Buffer.from(good.data);
      data[100]! ^= 0x04;
      c.sendPiece({ ...good, data });
      const receipt = await c.expect('receipt');
      expect(receipt.rejected[0]).to.deep.include({ seq: 1, code: 'ERR_PIECE_CHECKSUM_MISMATCH' });
      expect((await stat(img)).size).to.equal(0);
      expect(logged.lines.some((l) => l.startsWith('warn') && l.includes('ERR_PIECE_CHECKSUM_MISMATCH'))).to.equal(true);
      c.sendPiece(sealed);
      expect((await c.expect('receipt')).merged).to.deep.equal([{ seq: 1, headerHash: sealed.headerHash }]);
    });

    it('refuses a piece of another rescue sealed with the same token (ERR_PIECE_WRONG_RESCUE)', async () => {
      await start();
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      const elsewhere = sealPiece({ ...piece1(), rescueId: OTHER_RESCUE_ID }, deriveRescueKeys('open-sesame-0123456789abcdef', OTHER_RESCUE_ID));
      c.sendPiece(elsewhere);
      expect((await c.expect('receipt')).rejected[0]).to.deep.include({ seq: 1, code: 'ERR_PIECE_WRONG_RESCUE' });
      expect((await stat(img)).size).to.equal(0);
    });

    for (const seq of [2 ** 40 + 1, 2 ** 53 - 1]) {
      it(`refuses a sealed header claiming seq ${seq} (ERR_PIECE_BAD_SEQ) and changes nothing`, async () => {
        await start();
        const c = await connect();
        await c.handshake('open-sesame-0123456789abcdef');
        const sealed = seal(piece1(), 'open-sesame-0123456789abcdef');
        const header = Buffer.from(sealed.header);
        header.writeBigUInt64BE(BigInt(seq), 21);
        for (const f of encodePieceFrames({ ...sealed, header }, LIMITS)) c.sendRaw(f);
        expect(await c.expect('error')).to.deep.include({ code: 'ERR_PIECE_BAD_SEQ' });
        const image = server!.images[0]!;
        expect(image.maxMergedSeq).to.equal(0);
        expect(image.mergedPieces()).to.deep.equal([]);
        expect((await stat(img)).size).to.equal(0);
        expect([...new Set(await readStatuses(`${img}.map`))]).to.deep.equal([0]);
        await stat(`${img}.ddferry.pieces`).then(() => expect.fail('a record of pieces was written'), (err: { code: string }) => expect(err.code).to.equal('ENOENT'));
      });
    }

    it('rejects a piece beyond the source (ERR_PIECE_OUTSIDE_SOURCE) and writes nothing', async () => {
      await start();
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      const data = new Uint8Array(512).fill(7);
      const beyond: Piece = {
        rescueId: RESCUE_ID, seq: 9, chunk: 3, extents: [makeExtent(SOURCE_SIZE - 12, data)],
        delta: [{ pos: SOURCE_SIZE - 12, size: 512, status: '+' }], data,
      };
      c.sendPiece(beyond);
      const receipt = await c.expect('receipt');
      expect(receipt.rejected[0]).to.deep.include({ seq: 9, code: 'ERR_PIECE_OUTSIDE_SOURCE' });
      expect((await stat(img)).size).to.equal(0);
    });

    it('rejects a piece outside its chunk (ERR_PIECE_EXTENT_OUTSIDE_CHUNK)', async () => {
      await start();
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      const p = makePiece(4, 0, [{ pos: CHUNK_SIZE - 512, size: 1024, status: '+' }]);
      c.sendPiece(p);
      expect((await c.expect('receipt')).rejected[0]).to.deep.include({ seq: 4, code: 'ERR_PIECE_EXTENT_OUTSIDE_CHUNK' });
    });

    it('rejects a piece whose frames carry more data than its header, dropping its remaining frames', async () => {
      await start();
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      const sealed = seal(makePiece(5, 0, [{ pos: 0, size: 1024, status: '+' }]), 'open-sesame-0123456789abcdef');
      const [header, frame] = [...encodePieceFrames(sealed, LIMITS)];
      c.sendRaw(header!);
      c.sendRaw(frame!);
      c.sendRaw(encodeEnvelope({ type: 'pieceData', seq: 5, index: 1, sealedFrame: new Uint8Array(2048) }, LIMITS));
      c.sendRaw(encodeEnvelope({ type: 'pieceData', seq: 5, index: 2, sealedFrame: new Uint8Array(10) }, LIMITS));
      c.sendRaw(encodeEnvelope({ type: 'pieceEnd', seq: 5 }, LIMITS));
      expect((await c.expect('receipt')).rejected[0]).to.deep.include({ seq: 5, code: 'ERR_PIECE_SIZE_MISMATCH', headerHash: sealed.headerHash });
      c.sendPiece(sealed);
      expect((await c.expect('receipt')).merged).to.deep.equal([{ seq: 5, headerHash: sealed.headerHash }]);
    });
  });

  describe('bad messages', () => {
    it('answers a message just over maxMessageBytes with ERR_PROTO_MESSAGE_TOO_LARGE and closes (1009)', async () => {
      await start();
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      c.sendRaw(new Uint8Array(LIMITS.maxMessageBytes + 1));
      expect(await c.expect('error')).to.deep.include({ code: 'ERR_PROTO_MESSAGE_TOO_LARGE' });
      expect((await c.closed).code).to.equal(1009);
    });

    it('accepts a message of exactly maxMessageBytes as far as size goes (then refuses it as malformed)', async () => {
      await start();
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      c.sendRaw(new Uint8Array(LIMITS.maxMessageBytes).fill(0xff));
      expect(await c.expect('error')).to.deep.include({ code: 'ERR_PROTO_MALFORMED' });
    });

    it('cuts a message far over the limit at the websocket layer (close 1009, logged)', async () => {
      await start();
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      c.sendRaw(new Uint8Array(LIMITS.maxMessageBytes + OVERSIZE_GRACE_BYTES + 1));
      expect((await c.closed).code).to.equal(1009);
      await new Promise((r) => setTimeout(r, 50));
      expect(logged.lines.some((l) => l.includes('ERR_PROTO_MESSAGE_TOO_LARGE'))).to.equal(true);
    });

    it('refuses a text message with ERR_PROTO_MALFORMED', async () => {
      await start();
      const c = await connect();
      c.ws.send('hello');
      expect(await c.expect('error')).to.deep.include({ code: 'ERR_PROTO_MALFORMED' });
      expect((await c.closed).code).to.equal(1008);
    });

    it('closes a connection that does not finish the handshake in time', async () => {
      await start({ handshakeTimeoutMs: 100 });
      const c = await connect();
      expect(await c.expect('error')).to.deep.include({ code: 'ERR_HANDSHAKE_TIMEOUT' });
    });

    it('refuses authenticated readers over maxConnections with ERR_SERVER_BUSY (1013)', async () => {
      await start({ maxConnections: 1 });
      expect((await (await connect()).handshake('open-sesame-0123456789abcdef'))?.type).to.equal('welcome');
      const c = await connect();
      expect(await c.handshake('open-sesame-0123456789abcdef')).to.deep.include({ type: 'error', code: 'ERR_SERVER_BUSY' });
      expect((await c.closed).code).to.equal(1013);
    });
  });

  describe('#close', () => {
    it('finishes the merges received, sends their receipt, then closes with 1001', async () => {
      await start();
      const image = server!.images[0]!;
      const c = await connect();
      await c.handshake('open-sesame-0123456789abcdef');
      const { release, held } = hold(image);
      const sealed = c.sendPiece(piece1());
      while (server!.pending().pieces === 0) await new Promise((r) => setTimeout(r, 5));
      const closing = server!.close();
      server = undefined;
      await new Promise((r) => setTimeout(r, 50));
      expect(image.mergedHash(1)).to.equal(undefined);
      release();
      await held;
      await closing;
      expect(await c.expect('receipt')).to.deep.include({ merged: [{ seq: 1, headerHash: sealed.headerHash }] });
      expect((await c.closed).code).to.equal(1001);
      expect((await stat(`${img}.ddferry.pieces`)).size).to.equal(64);
    });
  });
});

