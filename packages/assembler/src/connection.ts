/**
 * One reader's websocket connection to the assembler, from Hello to close.
 *
 * | state | accepts | then |
 * |---|---|---|
 * | `hello` | Hello (same protocol version) | Challenge → `auth` |
 * | `auth` | Auth (valid HMAC of the shared secret) | pick and bind the image → Welcome → `ready` |
 * | `binding` | nothing (the reader waits for Welcome) | |
 * | `ready` | Query, piece frames, Status, Error | Answer; each sealed piece opened and checked, then to the image's merge queue; Receipt once merged |
 *
 * Anything else gets an Error and the connection is closed. A piece that fails
 * to open or validate, or whose seq is another piece's (A4), is answered with a
 * Receipt rejecting it; nothing of it is written.
 */
import type { HelloMessage, Limits, Message, OpenedPiece, PieceRef, Secret } from '@ddferry/protocol';
import {
  countDroppedBuffers, decodeEnvelope, deriveRescueKeys, describeFingerprint, encodeEnvelope, headerHashOf, isProtocolError, makeNonce, peekMessageType,
  PieceCollector, pieceRefsPerMessage, printable, PROTOCOL_VERSION, serverProof, verifyAuthHmac,
} from '@ddferry/protocol';
import type { RawData, WebSocket } from 'ws';

import type { Door } from './doors.js';
import type { Log } from './log.js';

export type { Log } from './log.js';
import { errnoOf, messageOf } from './errors.js';
import type { ReaderStatusSink } from './live/live-feed.js';
import type { MemoryBudget } from './memory-budget.js';
import type { MergeQueue } from './merge.js';
import type { ConnectionProgress } from './progress.js';
import { answerQuery, encodeWelcome } from './welcome.js';

/** Where the server's messages go; the CLI prints them on stderr. */
/** What every connection of a server shares. */
export interface ConnectionContext {
  readonly limits: Limits;
  readonly secret: Secret;
  readonly log: Log;
  readonly queues: readonly MergeQueue[];
  readonly maxUnmergedBytes: number;
  readonly maxUnmergedPieces: number;
  readonly handshakeTimeoutMs: number;
  /** Where per-reader progress goes (serve's lines, redraws, JSON). Default none. */
  readonly progress?: ConnectionProgress | undefined;
  /** Where readers' Status messages go (the live page). Default none. */
  readonly live?: ReaderStatusSink | undefined;
  /** Piece bytes held over all connections; a piece that does not fit waits, its socket unread. Default: no cap. */
  readonly memory?: MemoryBudget | undefined;
}

/** Bytes read from a peer before it authenticates, in units of `maxHandshakeBytes` (Hello, Auth, pings, framing). */
const HANDSHAKE_BUDGET = 4;

/** Websocket close codes (RFC 6455). */
export const CLOSE = Object.freeze({ normal: 1000, goingAway: 1001, policy: 1008, tooBig: 1009, internal: 1011, tryLater: 1013 });

/** Longest text put in an Error or a rejection on the wire (the limit is in UTF-8 bytes). */
const MAX_WIRE_TEXT = 1000;

/** Codes of the image that have a protocol name the reader knows. */
const WIRE_CODE: Readonly<Record<string, string>> = {
  ERR_IMAGE_WRONG_RESCUE: 'ERR_PROTO_WRONG_RESCUE',
  ERR_IMAGE_WRONG_PLAN: 'ERR_PROTO_WRONG_RESCUE',
  ERR_IMAGE_WRONG_DEVICE: 'ERR_PROTO_WRONG_DEVICE',
  ERR_PLAN_BAD_SIZE: 'ERR_PROTO_BAD_FIELD',
};

type State = 'hello' | 'auth' | 'binding' | 'ready' | 'closed';

function codeOf(err: unknown): string {
  return errnoOf(err) ?? 'ERR_INTERNAL';
}


