/**
 * Issue 13, "doors before the lock", against a real `ddferry-assembler serve`
 * process: what an unauthenticated peer or a token holder costs it, measured
 * from outside (RSS from /proc, descriptor limits with prlimit), and the real
 * `ddferry-reader` still rescuing through the attack. Figures are printed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

import {
  type Fingerprint, type Message, authHmac, decodeEnvelope, deriveRescueKeys, encodeEnvelope, encodePieceFrames, makeExtent, makeNonce, makeRescueId,
  PROTOCOL_VERSION, sealPiece,
} from '@ddferry/protocol';
import { expect } from 'chai';
import WebSocket from 'ws';

import { closedOf, frameHeader, handUpgrade } from '../../packages/assembler/test/raw-socket.js';
import { ASSEMBLER, type Scenario, checkImage, killAll, makeScenario, secretOf, sleep, startReader } from './harness.js';

const MiB = 1 << 20;
/** The attacker's address; the reader comes from 127.0.0.1. */
const ATTACKER = '127.0.0.2';

interface Served {
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  stderr(): string;
  stop(): Promise<void>;
}

/** `ddferry-assembler serve IMAGE --token-file` on 127.0.0.1 port 0, maybe under a wrapper (prlimit). */
async function serveImage(image: string, token: string, o: { wrapper?: readonly string[]; extra?: readonly string[] } = {}): Promise<Served> {
  const argv = [...(o.wrapper ?? []), process.execPath, ASSEMBLER, 'serve', image, '--listen', '127.0.0.1:0', '--token-file', token, ...(o.extra ?? [])];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the assembler did not start in 20 s: ${err}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (ws:\/\/\S+)/.exec(out);
      if (m !== null) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(t);
      reject(new Error(`the assembler exited (${code ?? signal}) before listening: ${err}`));
    });
  });
  return {
    url, port: Number(new URL(url).port), child, stderr: () => err,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A file's text, or '' if it does not exist. */
function readIfThere(file: string): string {
  try {
    return readFileSync(file, 'latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/** Poll `check` every 100 ms for at most `ms`; whether it became true. */
async function waitForFile(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await sleep(100);
  }
  return true;
}

/** VmRSS and VmHWM of a process, in bytes. */
function memoryOf(pid: number): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)![1]) * 1024;
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

/** Open file descriptors of a process (0 once it is gone). */
function fdsOf(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

/** A scripted peer: a websocket and the messages it got. */
class Peer {
  readonly ws: WebSocket;
  readonly inbox: Message[] = [];
  readonly opened: Promise<boolean>;
  readonly closed: Promise<number>;

  constructor(url: string, localAddress = ATTACKER) {
    this.ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30, localAddress });
    this.ws.on('message', (d: Buffer) => this.inbox.push(decodeEnvelope(d, undefined)));
    this.ws.on('error', () => undefined);
    this.opened = new Promise((r) => {
      this.ws.once('open', () => r(true));
      this.ws.once('close', () => r(false));
    });
    this.closed = new Promise((r) => this.ws.once('close', (code: number) => r(code)));
  }

  async next(ms = 10_000): Promise<Message | undefined> {
    const deadline = Date.now() + ms;
    while (this.inbox.length === 0 && this.ws.readyState !== WebSocket.CLOSED) {
      if (Date.now() > deadline) throw new Error('no message in time');
      await sleep(5);
    }
    return this.inbox.shift();
  }

  /** Hello → Challenge → Auth with `secret`; the assembler's answer. */
  async handshake(secret: string, hello: Extract<Message, { type: 'hello' }>): Promise<Message | undefined> {
    this.ws.send(encodeEnvelope(hello));
    const ch = await this.next();
    if (ch?.type !== 'challenge') return ch;
    this.ws.send(encodeEnvelope({ type: 'auth', hmac: authHmac(secret, ch.serverNonce, hello.clientNonce, hello.rescueId) }));
    return this.next();
  }
}

function helloOf(rescueId: string, fingerprint: Fingerprint, chunkSize: number): Extract<Message, { type: 'hello' }> {
  return { type: 'hello', protocolVersion: PROTOCOL_VERSION, rescueId, fingerprint, clientNonce: makeNonce(), readerName: 'attacker', chunkSize, sectorSize: 512 };
}

