/**
 * Issue 13, "doors before the lock" and "files are what they claim": the
 * attacks of findings 4 to 8 against a real server on 127.0.0.1, each ending in
 * a coded refusal with nothing merged. Figures from separate processes (RSS,
 * descriptor limits) are in scripts/e2e/adversarial-doors.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';

import type { HelloMessage, Message, RescueId } from '@ddferry/protocol';
import { authHmac, decodeEnvelope, DEFAULT_LIMITS, deriveRescueKeys, encodeEnvelope, makeExtent, makeSecretText, sealPiece } from '@ddferry/protocol';
import { expect } from 'chai';
import { WebSocket } from 'ws';

import { run } from '../src/cli.js';
import { Image } from '../src/image.js';
import { importDdrescueChunk } from '../src/import-ddrescue.js';
import { importStick } from '../src/import.js';
import { serve } from '../src/server.js';
import type { AssemblerServer, ServeOptions } from '../src/server.js';

import { Client } from './client.js';
import type { Logged } from './helpers.js';
import { FINGERPRINT, hello, logger, makePiece, SECRET, tempDir } from './helpers.js';
import { closedOf, frameHeader, handUpgrade } from './raw-socket.js';
import { fourPieces, makeRescueFolder, writeBundleFile } from './stick-fixture.js';

/** As `ddferry-assembler token` makes it; serve normalizes it, the readers use TOKEN as readTokenFile gives it. */
const TOKEN_TEXT = makeSecretText();
const TOKEN = TOKEN_TEXT.replaceAll('-', '');
const MIB = 1024 * 1024;

async function until(what: string, test: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A raw websocket that records what it gets; never throws on errors. */
function rawSocket(url: string, options: { localAddress?: string; headers?: Record<string, string> } = {}): {
  ws: WebSocket; messages: Message[]; opened: Promise<boolean>; closed: Promise<{ code: number; reason: string }>; status: Promise<number | undefined>;
} {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30, ...options });
  const messages: Message[] = [];
  ws.on('message', (d) => messages.push(decodeEnvelope(d as Buffer, { ...DEFAULT_LIMITS, maxMessageBytes: 1 << 30 })));
  let status: (s: number | undefined) => void = () => undefined;
  const statusP = new Promise<number | undefined>((r) => {
    status = r;
  });
  ws.on('unexpected-response', (_req, res) => {
    status(res.statusCode);
    res.resume();
    ws.terminate();
  });
  ws.on('error', () => undefined);
  const opened = new Promise<boolean>((r) => {
    ws.once('open', () => r(true));
    ws.once('close', () => r(false));
  });
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => {
    status(undefined);
    r({ code, reason: reason.toString() });
  }));
  return { ws, messages, opened, closed, status: statusP };
}

/** The most `process.memoryUsage().arrayBuffers` grew above `before` while `p` ran (sampled every 5 ms). */
async function peakGrowth<T>(p: Promise<T>): Promise<{ value: T; grown: number }> {
  const before = process.memoryUsage().arrayBuffers;
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  }, 5);
  try {
    const value = await p;
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    return { value, grown: peak - before };
  } finally {
    clearInterval(timer);
  }
}

