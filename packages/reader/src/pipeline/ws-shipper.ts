import { hostname } from 'node:os';

import {
  type Fingerprint, type Limits, type Message, type PieceRef, type StatusMessage, type WelcomeMessage, DEFAULT_LIMITS, PROTOCOL_VERSION, ProtocolError,
  authHmac, decodeEnvelope, encodeEnvelope, encodePieceFrames, isProtocolError, makeNonce, verifyServerProof,
} from '@ddferry/protocol';
import WebSocket from 'ws';

import { ReaderError } from '../errors.js';
import type { Spool } from './spool.js';
import { STATUS_INTERVAL_MS } from './status-report.js';

export interface ShipperOptions {
  /** `ws://HOST:PORT` of the assembler. */
  readonly url: string;
  /** The shared secret ('' if none: both sides must agree). */
  readonly secret: string;
  readonly rescueId: string;
  readonly fingerprint: Fingerprint;
  readonly chunkSize: number;
  readonly sectorSize: number;
  readonly spool: Spool;
  readonly limits?: Limits;
  /** Unacknowledged bytes in flight at most (default 64 MiB). */
  readonly windowBytes?: number;
  /** Messages for the user (stderr). */
  readonly log: (line: string) => void;
}

/** ws's mask generator: all zeros (see `#session`). */
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/**
 * Memory for data frames: every full frame has the same size, so the buffers of frames
 * the socket has written are used again, instead of new pages for each frame (and the
 * garbage collections their external memory triggers). Holds a few buffers at most.
 */
class FramePool {
  readonly #size: number;
  readonly #free: ArrayBuffer[] = [];

  constructor(size: number) {
    this.#size = size;
  }

