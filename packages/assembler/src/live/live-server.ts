/**
 * The live page on the assembler's port: `GET /` answers the page, `/live` is
 * its websocket (readers keep using any other path). Read-only: after the
 * login a browser only listens.
 *
 * | request | answer |
 * |---|---|
 * | `GET /`, `HEAD /` | the page (no-store, a strict Content-Security-Policy) |
 * | `GET /live` without upgrade | 426 |
 * | other methods on `/` or `/live` | 405 |
 * | any other path | 404 |
 * | websocket on `/live` from another origin | 403, nothing else |
 *
 * On `/live`, JSON text messages: `challenge` (server) → `auth` (page, see
 * live-auth.ts) → `welcome` with the server's proof, then what the feed pushes
 * (live-feed.ts). One batch of messages is in the socket at a time; while the
 * browser has not read it, changes pile up in the feed's pending state and are
 * sent as their latest form, so memory per browser stays bounded.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';

import type { Secret } from '@ddferry/protocol';
import { NONCE_BYTES, printable } from '@ddferry/protocol';
import type { RawData, WebSocket } from 'ws';
import { WebSocketServer } from 'ws';

import type { Log } from '../connection.js';
import { CLOSE } from '../connection.js';
import type { Door } from '../doors.js';
import type { Image } from '../image.js';
import type { FeedMessage, ViewerQueue } from './live-feed.js';
import { LiveFeed } from './live-feed.js';
import { verifyViewerAuth, viewerProof } from './live-auth.js';
import { LIVE_PAGE_CSP, LIVE_PAGE_HTML } from './page.js';

/** Path of the page's websocket. */
export const LIVE_PATH = '/live';

/** Defaults of the live page's options. */
export const LIVE_DEFAULTS = Object.freeze({
  maxViewers: 8,
  maxCells: 65_536,
  /** Bytes queued in a browser's socket past which nothing more is sent until it reads. */
  highWaterBytes: 1024 * 1024,
  /** Changes are gathered this long before they are pushed. */
  flushIntervalMs: 100,
});

export interface LiveOptions {
  /** Browsers at once (logging in or logged in); more get `ERR_LIVE_BUSY` (close 1013). Default 8. */
  readonly maxViewers?: number | undefined;
  /** Most cells of a map (map-cells.ts). Default 65 536. */
  readonly maxCells?: number | undefined;
  /** Default 1 MiB. */
  readonly highWaterBytes?: number | undefined;
  /** Default 100 ms. */
  readonly flushIntervalMs?: number | undefined;
}

export interface LiveContext {
  readonly images: readonly Image[];
  readonly secret: Secret;
  readonly log: Log;
  readonly handshakeTimeoutMs: number;
  readonly keepaliveMs: number;
}

/**
 * The addresses a person types to open the page: the listening address, or
 * for a wildcard (`0.0.0.0`, `::`) each external IPv4 address of this machine
 * (else `localhost`).
 */
export function pageUrls(host: string, port: number): string[] {
  const wild = host === '0.0.0.0' || host === '::' || host === '';
  const hosts = wild
    ? Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => a.address))
    : [host];
  if (hosts.length === 0) hosts.push('localhost');
  return hosts.map((h) => `http://${h.includes(':') ? `[${h}]` : h}:${port}/`);
}

/** Largest message a page may send (its login is about 200 bytes). */
const MAX_VIEWER_MESSAGE = 4096;

const HEADERS = Object.freeze({
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
});

function checkCount(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`live option ${name} must be a positive integer, not ${String(value)}`);
  return value;
}

function answer(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...HEADERS, 'content-type': 'text/plain; charset=utf-8', ...extra });
  res.end(`${text}\n`);
}

