/** A scripted reader for tests: the protocol's codec over `ws`, one message at a time. */
import type { Limits, Message, Piece, SealedPiece, WelcomeMessage } from '@ddferry/protocol';
import { authHmac, decodeEnvelope, DEFAULT_LIMITS, encodeEnvelope, encodePieceFrames, verifyServerProof } from '@ddferry/protocol';
import { WebSocket } from 'ws';

import { hello, seal, SECRET } from './helpers.js';

export class Client {
  readonly ws: WebSocket;
  readonly limits: Limits;
  readonly #inbox: Message[] = [];
  #waiter: (() => void) | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;
  /** The token of the last handshake: pieces are sealed with it. */
  secret = SECRET;

  private constructor(ws: WebSocket, limits: Limits) {
    this.ws = ws;
    this.limits = limits;
    ws.on('message', (data) => {
      this.#inbox.push(decodeEnvelope(data as Buffer, { ...limits, maxMessageBytes: 1 << 30 }));
      this.#waiter?.();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      this.#waiter?.();
    }));
    ws.on('error', () => undefined);
  }

  static async connect(url: string, limits: Limits = DEFAULT_LIMITS): Promise<Client> {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30 });
    const client = new Client(ws, limits);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  send(msg: Message): void {
    this.ws.send(encodeEnvelope(msg, { ...this.limits, maxMessageBytes: 1 << 30 }));
  }

  sendRaw(bytes: Uint8Array): void {
    this.ws.send(bytes, { binary: true });
  }

  /** Seal `piece` (with the token of the handshake unless `secret` is given) and send it; returns the sealed piece. */
  sendPiece(piece: Piece | SealedPiece, secret = this.secret): SealedPiece {
    const sealed = 'header' in piece ? piece : seal(piece, secret);
    for (const frame of encodePieceFrames(sealed, this.limits)) this.sendRaw(frame);
    return sealed;
  }

  /** The next message, or undefined once the connection is closed and nothing is left. */
  async next(timeoutMs = 10_000): Promise<Message | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.#inbox.length === 0) {
      if (this.ws.readyState === WebSocket.CLOSED) return undefined;
      if (Date.now() > deadline) throw new Error('no message in time');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.#waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
    return this.#inbox.shift();
  }

  /** The next message, which must be of `type`. */
  async expect<T extends Message['type']>(type: T): Promise<Extract<Message, { type: T }>> {
    const msg = await this.next();
    if (msg?.type !== type) throw new Error(`expected ${type}, got ${msg === undefined ? 'the close' : JSON.stringify({ ...msg, data: undefined })}`);
    return msg as Extract<Message, { type: T }>;
  }

  /** Hello → Challenge → Auth → Welcome (proof checked), or the server's answer to Auth. */
  async handshake(secret = SECRET, h = hello()): Promise<Message | undefined> {
    this.secret = secret;
    this.send(h);
    const challenge = await this.expect('challenge');
    this.send({ type: 'auth', hmac: authHmac(secret, challenge.serverNonce, h.clientNonce, h.rescueId) });
    const answer = await this.next();
    if (answer?.type === 'welcome' && !verifyServerProof(secret, challenge.serverNonce, h.clientNonce, h.rescueId, (answer as WelcomeMessage).serverProof)) {
      throw new Error('bad server proof');
    }
    return answer;
  }

  close(): void {
    this.ws.close();
  }
}
