/**
 * The doors of `serve`'s port, before the lock (invariant S4): what a peer
 * that has not proved it knows the token may cost the assembler.
 *
 * | door | rule | over it |
 * |---|---|---|
 * | sockets at once (readers, pages, plain HTTP, waiting) | `maxSockets` | new ones are closed at once (`ERR_SERVER_BUSY`, logged) |
 * | file descriptors | a new socket is taken only while `fdReserve` more files could still be opened | closed at once (`ERR_SERVER_BUSY`): the merges' files never meet EMFILE |
 * | waiting room: sockets not yet authenticated | `maxPending` in all, `maxPendingPerAddress` per address (IPv6: per /64) | the oldest waiting socket of that address, or of the address with the most waiting, is thrown out (`ERR_SERVER_BUSY`): a newcomer always gets in, so idle sockets cannot lock a reader out |
 * | time to authenticate | `handshakeTimeoutMs` from the websocket upgrade (or from the connection, for plain HTTP) | `ERR_HANDSHAKE_TIMEOUT`; a second later the socket is destroyed |
 * | bytes before authentication | what the connection asks with `watch` (4 × `maxHandshakeBytes`) | `ERR_HANDSHAKE_TOO_LARGE`, checked on each read from the socket, before the websocket layer buffers a message |
 * | token guesses | per address a bucket of `authBurst` failed tries refilled at `authPerSecond`; for all addresses `authGlobalBurst`, `authGlobalPerSecond` | the Auth is refused unchecked (`ERR_AUTH_THROTTLED`, with the wait) |
 * | authenticated readers | `maxReaders` | `ERR_SERVER_BUSY` once authenticated |
 *
 * Authenticated readers and logged-in pages leave the waiting room: nothing
 * that happens there touches them. Refusals are logged at most once per code
 * every 5 s, with a count of the ones not shown.
 */
import type { Socket } from 'node:net';

import type { Log } from './log.js';

/** Defaults of the doors (see the module comment). */
export const DOORS_DEFAULTS = Object.freeze({
  maxPending: 8,
  maxPendingPerAddress: 4,
  handshakeTimeoutMs: 5000,
  maxSockets: 64,
  fdReserve: 32,
  authBurst: 5,
  authPerSecond: 1,
  authGlobalBurst: 20,
  authGlobalPerSecond: 5,
});

export interface DoorsOptions {
  readonly log: Log;
  /** Authenticated readers at once. */
  readonly maxReaders: number;
  /** Default 8. */
  readonly maxPending?: number | undefined;
  /** Default 4. */
  readonly maxPendingPerAddress?: number | undefined;
  /** Default 5000 ms. */
  readonly handshakeTimeoutMs?: number | undefined;
  /** Default 64. */
  readonly maxSockets?: number | undefined;
  /** Default 32. */
  readonly fdReserve?: number | undefined;
  /** Failed authentications per address: burst (default 5) and refill per second (default 1). */
  readonly authBurst?: number | undefined;
  readonly authPerSecond?: number | undefined;
  /** Failed authentications, all addresses together: burst (default 20) and refill per second (default 5). */
  readonly authGlobalBurst?: number | undefined;
  readonly authGlobalPerSecond?: number | undefined;
  /** More files this process could open now; undefined when unknown. Default: from `/proc/self`. */
  readonly headroom?: (() => number | undefined) | undefined;
  /** Milliseconds clock. Default `performance.now`. */
  readonly clock?: (() => number) | undefined;
}

/** One socket's part of the doors, for the connection that serves it. */
export interface Door {
  /** The peer's address, printable. */
  readonly address: string;
  /** Milliseconds before this address may try a token; 0: now. */
  authWait(): number;
  /** A token tried from this address did not verify. */
  authFailed(): void;
  /** Authenticated as a reader: leaves the waiting room. False when every reader slot is taken (refuse with `ERR_SERVER_BUSY`). */
  enterAsReader(): boolean;
  /** Logged in as a live page: leaves the waiting room (the page counts its viewers itself). */
  enterAsViewer(): void;
  /** How to close this connection politely when it is thrown out of the waiting room. Default: destroy the socket. */
  onEvict(fn: (reason: string) => void): void;
  /**
   * Read at most `maxBytes` from the peer until it enters; past it, `onOver`
   * is called once with the bytes read. Starts the handshake deadline anew.
   */
  watch(maxBytes: number, onOver: (bytes: number) => void): void;
  /** Log a refusal of a peer still outside, at most once per code every 5 s. */
  note(code: string, message: string): void;
}

