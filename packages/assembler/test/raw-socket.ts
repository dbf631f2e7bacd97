/**
 * A websocket opened by hand on a TCP socket: one payload buffer can then be
 * written to many sockets without the client copying it (ws masks a copy of
 * every message it sends), as an attacker would.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';

/** Upgrade a fresh TCP connection to `127.0.0.1:port` (from `localAddress`) to a websocket on `/`; resolves with the socket closed if the server closes it before it answers. */
export async function handUpgrade(port: number, localAddress?: string): Promise<Socket> {
  const s = connect({ port, host: '127.0.0.1', localAddress });
  s.on('error', () => undefined);
  await new Promise<void>((ok, fail) => {
    s.once('connect', () => ok());
    s.once('error', fail);
  });
  s.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  let head = '';
  await new Promise<void>((ok, fail) => {
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.off('data', onData);
      s.off('close', onClose);
      if (head.startsWith('HTTP/1.1 101')) ok();
      else fail(new Error(`no upgrade: ${head.split('\r\n')[0]}`));
    };
    // the server may throw a waiting socket out before it answers (a newer one of the same
    // address took its place): the caller gets it closed, never a wait for ever
    const onClose = (): void => {
      s.off('data', onData);
      ok();
    };
    s.on('data', onData);
    s.once('close', onClose);
  });
  return s;
}

/** The header of one masked binary frame of `size` bytes with mask key 0 (the payload goes as it is). */
export function frameHeader(size: number): Buffer {
  const h = Buffer.alloc(14);
  h[0] = 0x82;
  h[1] = 0x80 | 127;
  h.writeBigUInt64BE(BigInt(size), 2);
  return h;
}

/** Resolves once `s` is closed. */
export function closedOf(s: Socket): Promise<void> {
  return new Promise((r) => {
    if (s.closed) r();
    else s.once('close', () => r());
  });
}
