/**
 * The LAN receiver: a websocket server (one protobuf envelope per binary
 * message) that authenticates readers, binds each rescue to an image and merges
 * their pieces durably before acknowledging them.
 */
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { resolve } from 'node:path';

import type { Limits, Secret } from '@ddferry/protocol';
import { checkSecretStrength, MIN_SECRET_BITS, normalizeSecretText, printable, ProtocolError, resolveLimits } from '@ddferry/protocol';
import { WebSocketServer } from 'ws';

import { CLOSE, Connection } from './connection.js';
import type { ConnectionContext, Log } from './connection.js';
import { Doors, DOORS_DEFAULTS } from './doors.js';
import type { DoorCounts, DoorsOptions } from './doors.js';
import { AssemblerError, errnoOf, messageOf } from './errors.js';
import { fdHeadroom } from './fd-headroom.js';
import { Image } from './image.js';
import type { ImageOptions } from './image.js';
import { LIVE_PATH, LiveServer, pathOf, sameOrigin } from './live/live-server.js';
import type { LiveOptions } from './live/live-server.js';
import { DEFAULT_MAX_MEMORY, MemoryBudget } from './memory-budget.js';
import { MergeQueue, resolveMergeLimits } from './merge.js';
import type { MergeLimits } from './merge.js';
import type { ConnectionProgress } from './progress.js';

export type { Log } from './connection.js';

const MIB = 1024 * 1024;

/**
 * How far past `maxMessageBytes` the websocket layer still reads a message, so
 * that a message just over the limit gets a coded Error
 * (`ERR_PROTO_MESSAGE_TOO_LARGE`) before the close. Larger ones are cut by the
 * websocket layer itself, before buffering: close code 1009, no Error.
 */
export const OVERSIZE_GRACE_BYTES = 64 * 1024;

/** Defaults of the numeric options of `serve`. */
export const SERVE_DEFAULTS = Object.freeze({
  maxUnmergedBytes: 64 * MIB,
  maxUnmergedPieces: 1024,
  maxConnections: 16,
  handshakeTimeoutMs: DOORS_DEFAULTS.handshakeTimeoutMs,
  keepaliveMs: 30_000,
  maxMemory: DEFAULT_MAX_MEMORY,
});

/** Longest HTTP request head read (a websocket upgrade is about 300 bytes). */
const MAX_HEADER_BYTES = 8192;

export interface ServeOptions {
  /** Image paths; each is created if missing. A rescue goes to the image bound to it, else to the first unbound one. */
  readonly images: readonly string[];
  /** Where to listen; port 0 picks a free port. */
  readonly listen: { readonly host: string; readonly port: number };
  /**
   * The shared token: text is normalized (`normalizeSecretText`) and must carry
   * at least 128 bits (`checkSecretStrength`). Default: the empty token, with a
   * warning (anyone on the network can send data).
   */
  readonly secret?: Secret | undefined;
  /** Protocol limits (`resolveLimits`); both sides should use the same. Default `DEFAULT_LIMITS`. */
  readonly limits?: Partial<Limits> | undefined;
  /** Merge batch limits. Default `DEFAULT_MERGE_LIMITS` (64 pieces, 64 MiB). */
  readonly merge?: Partial<MergeLimits> | undefined;
  /** Bytes of received, not yet merged pieces per connection before it stops reading. Default 64 MiB. */
  readonly maxUnmergedBytes?: number | undefined;
  /** Pieces received, not yet merged, per connection before it stops reading. Default 1024. */
  readonly maxUnmergedPieces?: number | undefined;
  /** Authenticated readers at once; more are refused with `ERR_SERVER_BUSY` (close 1013) once authenticated. Default 16. */
  readonly maxConnections?: number | undefined;
  /** Time from the websocket upgrade to a verified Auth (and for the live page, to its login). Default 5000 ms. */
  readonly handshakeTimeoutMs?: number | undefined;
  /**
   * Bytes of piece data held at once over all connections (being received or
   * waiting to be merged); a connection whose next piece does not fit stops
   * reading until it does. Default 512 MiB.
   */
  readonly maxMemory?: number | undefined;
  /** The doors before authentication (doors.ts: waiting room, sockets, descriptors, token guesses). Default `DOORS_DEFAULTS`. */
  readonly doors?: Omit<DoorsOptions, 'log' | 'maxReaders' | 'handshakeTimeoutMs'> | undefined;
  /** Ping interval; a connection that missed a pong by the next ping is dropped. Default 30 000 ms. */
  readonly keepaliveMs?: number | undefined;
  /** Where events go (connections, bindings, refusals, rejected pieces, failures). */
  readonly log: Log;
  /** Passed to `Image.open`. */
  readonly imageOptions?: ImageOptions | undefined;
  /** Told of each reader's connections and problems (`AssemblerProgress`). Default none. */
  readonly progress?: ConnectionProgress | undefined;
  /** The live map page at `/` (its websocket on `/live`), or false for none (every HTTP request gets 404). Default on, `LIVE_DEFAULTS`. */
  readonly live?: LiveOptions | false | undefined;
}

