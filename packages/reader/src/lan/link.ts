import { hostname } from 'node:os';

import {
  type Fingerprint, type Limits, type Message, type PieceRef, type StatusMessage, type WelcomeMessage, DEFAULT_LIMITS, PROTOCOL_VERSION, ProtocolError,
  authHmac, decodeEnvelope, encodeEnvelope, encodePieceFrames, isProtocolError, makeNonce, verifyServerProof,
} from '@ddferry/protocol';
import WebSocket from 'ws';

import { ReaderError } from '../errors.js';
import type { Spool } from '../job/spool.js';
import { STATUS_INTERVAL_MS } from './status-report.js';

export interface LinkOptions {
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
  /** Unacknowledged bytes in flight at most (default 32 MiB: a gigabit link for about a quarter of a second, the time a receipt takes). */
  readonly windowBytes?: number;
  /** Messages for the user (stderr). */
  readonly log: (line: string) => void;
  /** A Welcome arrived (each session), before anything is sent. */
  readonly onWelcome?: (welcome: WelcomeMessage, first: boolean) => Promise<void>;
  /** The seqs to ask the assembler about after its Welcome (the spool's, the ledger's). Default: the spool's. */
  readonly held?: () => number[];
  /**
   * The assembler names pieces it merged (an Answer or a Receipt): settle them, by content.
   * @returns the seqs dropped from the spool. Default: drop spooled pieces whose header hash matches.
   */
  readonly onMerged?: (refs: readonly PieceRef[]) => Promise<number[]>;
  /** The assembler holds another piece under this spooled piece's number (A4): give ours a new one. */
  readonly onConflict?: (seq: number) => Promise<void>;
  /** The assembler refused this reader for good (a wrong token, rescue or device): the run must stop. */
  readonly onFatal?: (err: ReaderError) => void;
  /** Milliseconds between pings [10 000]. */
  readonly pingMs?: number;
  /** A peer silent this long (no message, no pong, no data leaving) is dead [30 000]. */
  readonly deadMs?: number;
  /** The longest wait between connection attempts [10 000]. */
  readonly maxBackoffMs?: number;
  /** Milliseconds a connection and its handshake may take [10 000]. */
  readonly connectMs?: number;
}

/** The link's state, for progress. */
export type LinkState = 'connecting' | 'connected' | 'waiting';

export interface LinkSnapshot {
  readonly url: string;
  readonly state: LinkState;
  /** Milliseconds since the epoch when the state began (for `waiting`/`connecting`: since the link was last up, or the start). */
  readonly since: number;
  /** The last error of the link, or null. */
  readonly lastError: string | null;
  /** Pieces merged (receipts seen) in this run. */
  readonly merged: number;
  /** Connections made in this run. */
  readonly sessions: number;
}

/** Free data-frame buffers the link keeps (see `FramePool`). */
const FRAME_POOL_BUFFERS = 2;

/** ws's mask generator: all zeros (see `#session`). */
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/**
 * Memory for data frames: every full frame has the same size, so the buffers of frames
 * the socket has written are used again, instead of new pages for each frame (and the
 * garbage collections their external memory triggers). Holds `FRAME_POOL_BUFFERS` at
 * most: the sender waits while the socket holds over 8 MiB, two 4 MiB frames (4 before:
 * 8 MiB more of the reader's peak RSS, no faster).
 */
class FramePool {
  readonly #size: number;
  readonly #free: ArrayBuffer[] = [];
  /** The buffers `alloc` made. */
  readonly #made = new WeakSet<ArrayBuffer>();

  constructor(size: number) {
    this.#size = size;
  }