/** What the doors refused so far (see `Doors.stats`). */
export interface DoorCounts {
  /** Sockets closed at once: server full, or short of file descriptors. */
  readonly refused: number;
  /** Waiting sockets thrown out to make room. */
  readonly evicted: number;
  /** Waiting sockets destroyed at their deadline. */
  readonly timedOut: number;
  /** Peers that sent more than allowed before authenticating. */
  readonly tooLarge: number;
  /** Auths refused unchecked, and Auths that did not verify. */
  readonly throttled: number;
  readonly authFailed: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

interface Entry {
  readonly socket: Socket;
  readonly key: string;
  readonly address: string;
  state: 'pending' | 'reader' | 'viewer' | 'evicted';
  evict: (reason: string) => void;
  timer: NodeJS.Timeout | undefined;
  counter: ((chunk: Buffer) => void) | undefined;
  door: Door | undefined;
}

/** Lines of one refusal code shown at most once per this many ms. */
const NOTE_EVERY_MS = 5000;
/** Address buckets kept at most (the full ones are dropped first). */
const MAX_BUCKETS = 4096;
/** A thrown-out or timed-out socket still open after this long is destroyed. */
const GRACE_MS = 1000;

function checkCount(name: string, value: number, min = 1): number {
  if (!Number.isFinite(value) || value < min) throw new RangeError(`serve option ${name} must be a number ≥ ${min}, not ${String(value)}`);
  return value;
}

/** The address a socket comes from, printable: IPv4-mapped IPv6 as IPv4. */
export function printableAddress(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** What counts as one peer: an IPv4 address, or an IPv6 /64 (one host usually holds a whole /64). */
export function addressKey(address: string | undefined): string {
  const a = printableAddress(address);
  if (!a.includes(':') || a.includes('.')) return a;
  const [head = '', tail] = a.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** The doors of one server; see the module comment. */
export class Doors {
  readonly #log: Log;
  readonly #o: Required<Omit<DoorsOptions, 'log' | 'headroom' | 'clock'>>;
  readonly #headroom: () => number | undefined;
  readonly #clock: () => number;
  readonly #entries = new Map<Socket, Entry>();
  /** Waiting sockets per address, oldest first. */
  readonly #waiting = new Map<string, Entry[]>();
  #pending = 0;
  #readers = 0;
  readonly #buckets = new Map<string, Bucket>();
  readonly #global: Bucket;
  readonly #notes = new Map<string, { at: number; hidden: number }>();
  readonly #counts: { -readonly [K in keyof DoorCounts]: number } = { refused: 0, evicted: 0, timedOut: 0, tooLarge: 0, throttled: 0, authFailed: 0 };
  #closed = false;

  constructor(options: DoorsOptions) {
    const d = DOORS_DEFAULTS;
    this.#log = options.log;
    this.#o = {
      maxReaders: checkCount('maxConnections', options.maxReaders),
      maxPending: checkCount('maxPending', options.maxPending ?? d.maxPending),
      maxPendingPerAddress: checkCount('maxPendingPerAddress', options.maxPendingPerAddress ?? d.maxPendingPerAddress),
      handshakeTimeoutMs: checkCount('handshakeTimeoutMs', options.handshakeTimeoutMs ?? d.handshakeTimeoutMs),
      maxSockets: checkCount('maxSockets', options.maxSockets ?? d.maxSockets),
      fdReserve: checkCount('fdReserve', options.fdReserve ?? d.fdReserve, 0),
      authBurst: checkCount('authBurst', options.authBurst ?? d.authBurst),
      authPerSecond: checkCount('authPerSecond', options.authPerSecond ?? d.authPerSecond, Number.MIN_VALUE),
      authGlobalBurst: checkCount('authGlobalBurst', options.authGlobalBurst ?? d.authGlobalBurst),
      authGlobalPerSecond: checkCount('authGlobalPerSecond', options.authGlobalPerSecond ?? d.authGlobalPerSecond, Number.MIN_VALUE),
    };
    this.#headroom = options.headroom ?? (() => undefined);
    this.#clock = options.clock ?? (() => performance.now());
    this.#global = { tokens: this.#o.authGlobalBurst, at: this.#clock() };
  }

  /** Sockets open, waiting (not authenticated), and authenticated readers; what was refused, thrown out, timed out, cut, throttled. */
  stats(): { readonly sockets: number; readonly pending: number; readonly readers: number } & DoorCounts {
    return { sockets: this.#entries.size, pending: this.#pending, readers: this.#readers, ...this.#counts };
  }

  /**
   * Take a new socket (the server's `connection` event), or close it at once
   * when the server is full or short of file descriptors. Makes room in the
   * waiting room by throwing the oldest waiting socket out.
   * @returns false when the socket was refused (and destroyed).
   */
  admit(socket: Socket): boolean {
    const address = printableAddress(socket.remoteAddress);
    const refuse = (why: string): boolean => {
      ++this.#counts.refused;
      this.note('ERR_SERVER_BUSY', `${address}: connection refused: ERR_SERVER_BUSY: ${why}`);
      socket.destroy();
      return false;
    };
    if (this.#closed) {
      socket.destroy();
      return false;
    }
    if (this.#entries.size >= this.#o.maxSockets) return refuse(`${this.#o.maxSockets} connections are open already.`);
    const headroom = this.#headroom();
    if (headroom !== undefined && headroom < this.#o.fdReserve) {
      return refuse(`only ${headroom} more files could be opened; ${this.#o.fdReserve} are kept for the merges (raise the limit: ulimit -n).`);
    }
    const key = addressKey(socket.remoteAddress);
    const own = this.#waiting.get(key) ?? [];
    if (own.length >= this.#o.maxPendingPerAddress) {
      this.#throwOut(own[0]!, `${this.#o.maxPendingPerAddress} connections from ${address} wait to authenticate already; the oldest gives way.`);
    }
    if (this.#pending >= this.#o.maxPending) {
      let crowded: Entry[] | undefined;
      for (const list of this.#waiting.values()) if (crowded === undefined || list.length > crowded.length) crowded = list;
      if (crowded !== undefined) this.#throwOut(crowded[0]!, `${this.#o.maxPending} connections wait to authenticate already; the oldest of the busiest address gives way.`);
    }
    const entry: Entry = { socket, key, address, state: 'pending', evict: () => socket.destroy(), timer: undefined, counter: undefined, door: undefined };
    this.#entries.set(socket, entry);
    this.#wait(entry);
    this.#startDeadline(entry, this.#o.handshakeTimeoutMs + GRACE_MS);
    socket.once('close', () => this.#remove(entry));
    return true;
  }

  /** The door of a socket taken by `admit`, or undefined (refused, or closed since). */
  door(socket: Socket): Door | undefined {
    const entry = this.#entries.get(socket);
    if (entry === undefined) return undefined;
    entry.door ??= this.#makeDoor(entry);
    return entry.door;
  }

  /** Stop taking sockets; the ones open are the server's to close. */
  close(): void {
    this.#closed = true;
    for (const e of this.#entries.values()) clearTimeout(e.timer);
  }

  #makeDoor(entry: Entry): Door {
    return {
      address: entry.address,
      authWait: () => this.#authWait(entry.key),
      authFailed: () => this.#authFailed(entry.key),
      enterAsReader: () => {
        if (entry.state !== 'pending') return entry.state === 'reader';
        if (this.#readers >= this.#o.maxReaders) return false;
        this.#enter(entry, 'reader');
        ++this.#readers;
        return true;
      },
      enterAsViewer: () => {
        if (entry.state === 'pending') this.#enter(entry, 'viewer');
      },
      onEvict: (fn) => {
        entry.evict = fn;
      },
      watch: (maxBytes, onOver) => {
        if (entry.state !== 'pending') return;
        this.#startDeadline(entry, this.#o.handshakeTimeoutMs + GRACE_MS);
        let bytes = 0;
        const counter = (chunk: Buffer): void => {
          bytes += chunk.length;
          if (bytes <= maxBytes || entry.counter !== counter) return;
          entry.socket.off('data', counter);
          entry.counter = undefined;
          ++this.#counts.tooLarge;
          onOver(bytes);
          this.#closeNow(entry);
        };
        if (entry.counter !== undefined) entry.socket.off('data', entry.counter);
        entry.counter = counter;
        // before the websocket layer's listener: counted before it buffers anything
        entry.socket.prependListener('data', counter);
      },
      note: (code, message) => this.note(code, message),
    };
  }

  /** Log `message` as a warning unless a line of `code` was logged in the last 5 s (then count it). */
  note(code: string, message: string): void {
    const now = this.#clock();
    const last = this.#notes.get(code);
    if (last !== undefined && now - last.at < NOTE_EVERY_MS) {
      ++last.hidden;
      return;
    }
    const hidden = last?.hidden ?? 0;
    this.#notes.set(code, { at: now, hidden: 0 });
    this.#log.warn(hidden > 0 ? `${message} (and ${hidden} more ${code} in the last ${Math.round((now - last!.at) / 1000)} s)` : message);
  }

  /** A connection's own deadline ran out (it said so with `ERR_HANDSHAKE_TIMEOUT`). */
  #startDeadline(entry: Entry, ms: number): void {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      if (entry.state !== 'pending') return;
      ++this.#counts.timedOut;
      entry.socket.destroy();
    }, ms);
    entry.timer.unref();
  }

  #destroyLater(entry: Entry): void {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => entry.socket.destroy(), GRACE_MS);
    entry.timer.unref();
  }

  #wait(entry: Entry): void {
    const list = this.#waiting.get(entry.key);
    if (list === undefined) this.#waiting.set(entry.key, [entry]);
    else list.push(entry);
    ++this.#pending;
  }

  #unwait(entry: Entry): void {
    const list = this.#waiting.get(entry.key);
    const i = list?.indexOf(entry) ?? -1;
    if (i < 0) return;
    list!.splice(i, 1);
    if (list!.length === 0) this.#waiting.delete(entry.key);
    --this.#pending;
  }

  #enter(entry: Entry, state: 'reader' | 'viewer'): void {
    this.#unwait(entry);
    entry.state = state;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    if (entry.counter !== undefined) entry.socket.off('data', entry.counter);
    entry.counter = undefined;
  }