/** A running assembler server. */
export interface AssemblerServer {
  /** The address listened on (the port is the real one when 0 was asked). */
  readonly host: string;
  readonly port: number;
  /** `ws://HOST:PORT`. */
  readonly url: string;
  /** `http://HOST:PORT/`, the live map page, or undefined when it is off. */
  readonly pageUrl: string | undefined;
  /** The live page's part, or undefined when it is off. */
  readonly live: LiveServer | undefined;
  readonly images: readonly Image[];
  /** Pieces received and not yet merged (waiting or being merged), over all images. */
  pending(): { readonly pieces: number; readonly bytes: number };
  /** What the doors let in and kept out; the memory budget (bytes held now, at most, the cap, connections waiting for it). */
  stats(): {
    readonly doors: ReturnType<Doors['stats']> & DoorCounts;
    readonly memory: { readonly used: number; readonly peak: number; readonly cap: number; readonly waiting: number };
  };
  /**
   * Stop accepting connections, stop reading, finish merging what was received
   * (receipts are sent), close every connection (1001) and the images.
   */
  close(): Promise<void>;
}

function checkCount(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`serve option ${name} must be a positive integer, not ${String(value)}`);
  return value;
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function formatPeer(address: string | undefined, port: number | undefined): string {
  const a = address?.startsWith('::ffff:') ? address.slice(7) : address ?? 'unknown';
  return `${formatHost(a)}:${port ?? 0}`;
}

/** The secret as both sides use it; a text under 128 bits is refused. */
function checkSecret(secret: Secret | undefined): Secret {
  if (secret === undefined) return '';
  if (typeof secret !== 'string') {
    if (secret.length > 0 && secret.length * 8 < MIN_SECRET_BITS) {
      throw new ProtocolError('ERR_AUTH_TOKEN_WEAK', `A token of ${secret.length} bytes carries at most ${secret.length * 8} bits; at least ${MIN_SECRET_BITS} are needed.`);
    }
    return secret;
  }
  const text = normalizeSecretText(secret);
  if (text !== '') checkSecretStrength(text);
  return text;
}

async function openImages(paths: readonly string[], options: ImageOptions | undefined): Promise<Image[]> {
  if (paths.length === 0) throw new AssemblerError('ERR_USAGE', 'serve', 'Give at least one IMAGE.');
  const seen = new Set<string>();
  for (const p of paths) {
    const full = resolve(p);
    if (seen.has(full)) throw new AssemblerError('ERR_IMAGE_DUPLICATE', p, 'The same image is given twice. Give each IMAGE once.');
    seen.add(full);
  }
  const images: Image[] = [];
  try {
    for (const p of paths) images.push(await Image.open(p, options));
  } catch (err) {
    await Promise.all(images.map((i) => i.close()));
    throw err;
  }
  return images;
}