/** Race `p` against `ms`; on time out, open the FIFO for writing so a blocked open returns, and fail. */
async function noHang<T>(p: Promise<T>, fifo: string, ms = 3000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => {
      void open(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK).then((h) => h.close(), () => undefined);
      fail(new Error(`hung on the FIFO ${fifo} for ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function expectCode(p: Promise<unknown>, code: string): Promise<Error & { code: string }> {
  try {
    await p;
  } catch (err) {
    expect((err as { code?: string }).code, (err as Error).message).to.equal(code);
    return err as Error & { code: string };
  }
  throw new Error(`expected ${code}`);
}

describe('adversarial: doors before the lock (serve)', function () {
  this.timeout(60_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: AssemblerServer | undefined;
  let logged: Logged;
  const sockets: { terminate(): void }[] = [];

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    logged = logger();
  });
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.terminate();
    await server?.close();
    server = undefined;
    await cleanup();
  });

  async function start(options: Partial<ServeOptions> = {}): Promise<AssemblerServer> {
    server = await serve({ images: [join(dir, 'disk.img')], listen: { host: '127.0.0.1', port: 0 }, secret: ` ${TOKEN_TEXT.toLowerCase()}\n`, log: logged.log, ...options });
    return server;
  }

  async function reader(): Promise<Client> {
    const c = await Client.connect(server!.url);
    sockets.push(c.ws);
    return c;
  }

  function raw(options: Parameters<typeof rawSocket>[1] = {}): ReturnType<typeof rawSocket> {
    const r = rawSocket(server!.url, options);
    sockets.push(r.ws);
    return r;
  }

  describe('finding 4: a large message before authentication', () => {
    it('cuts an 8 MiB message after a few KiB, before the websocket layer buffers it (ERR_HANDSHAKE_TOO_LARGE, 1009)', async () => {
      await start();
      const r = raw();
      expect(await r.opened).to.equal(true);
      r.ws.send(Buffer.alloc(8 * MIB - 1024, 0x0a));
      const { code } = await r.closed;
      expect(code).to.be.oneOf([1009, 1006]);
      expect(r.messages.find((m) => m.type === 'error')).to.deep.include({ code: 'ERR_HANDSHAKE_TOO_LARGE' });
      await until('the refusal logged', () => logged.lines.some((l) => l.includes('ERR_HANDSHAKE_TOO_LARGE')));
      const line = logged.lines.find((l) => l.includes('ERR_HANDSHAKE_TOO_LARGE'))!;
      const bytes = Number(/: (\d+) bytes arrived before authentication/.exec(line)?.[1]);
      // the first read from the socket is at most 64 KiB: nothing near 8 MiB was taken in
      expect(bytes).to.be.above(4 * DEFAULT_LIMITS.maxHandshakeBytes).and.below(256 * 1024);
      expect(server!.stats().doors.tooLarge).to.equal(1);
      expect(server!.images[0]!.binding).to.equal(undefined);
    });

    it('holds a few MiB at most for 16 such messages in parallel (8 MiB each)', async () => {
      await start({ doors: { maxPendingPerAddress: 16, maxPending: 16 } });
      const size = 8 * MIB - 1024;
      const payload = Buffer.alloc(size, 0x0a);
      const ss = await Promise.all(Array.from({ length: 16 }, () => handUpgrade(server!.port)));
      for (const s of ss) sockets.push({ terminate: () => s.destroy() });
      const { grown } = await peakGrowth((async () => {
        for (const s of ss) {
          s.write(frameHeader(size));
          s.write(payload);
        }
        await Promise.all(ss.map(closedOf));
      })());
      expect(server!.stats().doors.tooLarge).to.equal(16);
      // without the doors: 16 × 8 MiB buffered, then decoded
      expect(grown, `${(grown / MIB).toFixed(1)} MiB`).to.be.below(16 * MIB);
    });

    it('reads a handshake message just at the limit and refuses one just over it', async () => {
      await start();
      const loose = { ...DEFAULT_LIMITS, maxHandshakeBytes: 1 << 20 };
      const h = hello();
      let n = DEFAULT_LIMITS.maxHandshakeBytes - encodeEnvelope({ ...h, readerName: '' }).length - 8;
      while (encodeEnvelope({ ...h, readerName: 'x'.repeat(n + 1) }, loose).length <= DEFAULT_LIMITS.maxHandshakeBytes) ++n;
      const at = { ...h, readerName: 'x'.repeat(n) };
      const c = await reader();
      expect(encodeEnvelope(at).length).to.equal(DEFAULT_LIMITS.maxHandshakeBytes);
      expect((await c.handshake(TOKEN, at))?.type).to.equal('welcome');
      const r = raw();
      await r.opened;
      r.ws.send(encodeEnvelope({ ...h, readerName: 'x'.repeat(n + 1) }, loose));
      await r.closed;
      expect(r.messages.find((m) => m.type === 'error')).to.deep.include({ code: 'ERR_PROTO_MESSAGE_TOO_LARGE' });
    });

    it('decodes nothing but Hello, then Auth, before authentication', async () => {
      await start();
      const r = raw();
      await r.opened;
      // a pieceHeader body of garbage: decoding it would find it malformed; it is refused by its tag alone
      const body = Buffer.alloc(1000, 0xff);
      r.ws.send(Buffer.concat([Buffer.from([0x2a, 0xe8, 0x07]), body]));
      await r.closed;
      const e = r.messages.find((m) => m.type === 'error');
      expect(e).to.deep.include({ code: 'ERR_PROTO_OUT_OF_ORDER' });
      expect(e?.type === 'error' && e.message).to.contain('A pieceHeader message arrived; expected hello');
    });
  });

  describe('finding 5: idle connections, origins, HTTP connections', () => {
    it('lets the real reader in past 16 idle unauthenticated connections; the idle ones give way (ERR_SERVER_BUSY)', async () => {
      await start();
      const idle = Array.from({ length: 16 }, () => raw());
      expect(await Promise.all(idle.map((r) => r.opened))).to.not.include(false);
      const c = await reader();
      expect((await c.handshake(TOKEN))?.type).to.equal('welcome');
      await until('the oldest idle ones thrown out', () => idle.filter((r) => r.ws.readyState === WebSocket.CLOSED).length >= 12);
      const refused = idle.filter((r) => r.messages.some((m) => m.type === 'error' && m.code === 'ERR_SERVER_BUSY'));
      expect(refused.length).to.be.at.least(12);
      expect(server!.stats().doors.pending).to.be.at.most(4);
    });

    it('keeps the waiting room per address: idle sockets of other addresses cannot lock one out', async () => {
      await start();
      const idle = Array.from({ length: 24 }, (_, i) => raw({ localAddress: `127.0.0.${2 + (i % 8)}` }));
      await Promise.all(idle.map((r) => r.opened));
      expect(server!.stats().doors.pending).to.be.at.most(8);
      const c = await reader();
      expect((await c.handshake(TOKEN))?.type).to.equal('welcome');
    });

    it('refuses a readers\' websocket with an Origin header (a web page), 403, ERR_ORIGIN_REFUSED', async () => {
      await start();
      for (const origin of ['http://evil.example', `http://127.0.0.1:${server!.port}`]) {
        const r = raw({ headers: { Origin: origin } });
        expect(await r.status, origin).to.equal(403);
      }
      await until('logged', () => logged.lines.some((l) => l.includes('ERR_ORIGIN_REFUSED')));
      expect(server!.images[0]!.binding).to.equal(undefined);
    });

    it('refuses a plain HTTP request from another site\'s page (403), serves the page to its own', async () => {
      await start();
      const foreign = await fetch(`http://127.0.0.1:${server!.port}/`, { headers: { Origin: 'http://evil.example' } });
      expect(foreign.status).to.equal(403);
      expect(await foreign.text()).to.contain('ERR_ORIGIN_REFUSED');
      const own = await fetch(`http://127.0.0.1:${server!.port}/`, { headers: { Origin: `http://127.0.0.1:${server!.port}` } });
      expect(own.status).to.equal(200);
    });

    it('keeps at most maxPending idle TCP connections, and maxSockets in all', async () => {
      await start({ doors: { maxPendingPerAddress: 100, maxPending: 8, maxSockets: 20 } });
      const tcp: Socket[] = [];
      for (let i = 0; i < 100; i++) {
        const s = tcpConnect(server!.port, '127.0.0.1');
        s.on('error', () => undefined);
        tcp.push(s);
        sockets.push({ terminate: () => s.destroy() });
      }
      await Promise.all(tcp.map((s) => new Promise((r) => {
        s.once('connect', r);
        s.once('close', r);
      })));
      await until('the server keeps 8', () => tcp.filter((s) => !s.destroyed && s.readyState === 'open').length <= 8 || server!.stats().doors.sockets <= 8);
      await until('closed on our side too', () => tcp.filter((s) => !s.closed).length <= 8);
      expect(server!.stats().doors.sockets).to.be.at.most(8);
      const c = await reader();
      expect((await c.handshake(TOKEN))?.type).to.equal('welcome');
    });

    it('refuses new connections while few file descriptors are left (ERR_SERVER_BUSY), and takes them again after', async () => {
      let headroom = 10;
      await start({ doors: { headroom: () => headroom, fdReserve: 32 } });
      const r = raw();
      expect(await r.opened).to.equal(false);
      await until('logged', () => logged.lines.some((l) => l.includes('ERR_SERVER_BUSY') && l.includes('files could be opened')));
      headroom = 1000;
      const c = await reader();
      expect((await c.handshake(TOKEN))?.type).to.equal('welcome');
    });
  });

  describe('finding 6: tokens and guesses', () => {
    it('refuses a one-byte token, or one under 128 bits, at the start (ERR_AUTH_TOKEN_WEAK)', async () => {
      await expectCode(serve({ images: [join(dir, 'a.img')], listen: { host: '127.0.0.1', port: 0 }, secret: 'x', log: logged.log }), 'ERR_AUTH_TOKEN_WEAK');
      await expectCode(serve({ images: [join(dir, 'a.img')], listen: { host: '127.0.0.1', port: 0 }, secret: new Uint8Array(15), log: logged.log }), 'ERR_AUTH_TOKEN_WEAK');
      const file = join(dir, 'token');
      await writeFile(file, 'x\n', { mode: 0o600 });
      const err: string[] = [];
      expect(await run(['serve', join(dir, 'a.img'), '--listen', '127.0.0.1:0', '--token-file', file], { stdout: () => undefined, stderr: (t) => err.push(t) })).to.equal(1);
      expect(err.join('')).to.contain('ERR_AUTH_TOKEN_WEAK').and.contain('ddferry-assembler token');
    });

    it('slows token guesses from one address to a handful a second (ERR_AUTH_THROTTLED), the real token included', async () => {
      await start();
      const started = performance.now();
      const answers: string[] = [];
      while (performance.now() - started < 3000) {
        const r = raw();
        if (!(await r.opened)) continue;
        const h = hello();
        r.ws.send(encodeEnvelope(h));
        await until('challenge', () => r.messages.length > 0 || r.ws.readyState !== WebSocket.OPEN);
        const ch = r.messages[0];
        if (ch?.type !== 'challenge') continue;
        r.ws.send(encodeEnvelope({ type: 'auth', hmac: authHmac('a wrong guess', ch.serverNonce, h.clientNonce, h.rescueId) }));
        await r.closed;
        const e = r.messages.find((m) => m.type === 'error');
        answers.push(e?.type === 'error' ? e.code : 'none');
      }
      const seconds = (performance.now() - started) / 1000;
      const checked = answers.filter((a) => a === 'ERR_AUTH_FAILED').length;
      const throttled = answers.filter((a) => a === 'ERR_AUTH_THROTTLED').length;
      // a burst of 5, then 1 a second
      expect(checked, `${checked} guesses checked in ${seconds.toFixed(1)} s`).to.be.at.most(5 + Math.ceil(seconds) + 1);
      expect(throttled).to.be.above(0);
    });

    it('refuses even the real token unchecked from a throttled address; other addresses are not slowed', async () => {
      await start({ doors: { authBurst: 2, authPerSecond: 0.01 } });
      for (let i = 0; i < 2; i++) expect(await (await reader()).handshake('wrong')).to.deep.include({ type: 'error', code: 'ERR_AUTH_FAILED' });
      const c = await reader();
      const answer = await c.handshake(TOKEN);
      expect(answer).to.deep.include({ type: 'error', code: 'ERR_AUTH_THROTTLED' });
      expect(answer?.type === 'error' && answer.message).to.match(/try again in \d+ s/);
      expect((await c.closed).code).to.equal(1013);
      const elsewhere = rawSocket(server!.url, { localAddress: '127.0.0.5' });
      sockets.push(elsewhere.ws);
      expect(await elsewhere.opened).to.equal(true);
      const h = hello();
      elsewhere.ws.send(encodeEnvelope(h));
      await until('challenge', () => elsewhere.messages.length > 0);
      const ch = elsewhere.messages[0] as Extract<Message, { type: 'challenge' }>;
      elsewhere.ws.send(encodeEnvelope({ type: 'auth', hmac: authHmac(TOKEN, ch.serverNonce, h.clientNonce, h.rescueId) }));
      await until('welcome', () => elsewhere.messages.length > 1);
      expect(elsewhere.messages[1]?.type).to.equal('welcome');
    });

    it('bounds guesses over all addresses together', async () => {
      await start({ doors: { authGlobalBurst: 6, authGlobalPerSecond: 0.001 } });
      const answers: string[] = [];
      for (let i = 0; i < 12; i++) {
        const r = raw({ localAddress: `127.0.1.${i + 1}` });
        expect(await r.opened).to.equal(true);
        const h = hello();
        r.ws.send(encodeEnvelope(h));
        await until('challenge', () => r.messages.length > 0);
        const ch = r.messages[0] as Extract<Message, { type: 'challenge' }>;
        r.ws.send(encodeEnvelope({ type: 'auth', hmac: authHmac('wrong', ch.serverNonce, h.clientNonce, h.rescueId) }));
        await r.closed;
        const e = r.messages.find((m) => m.type === 'error');
        answers.push(e?.type === 'error' ? e.code : 'none');
      }
      expect(answers.filter((a) => a === 'ERR_AUTH_FAILED')).to.have.length(6);
      expect(answers.filter((a) => a === 'ERR_AUTH_THROTTLED')).to.have.length(6);
    });
  });

  describe('finding 8: memory held for a token holder, text from peers', () => {
    /** A rescue whose chunks hold pieces of 32 MiB, as a token holder may plan one. */
    const BIG_RESCUE = '7d3c2a4e-9b1d-4c6e-8a7f-1234567890cd';
    const BIG_CHUNK = 32 * MIB;
    const bigHello = (): HelloMessage => ({ ...hello(BIG_RESCUE, { ...FINGERPRINT, size: 4 * BIG_CHUNK }), chunkSize: BIG_CHUNK });
    let bigSealed: Uint8Array | undefined;
    /** The sealed header of a valid piece of 32 MiB (its data never follows). */
    function bigHeader(): Message {
      bigSealed ??= sealPiece({
        rescueId: BIG_RESCUE as RescueId, seq: 1, chunk: 0, extents: [makeExtent(0, new Uint8Array(BIG_CHUNK))], delta: [{ pos: 0, size: BIG_CHUNK, status: '+' }], data: new Uint8Array(BIG_CHUNK),
      }, deriveRescueKeys(TOKEN, BIG_RESCUE)).header;
      return { type: 'pieceHeader', sealedHeader: bigSealed };
    }

    it('holds at most --max-memory of piece data over all readers; the others wait, unread', async () => {
      await start({ maxMemory: 64 * MIB });
      const cs: Client[] = [];
      for (let i = 0; i < 8; i++) {
        const c = await reader();
        expect((await c.handshake(TOKEN, bigHello()))?.type).to.equal('welcome');
        cs.push(c);
      }
      const { grown } = await peakGrowth((async () => {
        for (const c of cs) c.send(bigHeader());
        await until('two granted, six waiting', () => server!.stats().memory.waiting === 6);
        await new Promise((r) => setTimeout(r, 100));
      })());
      expect(server!.stats().memory.used).to.equal(64 * MIB);
      // without the budget: 8 × 32 MiB allocated at the headers
      expect(grown).to.be.below(96 * MIB);
      cs[0]!.ws.terminate();
      await until('one more granted', () => server!.stats().memory.waiting === 5);
      expect(server!.stats().memory.used).to.equal(64 * MIB);
      expect(server!.stats().memory.peak).to.equal(64 * MIB);
    });

    it('merges a waiting reader\'s piece once memory is given back', async () => {
      await start({ maxMemory: 32 * MIB });
      const hog = await reader();
      expect((await hog.handshake(TOKEN, bigHello()))?.type).to.equal('welcome');
      hog.send(bigHeader());
      await until('the hog holds it all', () => server!.stats().memory.used === 32 * MIB);
      const c = await reader();
      expect((await c.handshake(TOKEN, bigHello()))?.type).to.equal('welcome');
      const sealed = c.sendPiece(makePiece(7, 1, [{ pos: BIG_CHUNK, size: 2048, status: '+' }], 7, BIG_RESCUE));
      await until('waiting', () => server!.stats().memory.waiting === 1);
      hog.ws.terminate();
      const receipt = await c.expect('receipt');
      expect(receipt.merged).to.deep.equal([{ seq: 7, headerHash: sealed.headerHash }]);
      await until('all given back', () => server!.stats().memory.used === 0);
    });

    it('prints no control or bidi character a peer sent: reader name, error messages', async () => {
      await start();
      const evil = '\u001b]0;owned\u0007\u001b[2J\u202eevil';
      const wrong = await reader();
      await wrong.handshake('not the token', { ...hello(), readerName: evil });
      const c = await reader();
      expect((await c.handshake(TOKEN, { ...hello(), readerName: evil }))?.type).to.equal('welcome');
      c.send({ type: 'error', code: 'ERR_X\u001b[31m', message: `bad\r\n\u001b[1Afake line ${evil}` });
      await c.closed;
      await until('logged', () => logged.lines.some((l) => l.includes('the reader reports')));
      const all = logged.lines.join('\n');
      // eslint-disable-next-line no-control-regex -- no control character may be printed
      expect(all).to.not.match(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
      expect(all).to.contain('(?]0;owned??[2J?evil)');
      // a name claimed before authentication is not shown at all
      expect(logged.lines.find((l) => l.includes('ERR_AUTH_FAILED'))).to.not.contain('owned');
    });
  });
});