/** The path of a request target, without its query; '' when it is not a path. */
export function pathOf(url: string | undefined): string {
  if (url === undefined || !url.startsWith('/')) return '';
  const q = url.search(/[?#]/);
  return q < 0 ? url : url.slice(0, q);
}

function decodeNonce(value: unknown): Uint8Array | undefined {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]{43}=$/.test(value)) return undefined;
  const b = Buffer.from(value, 'base64');
  return b.length === NONCE_BYTES ? new Uint8Array(b) : undefined;
}

/** The live page's part of a server. */
export class LiveServer {
  readonly feed: LiveFeed;
  readonly #ctx: LiveContext;
  readonly #maxViewers: number;
  readonly #highWater: number;
  readonly #flushMs: number;
  readonly #wss: WebSocketServer;
  readonly #viewers = new Set<Viewer>();
  readonly #retired = { maxBufferedBytes: 0, deferred: 0 };
  #closing = false;

  constructor(ctx: LiveContext, options: LiveOptions = {}) {
    this.#ctx = ctx;
    this.#maxViewers = checkCount('maxViewers', options.maxViewers ?? LIVE_DEFAULTS.maxViewers);
    this.#highWater = checkCount('highWaterBytes', options.highWaterBytes ?? LIVE_DEFAULTS.highWaterBytes);
    this.#flushMs = checkCount('flushIntervalMs', options.flushIntervalMs ?? LIVE_DEFAULTS.flushIntervalMs);
    this.feed = new LiveFeed(ctx.images, { maxCells: checkCount('maxCells', options.maxCells ?? LIVE_DEFAULTS.maxCells) });
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: MAX_VIEWER_MESSAGE, perMessageDeflate: false, clientTracking: false });
  }

  /** Browsers connected (logging in or logged in). */
  get viewerCount(): number {
    return this.#viewers.size;
  }

  /**
   * How pushing went: the most bytes seen waiting in a browser's socket when a
   * push was due, and how many changes found a push still being written (they
   * were folded into the next one).
   */
  stats(): { readonly maxBufferedBytes: number; readonly deferred: number } {
    let maxBufferedBytes = this.#retired.maxBufferedBytes;
    let deferred = this.#retired.deferred;
    for (const v of this.#viewers) {
      maxBufferedBytes = Math.max(maxBufferedBytes, v.maxBufferedBytes);
      deferred += v.deferred;
    }
    return { maxBufferedBytes, deferred };
  }

  /** Answer a plain HTTP request (see the module comment). */
  handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = pathOf(req.url);
    if (path !== '/' && path !== LIVE_PATH) {
      answer(res, 404, 'Not found. The live map page is at / ; readers connect with a websocket.');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      answer(res, 405, 'Only GET.', { allow: 'GET, HEAD' });
      return;
    }
    if (path === LIVE_PATH) {
      answer(res, 426, 'The live page connects here with a websocket.', { upgrade: 'websocket' });
      return;
    }
    res.writeHead(200, { ...HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': LIVE_PAGE_CSP });
    res.end(req.method === 'HEAD' ? undefined : LIVE_PAGE_HTML);
  }

  /**
   * Take a websocket upgrade on `/live`.
   * @param door the socket's part of the server's doors: the login's bytes,
   *   deadline and token guesses are counted there. Default none.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, peer: string, door?: Door): void {
    const origin = req.headers.origin;
    if (origin !== undefined && !sameOrigin(origin, req.headers.host)) {
      const line = `${peer}: live page: ERR_LIVE_ORIGIN: a page from ${printable(origin, 200)} tried to open ${LIVE_PATH}; refused (403).`;
      if (door !== undefined) door.note('ERR_LIVE_ORIGIN', line);
      else this.#ctx.log.warn(line);
      socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, peer, door));
  }

  #accept(ws: WebSocket, peer: string, door: Door | undefined): void {
    if (this.#closing) {
      ws.close(CLOSE.goingAway, 'assembler stopping');
      return;
    }
    if (this.#viewers.size >= this.#maxViewers) {
      this.#ctx.log.warn(`${peer}: live page refused: ERR_LIVE_BUSY: ${this.#maxViewers} viewers already.`);
      ws.send(JSON.stringify({ type: 'error', code: 'ERR_LIVE_BUSY', message: `This assembler shows its live page to ${this.#maxViewers} browsers at most; close one and reload.` }));
      ws.close(CLOSE.tryLater, 'ERR_LIVE_BUSY');
      return;
    }
    const v = new Viewer(ws, peer, this.#ctx, this.feed, { highWater: this.#highWater, flushMs: this.#flushMs, keepaliveMs: this.#ctx.keepaliveMs }, door);
    this.#viewers.add(v);
    ws.on('close', () => {
      v.closed();
      this.#viewers.delete(v);
      this.#retired.maxBufferedBytes = Math.max(this.#retired.maxBufferedBytes, v.maxBufferedBytes);
      this.#retired.deferred += v.deferred;
    });
  }

  /** Close every browser's socket (1001) and stop listening to the images. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const v of this.#viewers) v.close(CLOSE.goingAway, 'assembler stopping');
    const deadline = Date.now() + 1000;
    while (this.#viewers.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const v of this.#viewers) v.ws.terminate();
    this.feed.close();
    this.#wss.close();
  }
}

/** True if the page at `origin` was served by this `host` (the request's Host header). */
export function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host.toLowerCase();
  } catch (err) {
    if (err instanceof TypeError) return false;
    throw err;
  }
}