/**
 * Open the images and listen. Per connection: Hello (protocol version) →
 * Challenge → Auth (`verifyAuthHmac` with the token) → the image bound to the
 * rescue, else the first unbound one, is bound → Welcome (server proof, `+`
 * ranges, merged seqs, image size) → pieces, each checked against the plan
 * (`planChunks` of the Hello) and merged durably before its Receipt. Refused
 * pieces get a Receipt that rejects them; protocol violations get an Error and
 * the connection is closed. A connection stops reading while its unmerged
 * pieces exceed `maxUnmergedBytes` or `maxUnmergedPieces`.
 * @throws AssemblerError `ERR_USAGE`, `ERR_IMAGE_*` (see `Image.open`),
 *   `ERR_LISTEN`; `RangeError` for bad limits or options.
 */
export async function serve(options: ServeOptions): Promise<AssemblerServer> {
  const limits = resolveLimits(options.limits ?? {});
  const mergeLimits = resolveMergeLimits(options.merge ?? {});
  const maxConnections = checkCount('maxConnections', options.maxConnections ?? SERVE_DEFAULTS.maxConnections);
  const keepaliveMs = checkCount('keepaliveMs', options.keepaliveMs ?? SERVE_DEFAULTS.keepaliveMs);
  const { log } = options;
  const handshakeTimeoutMs = checkCount('handshakeTimeoutMs', options.handshakeTimeoutMs ?? SERVE_DEFAULTS.handshakeTimeoutMs);
  const memory = new MemoryBudget(options.maxMemory ?? SERVE_DEFAULTS.maxMemory);
  const secret = checkSecret(options.secret);
  const doors = new Doors({ headroom: fdHeadroom(), ...options.doors, log, maxReaders: maxConnections, handshakeTimeoutMs });
  const images = await openImages(options.images, options.imageOptions);
  const queues = images.map((i) => new MergeQueue(i, mergeLimits));
  let live: LiveServer | undefined;
  try {
    live = options.live === false ? undefined : new LiveServer({ images, secret, log, handshakeTimeoutMs, keepaliveMs }, options.live);
  } catch (err) {
    await Promise.all(images.map((i) => i.close()));
    throw err;
  }
  const ctx: ConnectionContext = {
    limits, secret, log, queues, live: live?.feed, progress: options.progress,
    maxUnmergedBytes: checkCount('maxUnmergedBytes', options.maxUnmergedBytes ?? SERVE_DEFAULTS.maxUnmergedBytes),
    maxUnmergedPieces: checkCount('maxUnmergedPieces', options.maxUnmergedPieces ?? SERVE_DEFAULTS.maxUnmergedPieces),
    handshakeTimeoutMs, memory,
  };
  if (secret.length === 0) {
    log.warn('No token: anyone who can reach this port can send data into the images. Give the same --token-file to both sides.');
  }

  const http = createServer({ maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: handshakeTimeoutMs }, (req, res) => {
    const origin = req.headers.origin;
    if (origin !== undefined && (live === undefined || !sameOrigin(origin, req.headers.host))) {
      doors.note('ERR_ORIGIN_REFUSED', `${formatPeer(req.socket.remoteAddress, req.socket.remotePort)}: ERR_ORIGIN_REFUSED: a page from ${printable(origin, 200)} sent a request; refused (403).`);
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end('ERR_ORIGIN_REFUSED: pages of other sites may not use this assembler.\n');
      return;
    }
    if (live !== undefined) {
      live.handleRequest(req, res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('ddferry assembler: readers connect with a websocket; the live page is off.\n');
  });
  const wss = new WebSocketServer({
    noServer: true, maxPayload: limits.maxMessageBytes + OVERSIZE_GRACE_BYTES, perMessageDeflate: false, clientTracking: false,
  });
  http.on('connection', (socket: Socket) => {
    if (closing) socket.destroy();
    else doors.admit(socket);
  });
  // readers on any path but /live, as before the live page existed
  http.on('upgrade', (req, socket, head) => {
    const peer = formatPeer(req.socket.remoteAddress, req.socket.remotePort);
    socket.on('error', (err) => log.warn(`${peer}: connection error: ${err.message}`));
    const door = doors.door(req.socket);
    if (door === undefined) {
      socket.destroy();
      return;
    }
    if (live !== undefined && pathOf(req.url) === LIVE_PATH) {
      live.handleUpgrade(req, socket, head, peer, door);
      return;
    }
    // a browser always sends Origin; readers never do: no web page may reach the readers' door (DNS rebinding included)
    const origin = req.headers.origin;
    if (origin !== undefined) {
      door.note('ERR_ORIGIN_REFUSED', `${peer}: ERR_ORIGIN_REFUSED: a page from ${printable(origin, 200)} tried to open the readers' websocket; refused (403).`);
      socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: 19\r\n\r\nERR_ORIGIN_REFUSED\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  const connections = new Set<Connection>();
  let closing = false;
  wss.on('connection', (ws, req) => {
    const peer = formatPeer(req.socket.remoteAddress, req.socket.remotePort);
    if (closing) {
      ws.close(CLOSE.goingAway, 'assembler stopping');
      return;
    }
    const c = new Connection(ws, peer, ctx, doors.door(req.socket));
    connections.add(c);
    ws.on('close', () => connections.delete(c));
  });
  wss.on('error', (err) => log.error(`websocket server: ${messageOf(err)}`));

  try {
    await new Promise<void>((ok, fail) => {
      http.once('error', fail);
      http.listen(options.listen.port, options.listen.host, () => {
        http.off('error', fail);
        ok();
      });
    });
  } catch (err) {
    await live?.close();
    await Promise.all(images.map((i) => i.close()));
    const code = errnoOf(err);
    const hint = code === 'EADDRINUSE' ? 'Another program uses this port: stop it or give another --listen.'
      : code === 'EADDRNOTAVAIL' ? 'This machine has no such address: give one of its addresses, or 0.0.0.0.'
        : code === 'EACCES' ? 'Ports below 1024 need privileges: use a higher port.' : 'Check the address.';
    throw new AssemblerError('ERR_LISTEN', `${formatHost(options.listen.host)}:${options.listen.port}`, `Cannot listen (${code ?? messageOf(err)}). ${hint}`, { cause: err });
  }
  http.on('error', (err) => log.error(`server: ${messageOf(err)}`));
  const address = http.address() as AddressInfo;

  const keepalive = setInterval(() => {
    for (const c of connections) {
      if (!c.alive) {
        log.warn(`${c.peer}: no answer to the keepalive ping; connection dropped.`);
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }, keepaliveMs);
  keepalive.unref();

  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    closing = true;
    doors.close();
    clearInterval(keepalive);
    const httpClosed = new Promise<void>((ok) => http.close(() => ok()));
    await Promise.all([...connections].map((c) => c.stop()));
    await Promise.all(queues.map((q) => q.idle()));
    await waitForClose(connections, 2000);
    for (const c of connections) c.ws.terminate();
    wss.close();
    await live?.close();
    await Promise.all(images.map((i) => i.close()));
    await httpClosed;
  };
  return {
    host: address.address,
    port: address.port,
    url: `ws://${formatHost(address.address)}:${address.port}`,
    pageUrl: live === undefined ? undefined : `http://${formatHost(address.address)}:${address.port}/`,
    live,
    images,
    pending: () => ({
      pieces: queues.reduce((n, q) => n + q.pendingCount, 0),
      bytes: queues.reduce((n, q) => n + q.pendingBytes, 0),
    }),
    stats: () => ({ doors: doors.stats(), memory: { used: memory.used, peak: memory.peak, cap: memory.cap, waiting: memory.waiting } }),
    close: () => (closed ??= close()),
  };
}

/** Wait until `connections` is empty (their close handshakes done), at most `ms`. */
async function waitForClose(connections: ReadonlySet<Connection>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}