export class Connection {
  readonly #ws: WebSocket;
  readonly #ctx: ConnectionContext;
  #peer: string;
  #state: State = 'hello';
  #hello: HelloMessage | undefined;
  #serverNonce: Uint8Array | undefined;
  #queue: MergeQueue | undefined;
  #collector: PieceCollector | undefined;
  /** A rejected piece whose remaining frames are dropped. */
  #discard: number | undefined;
  #unmergedBytes = 0;
  #unmergedPieces = 0;
  #paused = false;
  #acks: PieceRef[] = [];
  #ackTimer: NodeJS.Immediate | undefined;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  readonly #door: Door | undefined;
  /** Memory budget bytes taken for the piece being received. */
  #reserved = 0;
  /** Messages waiting, unread, until the memory budget grants the piece header first among them. */
  #held: Uint8Array[] | undefined;
  #cancelHold: (() => void) | undefined;
  readonly #inflight = new Set<Promise<void>>();
  /** Set by the server's keepalive: a pong arrived since the last ping. */
  alive = true;

  /**
   * @param door the connection's part of the server's doors (doors.ts): what
   *   it may read before authenticating, token guesses, reader slots. Default none.
   */
  constructor(ws: WebSocket, peer: string, ctx: ConnectionContext, door?: Door) {
    this.#ws = ws;
    this.#ctx = ctx;
    this.#peer = peer;
    this.#door = door;
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('error', (err) => this.#onSocketError(err));
    ws.on('close', () => this.#onClose());
    this.#handshakeTimer = setTimeout(() => {
      this.#fail('ERR_HANDSHAKE_TIMEOUT', `No handshake within ${ctx.handshakeTimeoutMs} ms.`, CLOSE.policy);
    }, ctx.handshakeTimeoutMs);
    if (door !== undefined) {
      door.onEvict((reason) => this.#fail('ERR_SERVER_BUSY', reason, CLOSE.tryLater));
      const max = HANDSHAKE_BUDGET * Math.min(ctx.limits.maxHandshakeBytes, ctx.limits.maxMessageBytes);
      door.watch(max, (bytes) => this.#fail('ERR_HANDSHAKE_TOO_LARGE', `${bytes} bytes arrived before authentication; at most ${max} are read from a peer before it proves it knows the token.`, CLOSE.tooBig));
    }
  }

  /** The peer's address, and its reader name once known. */
  get peer(): string {
    return this.#peer;
  }

  get ws(): WebSocket {
    return this.#ws;
  }

  /**
   * Stop reading, wait for this connection's pieces to be merged, send their
   * receipt, and close with 1001 (going away).
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#state === 'closed') return;
    this.#ws.pause();
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
    this.#flushAcks();
    this.#close(CLOSE.goingAway, 'assembler stopping');
    // Read again so the peer's closing frame arrives; messages are ignored while stopping.
    this.#ws.resume();
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.#state === 'closed' || this.#stopping) return;
    if (!isBinary) {
      this.#fail('ERR_PROTO_MALFORMED', 'A text message arrived; ddferry speaks binary messages only.', CLOSE.policy);
      return;
    }
    const bytes = Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data;
    if (this.#held !== undefined) {
      this.#held.push(bytes);
      return;
    }
    if (this.#state !== 'ready') {
      // before the lock only Hello and Auth are decoded, and only in their turn
      const type = peekMessageType(bytes);
      const expected = this.#state === 'hello' ? 'hello' : this.#state === 'auth' ? 'auth' : 'nothing before welcome';
      if (type !== expected) {
        if (type === undefined) this.#fail('ERR_PROTO_MALFORMED', `A message of ${bytes.length} bytes arrived that is not one ddferry envelope; expected ${expected}.`, CLOSE.policy);
        else this.#fail('ERR_PROTO_OUT_OF_ORDER', `A ${type} message arrived; expected ${expected}.`, CLOSE.policy);
        return;
      }
    }
    let msg: Message;
    try {
      msg = decodeEnvelope(bytes, this.#ctx.limits, this.#peer);
    } catch (err) {
      if (!isProtocolError(err)) throw err;
      if (this.#state === 'ready' && err.code.startsWith('ERR_PIECE_') && err.seq !== undefined) {
        this.#reject(err.seq, '', err.code, err.message);
        this.#collector?.reset();
        this.#release();
        this.#discard = err.seq;
        return;
      }
      this.#fail(err.code, err.message, err.code === 'ERR_PROTO_MESSAGE_TOO_LARGE' ? CLOSE.tooBig : CLOSE.policy);
      return;
    }
    try {
      this.#dispatch(msg);
    } catch (err) {
      this.#ctx.log.error(`${this.#peer}: internal error: ${(err as Error).stack ?? String(err)}`);
      this.#fail('ERR_INTERNAL', `The assembler failed on a ${msg.type} message: ${messageOf(err)}`, CLOSE.internal);
    }
    // the message's bytes are deciphered or copied into the piece: its buffer is garbage now,
    // collected at the next frame's (a collection here, with the buffer still held, would
    // move it to the old generation)
    countDroppedBuffers(bytes.length);
  }

  #dispatch(msg: Message): void {
    switch (this.#state) {
      case 'hello':
        if (msg.type !== 'hello') return this.#unexpected(msg, 'hello');
        return this.#onHello(msg);
      case 'auth':
        if (msg.type !== 'auth') return this.#unexpected(msg, 'auth');
        this.#state = 'binding';
        void this.#onAuth(msg.hmac);
        return;
      case 'binding':
        return this.#unexpected(msg, 'nothing before welcome');
      case 'ready':
        switch (msg.type) {
          case 'pieceHeader':
          case 'pieceData':
          case 'pieceEnd':
            return this.#onPieceMessage(msg);
          case 'query':
            for (const answer of answerQuery(this.#queue!.image, msg.seqs, this.#ctx.limits)) this.#send(answer);
            return;
          case 'status':
            this.#ctx.live?.readerStatus(this, { peer: this.#peer, rescueId: this.#hello!.rescueId, image: this.#queue!.image.path }, msg);
            return;
          case 'error':
            this.#ctx.log.warn(`${this.#peer}: the reader reports ${printable(msg.code, 64)}: ${printable(msg.message, 1000)}`);
            this.#close(CLOSE.normal, 'error received');
            return;
          default:
            return this.#unexpected(msg, 'piece frames, status or error');
        }
      case 'closed':
        return;
    }
  }

  #unexpected(msg: Message, expected: string): void {
    this.#fail('ERR_PROTO_OUT_OF_ORDER', `A ${msg.type} message arrived; expected ${expected}.`, CLOSE.policy);
  }

  #onHello(hello: HelloMessage): void {
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      this.#fail('ERR_PROTO_VERSION_MISMATCH', `The reader speaks protocol version ${hello.protocolVersion}; this assembler speaks ${PROTOCOL_VERSION}.`, CLOSE.policy);
      return;
    }
    this.#hello = hello;
    this.#serverNonce = makeNonce();
    this.#state = 'auth';
    this.#send({ type: 'challenge', serverNonce: this.#serverNonce, protocolVersion: PROTOCOL_VERSION });
  }

  /** The image for the rescue: the one bound to it, else the first unbound one. */
  #pickQueue(rescueId: string): MergeQueue | undefined {
    const { queues } = this.#ctx;
    return queues.find((q) => q.image.binding?.rescueId === rescueId) ?? queues.find((q) => q.image.binding === undefined);
  }

  async #onAuth(hmac: Uint8Array): Promise<void> {
    const hello = this.#hello!;
    const nonce = this.#serverNonce!;
    const { secret, log } = this.#ctx;
    const wait = this.#door?.authWait() ?? 0;
    if (wait > 0) {
      this.#fail('ERR_AUTH_THROTTLED', `Too many failed authentications from ${this.#door!.address}: the token is not checked; try again in ${Math.ceil(wait / 1000)} s.`, CLOSE.tryLater);
      return;
    }
    if (!verifyAuthHmac(secret, nonce, hello.clientNonce, hello.rescueId, hmac)) {
      this.#door?.authFailed();
      this.#fail('ERR_AUTH_FAILED', `The reader's Auth for rescue ${hello.rescueId} does not verify with this assembler's token.`, CLOSE.policy);
      return;
    }
    if (this.#door !== undefined && !this.#door.enterAsReader()) {
      this.#fail('ERR_SERVER_BUSY', 'Every reader slot of the assembler is taken; try again later.', CLOSE.tryLater);
      return;
    }
    // authenticated: binding the image may take its time
    clearTimeout(this.#handshakeTimer);
    if (hello.readerName !== '') this.#peer = `${this.#peer} (${printable(hello.readerName, 64)})`;
    const queue = this.#pickQueue(hello.rescueId);
    if (queue === undefined) {
      const taken = this.#ctx.queues.map((q) => `${q.image.path} belongs to rescue ${q.image.binding!.rescueId} (${describeFingerprint(q.image.binding!.fingerprint)})`);
      this.#fail('ERR_PROTO_WRONG_RESCUE', `Rescue ${hello.rescueId} (${describeFingerprint(hello.fingerprint)}) has no image here: ${taken.join('; ')}. Give this assembler one more IMAGE for it, or start another assembler.`, CLOSE.policy);
      return;
    }
    const image = queue.image;
    const wasBound = image.binding !== undefined;
    try {
      await image.bind(hello);
    } catch (err) {
      const code = codeOf(err);
      log.warn(`${this.#peer}: refused: ${code}: ${messageOf(err)}`);
      this.#fail(WIRE_CODE[code] ?? code, messageOf(err), code.startsWith('ERR_IMAGE_SAVE') ? CLOSE.internal : CLOSE.policy, false);
      return;
    }
    if (this.#state !== 'binding') return;
    if (!wasBound) log.info(`${image.path}: bound to rescue ${hello.rescueId} (${describeFingerprint(hello.fingerprint)})`);
    const plan = { rescueId: hello.rescueId, sourceSize: image.size, sectorSize: hello.sectorSize, chunks: image.plan! };
    const keys = deriveRescueKeys(secret, hello.rescueId);
    this.#collector = new PieceCollector({ plan, keys, limits: this.#ctx.limits, peer: this.#peer, pool: this.#ctx.memory });
    this.#queue = queue;
    const { bytes, complete } = encodeWelcome(serverProof(secret, nonce, hello.clientNonce, hello.rescueId), image, this.#ctx.limits);
    if (!complete) log.warn(`${this.#peer}: the image's state is too large for one Welcome; it lists part of it, and the reader may resend pieces merged before (harmless).`);
    this.#state = 'ready';
    log.info(`${this.#peer}: connected, rescue ${hello.rescueId} → ${image.path}`);
    this.#ctx.progress?.connected({ peer: this.#peer, rescueId: hello.rescueId, image: image.path });
    this.#sendBytes(bytes);
  }

  #onPieceMessage(msg: Extract<Message, { type: 'pieceHeader' | 'pieceData' | 'pieceEnd' }>): void {
    if (this.#discard !== undefined) {
      if (msg.type !== 'pieceHeader' && msg.seq === this.#discard) {
        if (msg.type === 'pieceEnd') this.#discard = undefined;
        return;
      }
      this.#discard = undefined;
    }
    const collector = this.#collector!;
    // a refused piece is named by its hash: of the piece being opened, or of the sealed header as received
    const opening = collector.pendingHash;
    let piece: OpenedPiece | undefined;
    try {
      piece = collector.accept(msg);
    } catch (err) {
      this.#release();
      if (!isProtocolError(err)) throw err;
      const seq = err.seq ?? (msg.type === 'pieceHeader' ? undefined : msg.seq);
      if ((err.code.startsWith('ERR_PIECE_') || err.code.startsWith('ERR_SEAL_')) && seq !== undefined) {
        const headerHash = msg.type === 'pieceHeader' ? headerHashOf(msg.sealedHeader) : opening ?? '';
        this.#reject(seq, headerHash, err.code, err.message);
        if (msg.type !== 'pieceEnd') this.#discard = seq;
        return;
      }
      this.#fail(err.code, err.message, CLOSE.policy);
      return;
    }
    // the header is authenticated: its data's memory comes from the server's budget before any frame is taken
    if (msg.type === 'pieceHeader' && !this.#reserve(collector.pendingDataSize ?? 0)) return;
    if (piece !== undefined) this.#enqueue(piece);
  }

  /** Refuse a piece: a Receipt that rejects it, and the log (loud for A4: two pieces under one seq). */
  #reject(seq: number, headerHash: string, code: string, text: string): void {
    const reason = printable(text, MAX_WIRE_TEXT);
    this.#ctx.progress?.problem(this.#who(), code, `piece ${seq} rejected: ${reason}`);
    const line = `${this.#peer}: piece ${seq} rejected, nothing written: ${code}: ${reason}`;
    if (code === 'ERR_PIECE_SEQ_CONFLICT') this.#ctx.log.error(line);
    else this.#ctx.log.warn(line);
    this.#send({ type: 'receipt', merged: [], rejected: [{ seq, code, reason, headerHash }] });
  }

  /**
   * Take the memory of the piece whose header was just opened from the server's
   * budget. When it does not fit, hold the messages after it, stop reading, and
   * go on once granted.
   * @returns true to go on now.
   */
  #reserve(bytes: number): boolean {
    const budget = this.#ctx.memory;
    if (budget === undefined || this.#reserved > 0) return true;
    const taken = budget.take(bytes, () => this.#granted(bytes));
    if (taken === true) {
      this.#reserved = bytes;
      return true;
    }
    this.#held = [];
    this.#cancelHold = taken;
    this.#pause();
    return false;
  }

  #granted(bytes: number): void {
    this.#reserved = bytes;
    const held = this.#held ?? [];
    this.#held = undefined;
    this.#cancelHold = undefined;
    if (this.#state === 'closed') {
      this.#release();
      return;
    }
    for (let i = 0; i < held.length; i++) {
      // a later header of the held ones may wait in its turn: the rest waits behind it
      const waiting = this.#held as Uint8Array[] | undefined;
      if (waiting !== undefined) {
        waiting.push(...held.slice(i));
        return;
      }
      this.#onMessage(held[i] as Buffer, true);
    }
    this.#resume();
  }

  /** Give back the memory of the piece being received (dropped, or the connection closed), and any wait for it. */
  #release(): void {
    this.#cancelHold?.();
    this.#cancelHold = undefined;
    this.#held = undefined;
    const bytes = this.#reserved;
    this.#reserved = 0;
    this.#ctx.memory?.give(bytes);
  }

  #enqueue(piece: OpenedPiece): void {
    const size = piece.data.length;
    // the piece's memory is held until it is merged
    const reserved = this.#reserved;
    this.#reserved = 0;
    this.#unmergedBytes += size;
    ++this.#unmergedPieces;
    if (this.#unmergedBytes >= this.#ctx.maxUnmergedBytes || this.#unmergedPieces >= this.#ctx.maxUnmergedPieces) this.#pause();
    let done = false;
    const merged = this.#queue!.enqueue(piece).then(
      () => {
        this.#ack({ seq: piece.seq, headerHash: piece.headerHash });
        done = true;
      },
      (err: unknown) => {
        if (isProtocolError(err) && err.code === 'ERR_PIECE_SEQ_CONFLICT') {
          this.#reject(piece.seq, piece.headerHash, err.code, err.message);
          return;
        }
        const code = codeOf(err);
        this.#ctx.log.error(`${this.#peer}: piece ${piece.seq} not merged: ${code}: ${messageOf(err)}`);
        this.#fail(code, `Piece ${piece.seq} was not merged: ${messageOf(err)}`, CLOSE.internal, false);
      },
    ).finally(() => {
      // written and fsynced: nothing holds its bytes any more; kept under the budget for the next piece, which a
      // waiting connection gets at once, on this buffer
      const memory = this.#ctx.memory;
      if (done && memory !== undefined) memory.release(reserved, piece.data);
      else {
        memory?.give(reserved);
        if (done) this.#collector?.recycle(piece.data);
      }
      this.#unmergedBytes -= size;
      --this.#unmergedPieces;
      this.#inflight.delete(merged);
      if (this.#unmergedBytes < this.#ctx.maxUnmergedBytes && this.#unmergedPieces < this.#ctx.maxUnmergedPieces) this.#resume();
    });
    this.#inflight.add(merged);
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#ws.pause();
  }

  #resume(): void {
    if (!this.#paused || this.#stopping || this.#held !== undefined) return;
    if (this.#unmergedBytes >= this.#ctx.maxUnmergedBytes || this.#unmergedPieces >= this.#ctx.maxUnmergedPieces) return;
    this.#paused = false;
    this.#ws.resume();
  }

  #ack(ref: PieceRef): void {
    this.#acks.push(ref);
    this.#ackTimer ??= setImmediate(() => this.#flushAcks());
  }

  #flushAcks(): void {
    if (this.#ackTimer !== undefined) clearImmediate(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.#acks.length === 0) return;
    const merged = [...new Map(this.#acks.map((r) => [`${r.seq}:${r.headerHash}`, r])).values()];
    this.#acks = [];
    const per = pieceRefsPerMessage(this.#ctx.limits);
    for (let i = 0; i < merged.length; i += per) this.#send({ type: 'receipt', merged: merged.slice(i, i + per), rejected: [] });
  }

  #send(msg: Message): void {
    this.#sendBytes(encodeEnvelope(msg, this.#ctx.limits));
  }

  #sendBytes(bytes: Uint8Array): void {
    if (this.#state === 'closed' || this.#ws.readyState !== this.#ws.OPEN) return;
    this.#ws.send(bytes, { binary: true });
  }

  /** Send an Error, log it (unless logged already) and close. */
  #fail(code: string, text: string, closeCode: number, log = true): void {
    if (this.#state === 'closed') return;
    // messages may quote what a peer sent (a field, a name)
    const message = printable(text, MAX_WIRE_TEXT);
    this.#ctx.progress?.problem(this.#who(), code, message);
    if (log) {
      // a peer still outside may repeat this as fast as it connects: its lines are thinned out
      if (this.#queue === undefined && this.#door !== undefined) this.#door.note(code, `${this.#peer}: ${code}: ${message}`);
      else this.#ctx.log.warn(`${this.#peer}: ${code}: ${message}`);
    }
    try {
      this.#send({ type: 'error', code, message });
    } catch (err) {
      this.#ctx.log.error(`${this.#peer}: cannot send the error: ${messageOf(err)}`);
    }
    this.#close(closeCode, code);
  }

  #close(code: number, reason: string): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#collector?.reset();
    this.#release();
    clearTimeout(this.#handshakeTimer);
    this.#ws.close(code, reason.slice(0, 120));
  }

  #onSocketError(err: Error): void {
    const code = (err as { code?: unknown }).code;
    if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      this.#ctx.log.warn(`${this.#peer}: ERR_PROTO_MESSAGE_TOO_LARGE: a message over ${this.#ctx.limits.maxMessageBytes} bytes; connection closed (1009).`);
    } else {
      this.#ctx.log.warn(`${this.#peer}: connection error: ${typeof code === 'string' ? `${code}: ` : ''}${err.message}`);
    }
    this.#state = 'closed';
    this.#collector?.reset();
    this.#release();
    clearTimeout(this.#handshakeTimer);
  }

  /** For progress: the rescue only once authenticated and bound (a Hello alone proves nothing, S2). */
  #who(): { peer: string; rescueId: string | undefined } {
    return { peer: this.#peer, rescueId: this.#queue === undefined ? undefined : this.#hello?.rescueId };
  }

  #onClose(): void {
    if (this.#queue !== undefined) this.#ctx.progress?.disconnected(this.#who());
    this.#ctx.live?.readerGone(this);
    this.#state = 'closed';
    this.#collector?.reset();
    this.#release();
    clearTimeout(this.#handshakeTimer);
    if (this.#ackTimer !== undefined) clearImmediate(this.#ackTimer);
    this.#ackTimer = undefined;
  }
}
