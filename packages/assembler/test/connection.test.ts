import { EventEmitter } from 'node:events';

import type { Message, SealedPiece } from '@ddferry/protocol';
import { authHmac, decodeEnvelope, DEFAULT_LIMITS, encodeEnvelope, encodePieceFrames } from '@ddferry/protocol';
import { expect } from 'chai';
import type { WebSocket } from 'ws';

import { Connection } from '../src/connection.js';
import type { ConnectionContext } from '../src/connection.js';
import { Image } from '../src/image.js';
import { MergeQueue } from '../src/merge.js';

import { hello, hold, makePiece, seal, tempDir } from './helpers.js';

/** A websocket that records what the connection does with it. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  readonly sent: Message[] = [];
  readonly calls: string[] = [];
  send(bytes: Uint8Array): void {
    this.sent.push(decodeEnvelope(bytes));
  }
  pause(): void {
    this.calls.push('pause');
  }
  resume(): void {
    this.calls.push('resume');
  }
  close(code: number): void {
    this.calls.push(`close ${code}`);
    this.readyState = 3;
  }
  deliver(msg: Message | Uint8Array): void {
    this.emit('message', Buffer.from(msg instanceof Uint8Array ? msg : encodeEnvelope(msg)), true);
  }
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); ++i) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error('timed out');
}

describe('Connection', () => {
  let cleanup: () => Promise<void>;
  let image: Image;
  let socket: FakeSocket;
  let queue: MergeQueue;

  beforeEach(async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    image = await Image.open(`${t.dir}/disk.img`);
    queue = new MergeQueue(image);
    socket = new FakeSocket();
  });
  afterEach(async () => {
    socket.emit('close');
    await image.close();
    await cleanup();
  });

  async function ready(overrides: Partial<ConnectionContext>): Promise<Connection> {
    const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
    const ctx: ConnectionContext = {
      limits: DEFAULT_LIMITS, secret: 'k', log, queues: [queue], maxUnmergedBytes: 1 << 30, maxUnmergedPieces: 1 << 20, handshakeTimeoutMs: 10_000, ...overrides,
    };
    const c = new Connection(socket as unknown as WebSocket, '127.0.0.1:1', ctx);
    const h = hello();
    socket.deliver(h);
    const challenge = socket.sent[0];
    if (challenge?.type !== 'challenge') throw new Error('no challenge');
    socket.deliver({ type: 'auth', hmac: authHmac('k', challenge.serverNonce, h.clientNonce, h.rescueId) });
    await until(() => socket.sent.length === 2);
    expect(socket.sent[1]?.type).to.equal('welcome');
    return c;
  }

  function deliverPiece(seq: number, size: number): SealedPiece {
    const sealed = seal(makePiece(seq, 0, [{ pos: seq * size, size, status: '+' }]), 'k');
    for (const frame of encodePieceFrames(sealed)) socket.deliver(frame);
    return sealed;
  }

  it('stops reading when its unmerged pieces reach maxUnmergedPieces, and reads again once they are merged', async () => {
    await ready({ maxUnmergedPieces: 2 });
    const { release, held } = hold(image);
    deliverPiece(1, 512);
    expect(socket.calls).to.deep.equal([]);
    deliverPiece(2, 512);
    expect(socket.calls).to.deep.equal(['pause']);
    release();
    await held;
    await until(() => socket.calls.length === 2);
    expect(socket.calls).to.deep.equal(['pause', 'resume']);
    const merged = (): number[] => socket.sent.flatMap((m) => (m.type === 'receipt' ? m.merged.map((r) => r.seq) : []));
    await until(() => merged().length === 2);
    expect(merged()).to.deep.equal([1, 2]);
  });

  it('stops reading when its unmerged bytes reach maxUnmergedBytes', async () => {
    await ready({ maxUnmergedBytes: 1000 });
    const { release, held } = hold(image);
    deliverPiece(1, 512);
    expect(socket.calls).to.deep.equal([]);
    deliverPiece(2, 512);
    expect(socket.calls).to.deep.equal(['pause']);
    release();
    await held;
    await until(() => socket.calls.includes('resume'));
  });

  it('sends receipts, naming the piece by seq and header hash, only after the mapfile and the record of pieces are saved', async () => {
    await ready({});
    const { release, held } = hold(image);
    const sealed = deliverPiece(1, 512);
    await new Promise((r) => setTimeout(r, 30));
    expect(socket.sent.filter((m) => m.type === 'receipt')).to.deep.equal([]);
    release();
    await held;
    await until(() => socket.sent.some((m) => m.type === 'receipt'));
    expect(image.isMerged(1, sealed.headerHash)).to.equal(true);
    expect(socket.sent.filter((m) => m.type === 'receipt')).to.deep.equal([{ type: 'receipt', merged: [{ seq: 1, headerHash: sealed.headerHash }], rejected: [] }]);
  });
});
