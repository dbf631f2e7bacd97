/** A scripted live page for tests: JSON over `ws` on `/live`, and the page's login done in Node. */
import { randomBytes } from 'node:crypto';

import { WebSocket } from 'ws';

import { viewerAuthHmac, viewerProof } from '../src/live/live-auth.js';

/** What the page is sent (loosely typed: tests look at fields). */
export type LiveMessage = { readonly type: string } & Record<string, unknown>;

export class LiveClient {
  readonly ws: WebSocket;
  readonly inbox: LiveMessage[] = [];
  /** Every message, in order, kept after `next` took it. */
  readonly all: LiveMessage[] = [];
  bytes = 0;
  #waiter: (() => void) | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) throw new Error('the live page got a binary message');
      this.bytes += data.length;
      const m = JSON.parse(data.toString('utf8')) as LiveMessage;
      this.inbox.push(m);
      this.all.push(m);
      this.#waiter?.();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      this.#waiter?.();
    }));
    ws.on('error', () => undefined);
  }

  /** Open `/live` of the server at `base` (`ws://HOST:PORT`). */
  static async connect(base: string, headers: Record<string, string> = {}): Promise<LiveClient> {
    const ws = new WebSocket(`${base}/live`, { perMessageDeflate: false, headers });
    const c = new LiveClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return c;
  }

  /** The next message, or undefined once closed and nothing is left. */
  async next(timeoutMs = 10_000): Promise<LiveMessage | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      if (this.ws.readyState === WebSocket.CLOSED) return undefined;
      if (Date.now() > deadline) throw new Error('no live message in time');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.#waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
    return this.inbox.shift();
  }

  /** Skip messages until one matches. */
  async until(match: (m: LiveMessage) => boolean, timeoutMs = 10_000): Promise<LiveMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let m: LiveMessage | undefined;
      try {
        m = await this.next(Math.max(1, deadline - Date.now()));
      } catch (err) {
        throw new Error(`${(err as Error).message}; got so far: ${this.all.map((x) => JSON.stringify(x).slice(0, 300)).join(' | ')}`);
      }
      if (m === undefined) throw new Error('the live socket closed before the message came');
      if (match(m)) return m;
    }
  }

  /** challenge → auth → the answer (welcome with its proof checked, or error). */
  async login(token: string | undefined): Promise<LiveMessage | undefined> {
    const challenge = await this.next();
    if (challenge?.type !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(challenge)}`);
    const serverNonce = Buffer.from(challenge.serverNonce as string, 'base64');
    const clientNonce = randomBytes(32);
    if (token === undefined) {
      this.send({ type: 'auth' });
    } else {
      this.send({ type: 'auth', clientNonce: clientNonce.toString('base64'), hmac: Buffer.from(viewerAuthHmac(token, serverNonce, clientNonce)).toString('base64') });
    }
    const answer = await this.next();
    if (answer?.type === 'welcome' && token !== undefined && answer.proof !== Buffer.from(viewerProof(token, serverNonce, clientNonce)).toString('base64')) {
      throw new Error('bad server proof');
    }
    return answer;
  }

  send(msg: object): void {
    this.ws.send(JSON.stringify(msg));
  }
}

/** Decode `?3+2` runs into one status character per cell, from `from`, into `cells`. */
export function applyRuns(cells: string[], from: number, runs: string): void {
  let at = from;
  for (const m of runs.matchAll(/([?*/+-])(\d+)/g)) {
    const n = Number(m[2]);
    for (let i = 0; i < n && at + i < cells.length; ++i) cells[at + i] = m[1]!;
    at += n;
  }
}

/** A page's picture of the maps, kept up to date from the messages. */
export class MapModel {
  readonly maps = new Map<number, string[]>();

  apply(m: LiveMessage): void {
    if (m.type === 'map') {
      const cells = new Array<string>(m.cells as number).fill('');
      applyRuns(cells, 0, m.runs as string);
      this.maps.set(m.image as number, cells);
    } else if (m.type === 'map-update') {
      const cells = this.maps.get(m.image as number);
      if (cells === undefined) throw new Error('a map-update before its map');
      applyRuns(cells, m.from as number, m.runs as string);
    }
  }
}