  alloc(size: number): Uint8Array {
    if (size > this.#size) return Buffer.allocUnsafe(size);
    const buf = this.#free.pop() ?? new ArrayBuffer(this.#size);
    return new Uint8Array(buf, 0, size);
  }

  /** `frame` (from `alloc`) is no longer used by anyone. */
  free(frame: Uint8Array): void {
    const buf = frame.buffer;
    if (buf instanceof ArrayBuffer && buf.byteLength === this.#size && frame.byteOffset === 0 && this.#free.length < 4 && !this.#free.includes(buf)) this.#free.push(buf);
  }
}

/** Refusals of a session that the same command can never get past. */
const PERMANENT_REFUSALS: ReadonlySet<string> = new Set([
  'ERR_AUTH_FAILED', 'ERR_AUTH_BAD_PROOF', 'ERR_PROTO_VERSION_MISMATCH', 'ERR_PROTO_WRONG_RESCUE', 'ERR_PROTO_WRONG_DEVICE',
]);

/** The assembler's Error answer to a handshake, with its code kept as `refusal`. */
function refused(url: string, code: string, message: string): ReaderError & { refusal: string } {
  return Object.assign(new ReaderError('ERR_LINK', url, `the assembler refused: ${code}: ${message}`), { refusal: code });
}

/** What the assembler said when a session opened. */
export type Welcome = WelcomeMessage;

/**
 * Ships the spool to the assembler over a websocket: handshake (Hello, Challenge,
 * Auth, Welcome with the server's proof), then every spooled piece in sequence order,
 * a window of unacknowledged bytes, and receipts that free the spool. A lost
 * connection is retried with backoff and everything not acknowledged is sent again.
 */
export class WsShipper {
  readonly #o: ShipperOptions;
  readonly #limits: Limits;
  #stopped = false;
  #ws: WebSocket | null = null;
  #welcomeWaiters: Array<(w: Welcome | null) => void> = [];
  #welcome: Welcome | null = null;
  #idleWaiters: Array<() => void> = [];
  #rejections = new Map<number, number>();
  #wakeRetry: (() => void) | null = null;
  #statusSource: (() => StatusMessage | null) | null = null;
  /** Sends a Status now, while a session is open. */
  #sendStatus: (() => void) | null = null;
  /** Pieces merged (receipts seen) in this run. */
  merged = 0;
  /** Connection state for progress lines. */
  state: 'connecting' | 'connected' | 'waiting' = 'connecting';

  constructor(options: ShipperOptions) {
    this.#o = options;
    this.#limits = options.limits ?? DEFAULT_LIMITS;
  }

  /**
   * A refusal retrying cannot cure (a wrong token, another rescue or device, another protocol
   * version), met while `firstWelcome` waited: the loop has stopped. Null otherwise.
   */
  fatal: Error | null = null;

  /** Start the connection loop (runs until `stop`). */
  start(): void {
    void this.#loop();
  }

  /** The first Welcome of this run, or null after `timeoutMs`. */
  firstWelcome(timeoutMs: number): Promise<Welcome | null> {
    if (this.#welcome) return Promise.resolve(this.#welcome);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(null), timeoutMs);
      this.#welcomeWaiters.push((w) => {
        clearTimeout(t);
        resolve(w);
      });
    });
  }

  /** Resolves when the spool is empty (everything acknowledged). */
  async drained(): Promise<void> {
    while (this.#o.spool.count > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * What to tell the assembler's live page: called about once a second while
   * connected (and once right after the Welcome); null sends nothing.
   */
  setStatusSource(source: (() => StatusMessage | null) | null): void {
    this.#statusSource = source;
  }

  stop(): void {
    this.#stopped = true;
    // the last figures (spool empty, phase finished) for the live page
    this.#sendStatus?.();
    this.#ws?.terminate();
    this.#wakeRetry?.();
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  async #loop(): Promise<void> {
    let backoff = 250;
    while (!this.#stopped) {
      try {
        await this.#session(() => {
          backoff = 250;
        });
      } catch (err) {
        // end the connection whatever happened, so its receipts stop touching the spool
        this.#ws?.terminate();
        if (this.#stopped) break;
        const code = (err as { code?: string }).code;
        const refusal = (err as { refusal?: string }).refusal ?? code;
        if (this.#welcome === null && this.#welcomeWaiters.length > 0 && refusal !== undefined && PERMANENT_REFUSALS.has(refusal)) {
          // refused for good while the run waits for its first Welcome (before reading anything): tell it now
          // rather than retry forever; later (the engine reading into the spool) the loop keeps retrying
          this.fatal = err as Error;
          this.#stopped = true;
          for (const w of this.#welcomeWaiters.splice(0)) w(null);
          break;
        }
        this.#o.log(`ddferry-reader: ${code ?? 'ERR_LINK'}: ${this.#o.url}: ${(err as Error).message} (retrying in ${(backoff / 1000).toFixed(1)} s)`);
      }
      if (this.#stopped) break;
      this.state = 'waiting';
      await new Promise<void>((r) => {
        // a referenced timer: while the engine waits for spool space, this retry is what keeps
        // the process alive; stop() cancels it
        const t = setTimeout(r, backoff);
        this.#wakeRetry = () => {
          clearTimeout(t);
          r();
        };
      });
      backoff = Math.min(backoff * 2, 10000);
    }
  }

  /** Of the pieces named, the seqs the spool holds under the same header hash: those it may delete (R5). */
  async #ours(refs: readonly PieceRef[]): Promise<number[]> {
    const out: number[] = [];
    for (const r of refs) {
      const hash = await this.#o.spool.headerHash(r.seq);
      if (hash === r.headerHash) out.push(r.seq);
      else if (hash !== undefined) this.#o.log(`ddferry-reader: ${this.#o.url} holds another piece under seq ${r.seq} (header hash ${r.headerHash}, ours ${hash}); ours is kept.`);
    }
    return out;
  }

  /** One connection, from handshake to close. */
  async #session(onWelcome: () => void): Promise<void> {
    const o = this.#o;
    this.state = 'connecting';
    // A zero mask: RFC 6455 masks client frames against cache poisoning by browser scripts, which does not apply
    // to this client; ws then skips the byte-by-byte XOR on both ends (it was 30 % of the reader's CPU time).
    // Integrity comes from the pieces' seal (AES-GCM) and xxh64, not from the mask.
    const ws = new WebSocket(o.url, {
      perMessageDeflate: false, maxPayload: this.#limits.maxMessageBytes, handshakeTimeout: 10000, generateMask: zeroMask,
    });
    this.#ws = ws;
    const inbox: Message[] = [];
    let inboxWaiter: (() => void) | null = null;
    let closed: Error | null = null;
    const wake = (): void => {
      const w = inboxWaiter;
      inboxWaiter = null;
      w?.();
    };
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      try {
        if (!isBinary) throw new ProtocolError('ERR_PROTO_MALFORMED', 'a text message', { peer: o.url });
        inbox.push(decodeEnvelope(data, this.#limits, o.url));
      } catch (err) {
        closed = err as Error;
        ws.close();
      }
      wake();
    });
    ws.on('close', () => {
      closed ??= new ReaderError('ERR_LINK', o.url, 'the connection closed');
      wake();
      for (const w of this.#idleWaiters.splice(0)) w();
    });
    ws.on('error', (err) => {
      closed = new ReaderError('ERR_LINK', o.url, err.message, { cause: err });
      wake();
    });
    const next = async (): Promise<Message> => {
      for (;;) {
        const m = inbox.shift();
        if (m) return m;
        if (closed) throw closed;
        await new Promise<void>((resolve) => {
          inboxWaiter = resolve;
        });
      }
    };
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const send = (bytes: Uint8Array): void => ws.send(bytes, { binary: true });
    const clientNonce = makeNonce();
    send(encodeEnvelope({
      type: 'hello', protocolVersion: PROTOCOL_VERSION, rescueId: o.rescueId, fingerprint: o.fingerprint, clientNonce,
      readerName: hostname(), chunkSize: o.chunkSize, sectorSize: o.sectorSize,
    }, this.#limits));
    const challenge = await next();
    if (challenge.type === 'error') throw refused(o.url, challenge.code, challenge.message);
    if (challenge.type !== 'challenge') throw new ProtocolError('ERR_PROTO_OUT_OF_ORDER', `expected a challenge, got ${challenge.type}`, { peer: o.url });
    send(encodeEnvelope({ type: 'auth', hmac: authHmac(o.secret, challenge.serverNonce, clientNonce, o.rescueId) }, this.#limits));
    const welcome = await next();
    if (welcome.type === 'error') throw refused(o.url, welcome.code, welcome.message);
    if (welcome.type !== 'welcome') throw new ProtocolError('ERR_PROTO_OUT_OF_ORDER', `expected a welcome, got ${welcome.type}`, { peer: o.url });
    if (!verifyServerProof(o.secret, challenge.serverNonce, clientNonce, o.rescueId, welcome.serverProof)) {
      throw new ProtocolError('ERR_AUTH_BAD_PROOF', 'the assembler does not know the shared secret: check --token-file on both sides', { peer: o.url });
    }
    onWelcome();
    const sendStatus = (): void => {
      const status = this.#statusSource?.() ?? null;
      if (status === null || ws.readyState !== WebSocket.OPEN) return;
      try {
        send(encodeEnvelope(status, this.#limits));
      } catch (err) {
        // a figure the codec refuses must not stop the rescue: stop telling the live page instead
        if (!isProtocolError(err)) throw err;
        this.#statusSource = null;
        o.log(`ddferry-reader: ${err.code}: status for the live page not sent: ${err.message}`);
      }
    };
    const statusTimer = setInterval(sendStatus, STATUS_INTERVAL_MS);
    statusTimer.unref();
    this.#sendStatus = sendStatus;
    ws.once('close', () => {
      clearInterval(statusTimer);
      if (this.#sendStatus === sendStatus) this.#sendStatus = null;
    });
    sendStatus();
    this.state = 'connected';
    o.spool.notePeerSeqs(welcome.maxMergedSeq);
    // pieces the assembler already holds: drop those it names with their own header hash (R5)
    const held = o.spool.seqs();
    for (let i = 0; i < held.length; i += this.#limits.maxSeqs) send(encodeEnvelope({ type: 'query', seqs: held.slice(i, i + this.#limits.maxSeqs) }, this.#limits));
    for (let i = 0; i < held.length; i += this.#limits.maxSeqs) {
      for (;;) {
        const answer = await next();
        if (answer.type === 'error') throw new ReaderError('ERR_LINK', o.url, `the assembler reported ${answer.code}: ${answer.message}`);
        if (answer.type !== 'answer') throw new ProtocolError('ERR_PROTO_OUT_OF_ORDER', `expected an answer, got ${answer.type}`, { peer: o.url });
        await o.spool.remove(await this.#ours(answer.merged));
        if (!answer.more) break;
      }
    }
    this.#welcome = welcome;
    for (const w of this.#welcomeWaiters.splice(0)) w(welcome);

    // receipts, in the background of the sender
    const inFlight = new Map<number, number>();
    let inFlightBytes = 0;
    let flightWaiter: (() => void) | null = null;
    const receive = async (): Promise<void> => {
      for (;;) {
        const m = await next();
        if (m.type === 'receipt') {
          const done = await this.#ours(m.merged);
          // keep them in flight until the spool has deleted them, so the sender never picks one again
          await o.spool.remove(done);
          for (const { seq: s } of m.merged) {
            inFlightBytes -= inFlight.get(s) ?? 0;
            inFlight.delete(s);
          }
          this.merged += done.length;
          for (const r of m.rejected) {
            inFlightBytes -= inFlight.get(r.seq) ?? 0;
            inFlight.delete(r.seq);
            const n = (this.#rejections.get(r.seq) ?? 0) + 1;
            this.#rejections.set(r.seq, n);
            o.log(`ddferry-reader: ${r.code}: ${o.url} rejected piece ${r.seq}: ${r.reason} (sending it again from the spool, attempt ${n + 1})`);
          }
          const w = flightWaiter;
          flightWaiter = null;
          w?.();
          if (o.spool.count === 0) for (const w2 of this.#idleWaiters.splice(0)) w2();
        } else if (m.type === 'error') {
          throw new ReaderError('ERR_LINK', o.url, `the assembler reported ${m.code}: ${m.message}`);
        }
      }
    };
    const receiving = receive();
    receiving.catch(() => {
      const w = flightWaiter;
      flightWaiter = null;
      w?.();
    });
    const window = o.windowBytes ?? 64 << 20;
    const frames = new FramePool(this.#limits.maxFrameBytes + 64);
    for (;;) {
      if (closed) throw closed;
      const pending = o.spool.seqs().filter((s) => !inFlight.has(s));
      if (pending.length === 0 || inFlightBytes >= window) {
        await Promise.race([
          o.spool.added(),
          new Promise<void>((resolve) => {
            flightWaiter = resolve;
          }),
          receiving.then(() => undefined, () => undefined),
        ]);
        continue;
      }
      const seq = pending[0]!;
      let piece;
      try {
        piece = await o.spool.take(seq);
      } catch (err) {
        if (!o.spool.has(seq)) continue; // acknowledged meanwhile
        throw err;
      }
      inFlight.set(seq, piece.dataSize + 1);
      inFlightBytes += piece.dataSize + 1;
      for (const frame of encodePieceFrames(piece, this.#limits, (size) => frames.alloc(size))) {
        if (closed) throw closed;
        // a data frame's memory serves again once the socket has taken it (not after an error)
        ws.send(frame, { binary: true }, (err) => {
          if (!err) frames.free(frame);
        });
        while (ws.bufferedAmount > 8 << 20 && !closed) await new Promise((r) => setTimeout(r, 5));
      }
    }
  }
}