/** Keep `count` idle connections from the attacker open (TCP only, or websocket upgrades) until `stop`. */
function idleFlood(port: number, count: number, kind: 'tcp' | 'ws'): { stop: () => void; opened: () => number } {
  let running = true;
  let opened = 0;
  const open = new Set<{ destroy(): void }>();
  const one = (): void => {
    if (!running) return;
    ++opened;
    if (kind === 'tcp') {
      const s = connect({ port, host: '127.0.0.1', localAddress: ATTACKER });
      s.on('error', () => undefined);
      open.add(s);
      s.once('close', () => {
        open.delete(s);
        setTimeout(one, 5);
      });
    } else {
      const p = new Peer(`ws://127.0.0.1:${port}`);
      const handle = { destroy: () => p.ws.terminate() };
      open.add(handle);
      void p.closed.then(() => {
        open.delete(handle);
        setTimeout(one, 5);
      });
    }
  };
  for (let i = 0; i < count; i++) one();
  return {
    opened: () => opened,
    stop: () => {
      running = false;
      for (const s of open) s.destroy();
    },
  };
}

describe('adversarial doors: a real assembler under attack (issue 13)', function () {
  this.timeout(300_000);
  let s: Scenario | undefined;
  let served: Served | undefined;
  afterEach(async () => {
    await served?.stop();
    served = undefined;
    await killAll();
    s?.remove();
    s = undefined;
  });

  it('finding 4: 16 messages of 8 MiB before authentication add a few MiB, not 2 GB', async () => {
    s = makeScenario({ size: 1 * MiB, bad: [], chunkSize: '1MiB' });
    served = await serveImage(s.image, s.token);
    const pid = served.child.pid!;
    await sleep(500);
    const before = memoryOf(pid);
    const size = 8 * MiB - 1024;
    const payload = Buffer.alloc(size, 0x0a);
    const started = performance.now();
    const sockets = await Promise.all(Array.from({ length: 16 }, () => handUpgrade(served!.port, ATTACKER)));
    for (const sock of sockets) {
      sock.write(frameHeader(size));
      sock.write(payload);
    }
    await Promise.all(sockets.map(closedOf));
    const ms = performance.now() - started;
    await sleep(200);
    const after = memoryOf(pid);
    console.log(`      RSS ${(before.rss / MiB).toFixed(1)} MiB before, ${(after.rss / MiB).toFixed(1)} MiB after, peak ${(after.hwm / MiB).toFixed(1)} MiB (+${((after.hwm - before.rss) / MiB).toFixed(1)} MiB); all 16 cut in ${ms.toFixed(0)} ms`);
    expect(after.hwm - before.rss).to.be.below(32 * MiB);
    expect(served.stderr()).to.contain('ERR_HANDSHAKE_TOO_LARGE');
  });

  it('finding 5: the real reader rescues while idle websockets keep every waiting slot busy', async () => {
    s = makeScenario({ size: 4 * MiB + 4096, bad: [[MiB, 4096]], chunkSize: '1MiB' });
    served = await serveImage(s.image, s.token);
    const flood = idleFlood(served.port, 16, 'ws');
    try {
      await sleep(500);
      const reader = startReader(s, served.url);
      const r = await Promise.race([reader.exited(), sleep(60_000).then(() => ({ code: 'timeout' as const, signal: null }))]);
      expect(r.code, `reader: ${reader.stderr()}`).to.equal(0);
    } finally {
      flood.stop();
    }
    checkImage(s);
    expect(flood.opened()).to.be.above(16);
    expect(served.stderr()).to.contain('ERR_SERVER_BUSY');
  });

  it('finding 5: with RLIMIT_NOFILE at 64 and a flood of idle TCP connections, merges still succeed', async () => {
    s = makeScenario({ size: 4 * MiB + 4096, bad: [[2 * MiB, 8192]], chunkSize: '512KiB' });
    served = await serveImage(s.image, s.token, { wrapper: ['prlimit', '--nofile=64:64', '--'] });
    const pid = served.child.pid!;
    expect(readFileSync(`/proc/${pid}/limits`, 'utf8')).to.match(/^Max open files\s+64\s+64/m);
    const flood = idleFlood(served.port, 300, 'tcp');
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, fdsOf(pid));
    }, 20);
    try {
      await sleep(500);
      const reader = startReader(s, served.url);
      const r = await Promise.race([reader.exited(), sleep(90_000).then(() => ({ code: 'timeout' as const, signal: null }))]);
      expect(r.code, `reader: ${reader.stderr()}\nassembler: ${served.stderr().slice(-3000)}`).to.equal(0);
    } finally {
      clearInterval(sampler);
      flood.stop();
    }
    console.log(`      ${flood.opened()} attacker connections; the assembler held at most ${most} descriptors of 64`);
    checkImage(s);
    expect(served.stderr()).to.not.match(/EMFILE|ERR_IMAGE_SAVE/);
    expect(most).to.be.at.most(64 - 16);
  });

  it('finding 6: token guesses drop to a handful a second per address', async () => {
    s = makeScenario({ size: 1 * MiB, bad: [], chunkSize: '1MiB' });
    served = await serveImage(s.image, s.token);
    const fingerprint: Fingerprint = { size: MiB, logicalSectorSize: 512, physicalSectorSize: 512, model: 'x', serial: '', wwn: '', kind: 'file' };
    const started = performance.now();
    const codes: string[] = [];
    while (performance.now() - started < 5000) {
      const p = new Peer(served.url);
      if (!(await p.opened)) continue;
      const answer = await p.handshake('a guess', helloOf(makeRescueId(), fingerprint, MiB));
      codes.push(answer?.type === 'error' ? answer.code : answer?.type ?? 'close');
      p.ws.terminate();
    }
    const seconds = (performance.now() - started) / 1000;
    const checked = codes.filter((c) => c === 'ERR_AUTH_FAILED').length;
    console.log(`      ${codes.length} tries in ${seconds.toFixed(1)} s: ${checked} checked (${(checked / seconds).toFixed(1)}/s), ${codes.filter((c) => c === 'ERR_AUTH_THROTTLED').length} refused unchecked`);
    expect(checked).to.be.at.most(5 + Math.ceil(seconds) + 1);
  });

  it('finding 8: 16 token holders sending 64 MiB pieces hold --max-memory, not 1 GiB', async () => {
    s = makeScenario({ size: 1 * MiB, bad: [], chunkSize: '1MiB' });
    const image = join(s.dir, 'other.img');
    served = await serveImage(image, s.token, { extra: ['--max-memory', '128M'] });
    const pid = served.child.pid!;
    const rescueId = makeRescueId();
    const size = 64 * MiB;
    const fingerprint: Fingerprint = { size: 1024 * MiB, logicalSectorSize: 512, physicalSectorSize: 512, model: 'x', serial: '', wwn: '', kind: 'file' };
    const peers: Peer[] = [];
    for (let i = 0; i < 16; i++) {
      const p = new Peer(served.url, '127.0.0.1');
      expect(await p.opened).to.equal(true);
      expect((await p.handshake(secretOf(s), helloOf(rescueId, fingerprint, 1024 * MiB)))?.type).to.equal('welcome');
      peers.push(p);
    }
    // a valid sealed piece of 64 MiB (a token holder may send it): its header authenticates, so
    // without the memory budget each connection would allocate its 64 MiB at once
    const data = Buffer.alloc(size, 0x5a);
    const sealed = sealPiece({ rescueId, seq: 1, chunk: 0, extents: [makeExtent(0, data)], delta: [{ pos: 0, size, status: '+' }], data }, deriveRescueKeys(secretOf(s), rescueId));
    const messages = [...encodePieceFrames(sealed)];
    await sleep(300);
    const before = memoryOf(pid);
    const started = performance.now();
    await Promise.all(peers.map(async (p) => {
      for (let i = 0; i < messages.length && performance.now() - started < 20_000;) {
        if (p.ws.bufferedAmount > 8 * MiB) {
          await sleep(20);
          continue;
        }
        p.ws.send(messages[i++]!);
      }
    }));
    await sleep(500);
    const after = memoryOf(pid);
    console.log(`      RSS ${(before.rss / MiB).toFixed(0)} MiB before, peak ${(after.hwm / MiB).toFixed(0)} MiB with 16 pieces of 64 MiB under way (--max-memory 128M)`);
    expect(after.hwm - before.rss).to.be.below(128 * MiB + 96 * MiB);
    // the pieces were real: the first one granted memory is merged whole
    const merged = await waitForFile(() => /^0x00000000 +0x04000000 +\+$/m.test(readIfThere(`${image}.map`)), 20_000);
    expect(merged, `IMAGE.map holds the 64 MiB piece: ${readIfThere(`${image}.map`)}\nassembler: ${served.stderr().slice(-2000)}`).to.equal(true);
    for (const p of peers) p.ws.terminate();
  });
});