  #throwOut(entry: Entry, reason: string): void {
    this.#unwait(entry);
    entry.state = 'evicted';
    ++this.#counts.evicted;
    entry.evict(reason);
    this.#closeNow(entry);
  }

  /**
   * Close a socket that was told why (its answer is written): end it, and
   * destroy it once the answer is flushed, so that nothing more it sends is
   * read; at the latest after the grace time.
   */
  #closeNow(entry: Entry): void {
    this.#destroyLater(entry);
    const { socket } = entry;
    if (socket.destroyed) return;
    socket.once('finish', () => socket.destroy());
    socket.end();
  }

  #remove(entry: Entry): void {
    if (entry.state === 'pending') this.#unwait(entry);
    if (entry.state === 'reader') --this.#readers;
    clearTimeout(entry.timer);
    this.#entries.delete(entry.socket);
  }

  #refill(b: Bucket, burst: number, perSecond: number, now: number): void {
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
  }

  #bucket(key: string, now: number): Bucket {
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= MAX_BUCKETS) this.#prune(now);
      b = { tokens: this.#o.authBurst, at: now };
      this.#buckets.set(key, b);
    }
    this.#refill(b, this.#o.authBurst, this.#o.authPerSecond, now);
    return b;
  }

  #prune(now: number): void {
    for (const [k, b] of this.#buckets) {
      this.#refill(b, this.#o.authBurst, this.#o.authPerSecond, now);
      if (b.tokens >= this.#o.authBurst) this.#buckets.delete(k);
    }
    // still full of addresses that failed lately: forget the oldest
    for (const k of this.#buckets.keys()) {
      if (this.#buckets.size < MAX_BUCKETS) break;
      this.#buckets.delete(k);
    }
  }

  #authWait(key: string): number {
    const now = this.#clock();
    const own = this.#bucket(key, now);
    this.#refill(this.#global, this.#o.authGlobalBurst, this.#o.authGlobalPerSecond, now);
    const waitOwn = own.tokens >= 1 ? 0 : ((1 - own.tokens) / this.#o.authPerSecond) * 1000;
    const waitAll = this.#global.tokens >= 1 ? 0 : ((1 - this.#global.tokens) / this.#o.authGlobalPerSecond) * 1000;
    const wait = Math.ceil(Math.max(waitOwn, waitAll));
    if (wait > 0) ++this.#counts.throttled;
    return wait;
  }

  #authFailed(key: string): void {
    const now = this.#clock();
    ++this.#counts.authFailed;
    this.#bucket(key, now).tokens -= 1;
    this.#refill(this.#global, this.#o.authGlobalBurst, this.#o.authGlobalPerSecond, now);
    this.#global.tokens -= 1;
  }
}