  alloc(size: number): Uint8Array {
    if (size > this.#size) return Buffer.allocUnsafe(size);
    let buf = this.#free.pop();
    if (buf === undefined) {
      buf = new ArrayBuffer(this.#size);
      this.#made.add(buf);
    }
    return new Uint8Array(buf, 0, size);
  }

  /** `frame` is no longer used by anyone: kept for `alloc` if `alloc` made it (another message is ignored). */
  free(frame: Uint8Array): void {
    const buf = frame.buffer;
    if (buf instanceof ArrayBuffer && this.#made.has(buf) && frame.byteOffset === 0 && this.#free.length < FRAME_POOL_BUFFERS && !this.#free.includes(buf)) this.#free.push(buf);
  }
}

/** The first wait before a rejected piece is sent again; it doubles with each rejection of that piece. */
const REJECTION_BACKOFF_MS = 250;
/** The longest wait before a rejected piece is sent again. */
const MAX_REJECTION_BACKOFF_MS = 30_000;

/** Milliseconds before a piece rejected `n` times (n ≥ 1) is sent again. */
function rejectionBackoff(n: number): number {
  return Math.min(MAX_REJECTION_BACKOFF_MS, REJECTION_BACKOFF_MS * 2 ** Math.min(n - 1, 20));
}

/** A send backlog that, while it shrinks, proves the peer is reading. */
const FLOWING_BACKLOG = 256 << 10;

/** Refusals of a session that the same command can never get past. */
const PERMANENT_REFUSALS: ReadonlySet<string> = new Set([
  'ERR_AUTH_FAILED', 'ERR_AUTH_BAD_PROOF', 'ERR_PROTO_VERSION_MISMATCH', 'ERR_PROTO_WRONG_RESCUE', 'ERR_PROTO_WRONG_DEVICE',
]);

/** The assembler's Error answer to a handshake, with its code kept as `refusal`. */
function refused(url: string, code: string, message: string): ReaderError & { refusal: string } {
  return Object.assign(new ReaderError('ERR_LINK', url, `the assembler refused: ${code}: ${message}`), { refusal: code });
}

/**
 * The link to the assembler: handshake (Hello, Challenge, Auth, Welcome with the
 * server's proof), then every spooled piece in sequence order within a window of
 * unacknowledged bytes, and receipts that free the spool. It pings the assembler and
 * takes a peer silent for `deadMs` (host gone, process frozen) for dead: the
 * connection is closed and made again, with a backoff of at most `maxBackoffMs`;
 * everything not acknowledged is sent again.
 */
export class Link {
  readonly #o: LinkOptions;
  readonly #limits: Limits;
  #stopped = false;
  #ws: WebSocket | null = null;
  #welcomeWaiters: Array<(w: WelcomeMessage | null) => void> = [];
  #welcome: WelcomeMessage | null = null;
  #idleWaiters: Array<() => void> = [];
  /** Pieces rejected and not merged since: how many times, and when they may be sent again (ms since the epoch). */
  #rejections = new Map<number, { count: number; resendAt: number }>();
  #wakeRetry: (() => void) | null = null;
  #statusSource: (() => StatusMessage | null) | null = null;
  /** Sends a Status now, while a session is open. */
  #sendStatus: (() => void) | null = null;
  #state: LinkState = 'connecting';
  #since = Date.now();
  #lastError: string | null = null;
  #mergedCount = 0;
  #sessions = 0;
  /**
   * A refusal retrying cannot cure (a wrong token, another rescue or device, another
   * protocol version): the link has stopped. Null otherwise.
   */
  fatal: ReaderError | null = null;

  constructor(options: LinkOptions) {
    this.#o = options;
    this.#limits = options.limits ?? DEFAULT_LIMITS;
  }

  snapshot(): LinkSnapshot {
    return { url: this.#o.url, state: this.#state, since: this.#since, lastError: this.#lastError, merged: this.#mergedCount, sessions: this.#sessions };
  }

  /** Pieces merged (receipts seen) in this run. */
  get merged(): number {
    return this.#mergedCount;
  }

  /** Pieces the assembler names as merged: settled by content (`onMerged`). @returns the seqs dropped from the spool. */
  async #merged(refs: readonly PieceRef[]): Promise<number[]> {
    if (this.#o.onMerged) return this.#o.onMerged(refs);
    const drop: number[] = [];
    for (const r of refs) if ((await this.#o.spool.headerHash(r.seq)) === r.headerHash) drop.push(r.seq);
    await this.#o.spool.remove(drop);
    return drop;
  }

  #setState(state: LinkState): void {
    if (state === this.#state) return;
    // 'since' for a link that is not up counts from when it went down, not from each retry
    if (state === 'connected' || this.#state === 'connected') this.#since = Date.now();
    this.#state = state;
  }

  /** Start the connection loop (runs until `stop`). */
  start(): void {
    void this.#loop();
  }

  /** The first Welcome of this run, or null after `timeoutMs` (or a fatal refusal). */
  firstWelcome(timeoutMs: number): Promise<WelcomeMessage | null> {
    if (this.#welcome || this.fatal) return Promise.resolve(this.#welcome);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(null), timeoutMs);
      this.#welcomeWaiters.push((w) => {
        clearTimeout(t);
        resolve(w);
      });
    });
  }

  /** Resolves when the spool is empty (everything acknowledged), or the link stopped. */
  async drained(): Promise<void> {
    while (this.#o.spool.count > 0 && !this.#stopped) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * What to tell the assembler's live page: called about once a second while
   * connected (and once right after the Welcome); null sends nothing.
   */
  setStatusSource(source: (() => StatusMessage | null) | null): void {
    this.#statusSource = source;
  }

  /** Close the connection and stop (the last Status first, for the live page). */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#sendStatus?.();
    const ws = this.#ws;
    if (ws) {
      ws.close(1000, 'reader stopping');
      // a peer that does not answer the close is not waited for
      setTimeout(() => ws.terminate(), 500).unref();
    }
    this.#wakeRetry?.();
    for (const w of this.#idleWaiters.splice(0)) w();
    for (const w of this.#welcomeWaiters.splice(0)) w(null);
  }

  async #loop(): Promise<void> {
    let backoff = 250;
    const maxBackoff = this.#o.maxBackoffMs ?? 10_000;
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
        this.#lastError = `${refusal ?? 'ERR_LINK'}: ${(err as Error).message.replace(/^the assembler refused: [A-Z_]+: /, '')}`;
        if (refusal !== undefined && PERMANENT_REFUSALS.has(refusal)) {
          // the same command can never get past it: stop, and say so
          this.fatal = new ReaderError('ERR_LINK', this.#o.url, `${this.#o.url} refused this reader: ${(err as Error).message.replace(/^.*?the assembler refused: /, '').replace(/\.+$/, '')}.`, {
            hint: refusal.startsWith('ERR_AUTH') ? 'Copy the same token file to both machines (--token-file), then run the same command again.'
              : 'Point the reader at the assembler of this rescue (each rescue needs its own image), then run the same command again.',
          });
          this.#stopped = true;
          for (const w of this.#welcomeWaiters.splice(0)) w(null);
          for (const w of this.#idleWaiters.splice(0)) w();
          this.#o.onFatal?.(this.fatal);
          break;
        }
        this.#o.log(`ddferry-reader: ${code ?? 'ERR_LINK'}: ${this.#o.url}: ${(err as Error).message} (retrying in ${(backoff / 1000).toFixed(1)} s)`);
      }
      if (this.#stopped) break;
      this.#setState('waiting');
      await new Promise<void>((r) => {
        // a referenced timer: while the engine waits for spool space, this retry keeps the process alive; stop() cancels it
        const t = setTimeout(r, backoff);
        this.#wakeRetry = () => {
          clearTimeout(t);
          r();
        };
      });
      backoff = Math.min(backoff * 2, maxBackoff);
    }
  }

  /** One connection, from handshake to close. */
  async #session(onWelcome: () => void): Promise<void> {
    const o = this.#o;
    this.#setState('connecting');
    // A zero mask: RFC 6455 masks client frames against cache poisoning by browser scripts, which does not apply
    // to this client; ws then skips the byte-by-byte XOR on both ends (it was 30 % of the reader's CPU time).
    // Integrity comes from the pieces' seal (AES-GCM) and xxh64, not from the mask.
    const ws = new WebSocket(o.url, {
      perMessageDeflate: false, maxPayload: this.#limits.maxMessageBytes, handshakeTimeout: o.connectMs ?? 10_000, generateMask: zeroMask,
    });
    this.#ws = ws;
    const inbox: Message[] = [];
    let inboxWaiter: (() => void) | null = null;
    let closed: Error | null = null;
    let lastHeard = Date.now();
    const wake = (): void => {
      const w = inboxWaiter;
      inboxWaiter = null;
      w?.();
    };
    const fail = (err: Error): void => {
      closed ??= err;
      wake();
      for (const w of this.#idleWaiters.splice(0)) w();
    };
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      lastHeard = Date.now();
      try {
        if (!isBinary) throw new ProtocolError('ERR_PROTO_MALFORMED', 'a text message', { peer: o.url });
        inbox.push(decodeEnvelope(data, this.#limits, o.url));
      } catch (err) {
        fail(err as Error);
        ws.close();
      }
      wake();
    });
    ws.on('pong', () => {
      lastHeard = Date.now();
    });
    ws.on('close', () => fail(new ReaderError('ERR_LINK', o.url, 'the connection closed')));
    ws.on('error', (err) => fail(new ReaderError('ERR_LINK', o.url, err.message, { cause: err })));

    // the peer is alive while it answers (a message, a pong), or while a backlog of data we send keeps
    // leaving us (a busy peer answers a ping only after the data queued before it); a stopped peer's kernel
    // still takes a little, so a small flow proves nothing
    const deadMs = o.deadMs ?? 30_000;
    let lastBuffered = 0;
    let lastFlow = 0;
    const keepalive = setInterval(() => {
      const now = Date.now();
      const buffered = ws.bufferedAmount;
      if (buffered < lastBuffered && lastBuffered >= FLOWING_BACKLOG) lastFlow = now;
      lastBuffered = buffered;
      if (now - lastHeard >= deadMs && now - lastFlow >= deadMs) {
        fail(new ReaderError('ERR_LINK', o.url, `no answer for ${Math.round((now - lastHeard) / 1000)} s (the assembler's host is gone or its process is frozen): closing the connection`));
        ws.terminate();
        return;
      }
      if (ws.readyState === WebSocket.OPEN && now - lastHeard >= (o.pingMs ?? 10_000) / 2) ws.ping();
    }, Math.min(1000, (o.pingMs ?? 10_000) / 2));
    keepalive.unref();
    try {
      await this.#run(ws, () => closed, fail, async () => {
        for (;;) {
          const m = inbox.shift();
          if (m) return m;
          if (closed) throw closed;
          await new Promise<void>((resolve) => {
            inboxWaiter = resolve;
          });
        }
      }, onWelcome);
    } finally {
      clearInterval(keepalive);
    }
  }

  async #run(ws: WebSocket, closed: () => Error | null, fail: (err: Error) => void, next: () => Promise<Message>, onWelcome: () => void): Promise<void> {
    const o = this.#o;
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('close', () => reject(closed() ?? new ReaderError('ERR_LINK', o.url, 'the connection closed')));
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
    ++this.#sessions;
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
    // what the image already holds settles the spool before anything is sent: the seqs held, asked about
    const first = this.#welcome === null;
    await o.onWelcome?.(welcome, first);
    const held = o.held?.() ?? o.spool.seqs();
    const per = Math.max(1, this.#limits.maxSeqs);
    for (let i = 0; i < held.length; i += per) send(encodeEnvelope({ type: 'query', seqs: held.slice(i, i + per) }, this.#limits));
    for (let i = 0; i < held.length; i += per) {
      for (;;) {
        const answer = await next();
        if (answer.type === 'error') throw new ReaderError('ERR_LINK', o.url, `the assembler reported ${answer.code}: ${answer.message}`);
        if (answer.type !== 'answer') throw new ProtocolError('ERR_PROTO_OUT_OF_ORDER', `expected an answer, got ${answer.type}`, { peer: o.url });
        await this.#merged(answer.merged);
        if (!answer.more) break;
      }
    }
    this.#welcome = welcome;
    this.#setState('connected');
    this.#lastError = null;
    sendStatus();
    for (const w of this.#welcomeWaiters.splice(0)) w(welcome);

    // receipts, in the background of the sender
    const inFlight = new Map<number, number>();
    let inFlightBytes = 0;
    let flightWaiter: (() => void) | null = null;
    const receive = async (): Promise<void> => {
      for (;;) {
        const m = await next();
        if (m.type === 'receipt') {
          // keep them in flight until the spool has deleted them, so the sender never picks one again
          const done = await this.#merged(m.merged);
          for (const { seq: s } of m.merged) {
            inFlightBytes -= inFlight.get(s) ?? 0;
            inFlight.delete(s);
            this.#rejections.delete(s);
          }
          this.#mergedCount += done.length;
          for (const r of m.rejected) {
            inFlightBytes -= inFlight.get(r.seq) ?? 0;
            inFlight.delete(r.seq);
            if (r.code === 'ERR_PIECE_SEQ_CONFLICT' && o.onConflict) {
              // the assembler holds another piece under this number: ours goes again under a new one
              await o.onConflict(r.seq);
              continue;
            }
            // read back next time, the piece is opened and checked whole before it is sent again
            o.spool.distrust(r.seq);
            const n = (this.#rejections.get(r.seq)?.count ?? 0) + 1;
            const wait = rejectionBackoff(n);
            this.#rejections.set(r.seq, { count: n, resendAt: Date.now() + wait });
            o.log(`ddferry-reader: ${r.code}: ${o.url} rejected piece ${r.seq}: ${r.reason} (sending it again from the spool in ${wait / 1000} s, attempt ${n + 1})`);
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
    receiving.catch((err: unknown) => {
      fail(err as Error);
      const w = flightWaiter;
      flightWaiter = null;
      w?.();
    });
    const window = o.windowBytes ?? 32 << 20;
    const frames = new FramePool(this.#limits.maxFrameBytes + 64);
    for (;;) {
      const c = closed();
      if (c) throw c;
      const now = Date.now();
      let nextResend = Number.POSITIVE_INFINITY;
      const pending = o.spool.seqs().filter((s) => {
        if (inFlight.has(s)) return false;
        const at = this.#rejections.get(s)?.resendAt ?? 0;
        if (at > now) nextResend = Math.min(nextResend, at);
        return at <= now;
      });
      if (pending.length === 0 || inFlightBytes >= window) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          o.spool.added(),
          new Promise<void>((resolve) => {
            flightWaiter = resolve;
            // a rejected piece's backoff ends
            if (nextResend !== Number.POSITIVE_INFINITY) timer = setTimeout(resolve, nextResend - now);
          }),
          receiving.then(() => undefined, () => undefined),
        ]);
        clearTimeout(timer);
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
      // a piece in a block of the spool's own is sent as views of it (each message's prefix
      // written in the block's room before its frame): the block is the link's until the
      // socket has taken the last message, then serves the next piece (not after an error)
      const owned = o.spool.owns(piece);
      const messages = piece.frames.length + 2;
      let k = 0;
      for (const frame of encodePieceFrames(piece, this.#limits, (size) => frames.alloc(size), { inPlace: owned })) {
        if (closed()) throw closed();
        const last = ++k === messages;
        // a data frame's memory serves again once the socket has taken it (not after an error)
        ws.send(frame, { binary: true }, (err) => {
          if (err) return;
          frames.free(frame);
          if (last) o.spool.recycle(piece);
        });
        while (ws.bufferedAmount > 8 << 20 && !closed()) await new Promise((r) => setTimeout(r, 5));
      }
    }
  }
}