interface ViewerLimits {
  readonly highWater: number;
  readonly flushMs: number;
  readonly keepaliveMs: number;
}

/** One browser on `/live`: its login, then pushes paced by what it reads. */
class Viewer {
  readonly ws: WebSocket;
  readonly #peer: string;
  readonly #ctx: LiveContext;
  readonly #feed: LiveFeed;
  readonly #limits: ViewerLimits;
  readonly #serverNonce = new Uint8Array(randomBytes(NONCE_BYTES));
  #state: 'auth' | 'ready' | 'closed' = 'auth';
  #queue: ViewerQueue | undefined;
  #timer: NodeJS.Timeout | undefined;
  #writing = false;
  #alive = true;
  maxBufferedBytes = 0;
  deferred = 0;
  readonly #handshake: NodeJS.Timeout;
  readonly #ping: NodeJS.Timeout;
  readonly #door: Door | undefined;

  constructor(ws: WebSocket, peer: string, ctx: LiveContext, feed: LiveFeed, limits: ViewerLimits, door?: Door) {
    this.ws = ws;
    this.#peer = peer;
    this.#door = door;
    door?.onEvict((reason) => this.#fail('ERR_LIVE_BUSY', reason));
    door?.watch(2 * MAX_VIEWER_MESSAGE, (bytes) => this.#fail('ERR_LIVE_MALFORMED', `${bytes} bytes arrived before the login; a login is about 200 bytes.`));
    this.#ctx = ctx;
    this.#feed = feed;
    this.#limits = limits;
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    ws.on('error', (err) => ctx.log.warn(`${peer}: live page: connection error: ${err.message}`));
    ws.on('pong', () => {
      this.#alive = true;
    });
    this.#handshake = setTimeout(() => this.#fail('ERR_LIVE_HANDSHAKE_TIMEOUT', `No login within ${ctx.handshakeTimeoutMs} ms. Reload the page.`), ctx.handshakeTimeoutMs);
    this.#ping = setInterval(() => {
      if (!this.#alive) {
        ws.terminate();
        return;
      }
      this.#alive = false;
      ws.ping();
    }, limits.keepaliveMs);
    this.#ping.unref();
    const auth = ctx.secret.length === 0 ? 'none' : 'hmac';
    this.#sendNow({ type: 'challenge', auth, serverNonce: Buffer.from(this.#serverNonce).toString('base64') });
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.#state !== 'auth') {
      if (this.#state === 'ready') this.#fail('ERR_LIVE_MALFORMED', 'The live page is read-only: nothing is accepted after the login.');
      return;
    }
    let parsed: unknown;
    if (!isBinary) {
      try {
        parsed = JSON.parse(String(data));
      } catch (err) {
        if (!(err instanceof SyntaxError)) throw err;
      }
    }
    const msg = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as { type?: unknown; clientNonce?: unknown; hmac?: unknown };
    if (msg.type !== 'auth') {
      this.#fail('ERR_LIVE_MALFORMED', 'Expected the page\'s login (a JSON auth message). Reload the page.');
      return;
    }
    const { secret } = this.#ctx;
    const clientNonce = decodeNonce(msg.clientNonce);
    const hmac = decodeNonce(msg.hmac);
    if (secret.length > 0) {
      const wait = this.#door?.authWait() ?? 0;
      if (wait > 0) {
        this.#fail('ERR_AUTH_THROTTLED', `Too many failed logins from ${this.#door!.address}: the token is not checked; reload the page in ${Math.ceil(wait / 1000)} s.`);
        return;
      }
      if (clientNonce === undefined || hmac === undefined || !verifyViewerAuth(secret, this.#serverNonce, clientNonce, hmac)) {
        this.#door?.authFailed();
        this.#fail('ERR_LIVE_AUTH_FAILED', 'Wrong token: the login does not verify with this assembler\'s token. Open the page as http://HOST:PORT/#token=TOKEN with the text of the --token-file, or type it in.');
        return;
      }
    }
    this.#door?.enterAsViewer();
    clearTimeout(this.#handshake);
    this.#state = 'ready';
    const proof = secret.length > 0 && clientNonce !== undefined ? Buffer.from(viewerProof(secret, this.#serverNonce, clientNonce)).toString('base64') : '';
    this.#sendNow({ type: 'welcome', proof, auth: secret.length === 0 ? 'none' : 'hmac' });
    this.#ctx.log.info(`${this.#peer}: live page connected${secret.length === 0 ? ' (no token)' : ''}.`);
    this.#queue = this.#feed.add(() => this.#wake());
    this.#wake();
  }

  #wake(): void {
    if (this.#writing) ++this.deferred;
    if (this.#state !== 'ready' || this.#timer !== undefined || this.#writing) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, this.#limits.flushMs);
  }

  #flush(): void {
    const q = this.#queue;
    if (this.#state !== 'ready' || q === undefined || !q.pending) return;
    this.maxBufferedBytes = Math.max(this.maxBufferedBytes, this.ws.bufferedAmount);
    if (this.ws.bufferedAmount > this.#limits.highWater) {
      // the last batch is written but the browser reads slowly: look again later
      this.#wake();
      return;
    }
    const msgs: FeedMessage[] = q.take();
    if (msgs.length === 0) return;
    this.#writing = true;
    let left = msgs.length;
    const done = (): void => {
      if (--left > 0) return;
      this.#writing = false;
      if (q.pending) this.#wake();
    };
    for (const m of msgs) this.ws.send(JSON.stringify(m), done);
  }

  #sendNow(msg: object): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(msg));
  }

  #fail(code: string, message: string): void {
    if (this.#state === 'closed') return;
    const line = `${this.#peer}: live page: ${code}: ${message}`;
    if (this.#state === 'auth' && this.#door !== undefined) this.#door.note(code, line);
    else this.#ctx.log.warn(line);
    this.#sendNow({ type: 'error', code, message });
    this.close(CLOSE.policy, code);
  }

  close(code: number, reason: string): void {
    if (this.#state === 'closed') return;
    this.closed();
    this.ws.close(code, reason);
  }

  /** The socket is closing or closed: stop everything of this viewer. */
  closed(): void {
    this.#state = 'closed';
    clearTimeout(this.#handshake);
    clearTimeout(this.#timer);
    clearInterval(this.#ping);
    if (this.#queue !== undefined) this.#feed.remove(this.#queue);
  }
}