describe('adversarial: files are what they claim (import, import-ddrescue)', function () {
  this.timeout(30_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  let stick: string;
  let folder: string;
  let imagePath: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    stick = join(dir, 'stick');
    imagePath = join(dir, 'disk.img');
    folder = await makeRescueFolder(stick);
    for (const p of fourPieces()) await writeBundleFile(folder, p);
  });
  afterEach(async () => {
    await cleanup();
  });

  async function importIt(): Promise<unknown> {
    const image = await Image.open(imagePath);
    try {
      return await importStick(stick, image, { secret: SECRET });
    } finally {
      await image.close();
    }
  }

  async function nothingMerged(): Promise<void> {
    const size = await stat(imagePath).then((s) => s.size, () => 0);
    expect(size, 'no byte written into the image').to.equal(0);
  }

  describe('finding 7: receipts through a link', () => {
    it('refuses a receipts link to outside the stick (ERR_FILE_SYMLINK): nothing merged, nothing written there', async () => {
      const outside = join(dir, 'outside');
      await mkdir(outside);
      await symlink(outside, join(folder, 'receipts'));
      const err = await expectCode(importIt(), 'ERR_FILE_SYMLINK');
      expect(err.message).to.contain(join(folder, 'receipts'));
      expect(await readdir(outside)).to.deep.equal([]);
      await nothingMerged();
    });

    it('refuses a receipts entry that is a file (ERR_FILE_NOT_FOLDER)', async () => {
      await writeFile(join(folder, 'receipts'), 'not a folder');
      await expectCode(importIt(), 'ERR_FILE_NOT_FOLDER');
      expect(await readFile(join(folder, 'receipts'), 'utf8')).to.equal('not a folder');
      await nothingMerged();
    });

    it('never follows a link at the stick\'s ddferry folder (ERR_FILE_SYMLINK)', async () => {
      const other = join(dir, 'other');
      await mkdir(other);
      await symlink(join(stick, 'ddferry'), join(other, 'ddferry'));
      const image = await Image.open(imagePath);
      try {
        await expectCode(importStick(other, image, { secret: SECRET }), 'ERR_FILE_SYMLINK');
      } finally {
        await image.close();
      }
      await nothingMerged();
    });

    it('refuses a link or a FIFO posing as a bundle, merges the rest', async () => {
      await rm(join(folder, 'piece-000002.tar'));
      await symlink(join(folder, 'piece-000001.tar'), join(folder, 'piece-000002.tar'));
      await rm(join(folder, 'piece-000003.tar'));
      execFileSync('mkfifo', [join(folder, 'piece-000003.tar')]);
      const result = await noHang(importIt(), join(folder, 'piece-000003.tar')) as { refused: number; merged: number; rejected: { bundle: string; code: string }[] };
      expect(result.merged).to.equal(2);
      expect(result.rejected.map((r) => r.bundle).sort()).to.deep.equal(['piece-000002.tar', 'piece-000003.tar']);
    });
  });

  describe('finding 8: FIFOs never hang', () => {
    it('refuses rescue.json as a FIFO at once (ERR_FILE_NOT_REGULAR)', async () => {
      await rm(join(folder, 'rescue.json'));
      execFileSync('mkfifo', [join(folder, 'rescue.json')]);
      await expectCode(noHang(importIt(), join(folder, 'rescue.json')), 'ERR_FILE_NOT_REGULAR');
      await nothingMerged();
    });

    it('refuses rescue.json as a link (ERR_FILE_SYMLINK)', async () => {
      await writeFile(join(dir, 'elsewhere.json'), await readFile(join(folder, 'rescue.json')));
      await rm(join(folder, 'rescue.json'));
      await symlink(join(dir, 'elsewhere.json'), join(folder, 'rescue.json'));
      await expectCode(importIt(), 'ERR_FILE_SYMLINK');
    });

    it('refuses a token file that is a FIFO at once (ERR_AUTH_TOKEN_READ)', async () => {
      const fifo = join(dir, 'token');
      execFileSync('mkfifo', ['-m', '600', fifo]);
      const err: string[] = [];
      const status = await noHang(run(['serve', imagePath, '--listen', '127.0.0.1:0', '--token-file', fifo], { stdout: () => undefined, stderr: (t) => err.push(t) }), fifo);
      expect(status).to.equal(1);
      expect(err.join('')).to.contain('ERR_AUTH_TOKEN_READ').and.contain('not a regular file');
    });

    it('refuses a chunk file or a domain mapfile that is a FIFO at once (ERR_CHUNK_FILE_OPEN, ERR_MAPFILE_READ)', async () => {
      const domain = join(dir, 'chunk0.map');
      await writeFile(domain, '# Mapfile\n0x00000000     +               1\n0x00000000  0x00001000  +\n0x00001000  0x00002000  ?\n');
      const fifo = join(dir, 'chunk0.raw');
      execFileSync('mkfifo', [fifo]);
      const image = await Image.open(imagePath);
      try {
        const err = await expectCode(noHang(importDdrescueChunk(image, { chunkFile: fifo, domainMap: domain }), fifo), 'ERR_CHUNK_FILE_OPEN');
        expect(err.message).to.contain('FIFO');
        const mapFifo = join(dir, 'fifo.map');
        execFileSync('mkfifo', [mapFifo]);
        await expectCode(noHang(importDdrescueChunk(image, { chunkFile: fifo, domainMap: mapFifo }), mapFifo), 'ERR_MAPFILE_READ');
        await symlink(domain, join(dir, 'link.map'));
        await writeFile(join(dir, 'real.raw'), Buffer.alloc(4096));
        await symlink(join(dir, 'real.raw'), join(dir, 'link.raw'));
        await expectCode(importDdrescueChunk(image, { chunkFile: join(dir, 'link.raw'), domainMap: domain }), 'ERR_CHUNK_FILE_OPEN');
        await expectCode(importDdrescueChunk(image, { chunkFile: join(dir, 'real.raw'), domainMap: join(dir, 'link.map') }), 'ERR_MAPFILE_READ');
      } finally {
        await image.close();
      }
      await nothingMerged();
    });

    it('prints stick file names without their control characters', async () => {
      await writeFile(join(folder, 'piece-\u001b[2Jx.tar'), '');
      const token = join(dir, 'token');
      await writeFile(token, `${SECRET}\n`, { mode: 0o600 });
      const err: string[] = [];
      expect(await run(['import', stick, imagePath, '--token-file', token], { stdout: () => undefined, stderr: (t) => err.push(t) }), err.join('')).to.equal(0);
      const text = err.join('');
      expect(text).to.contain('piece-?[2Jx.tar: not a bundle name');
      // eslint-disable-next-line no-control-regex -- no control character may be printed
      expect(text).to.not.match(/[\u0000-\u0009\u000b-\u001f]/);
    });
  });
});

