import { writeSync, writevSync } from 'node:fs';

import { FRAME, FRAME_HEADER_BYTES, READ_CHARGE, type ReadingEvent } from './reading-messages.js';

/** Data above this goes out in its own write, straight from the engine's buffer. */
const DIRECT_BYTES = 4096;
const BUFFER_BYTES = 256 << 10;
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/**
 * The reading process's side of the stream to the main process: frames gathered in a
 * buffer and written with blocking writes (the reading process does nothing else
 * meanwhile; a full pipe is the main process's backpressure). `flush` is called before
 * every read, so a read that hangs finds everything before it already sent.
 * A write that fails (the main process is gone) ends the process.
 */
export class FrameWriter {
  readonly #fd: number;
  readonly #buf = Buffer.allocUnsafe(BUFFER_BYTES);
  #used = 0;
  /** Grant units sent: data bytes, and `READ_CHARGE` a read (what grants count). */
  sent = 0;

  constructor(fd: number) {
    this.#fd = fd;
  }

  #room(n: number): void {
    if (this.#used + n > BUFFER_BYTES) this.flush();
  }

  #header(type: number, length: number): void {
    this.#buf[this.#used] = type;
    this.#buf.writeUInt32LE(length, this.#used + 1);
    this.#used += FRAME_HEADER_BYTES;
  }

  read(pos: number, size: number): void {
    this.sent += READ_CHARGE;
    this.#room(FRAME_HEADER_BYTES + 16);
    this.#header(FRAME.read, 16);
    this.#buf.writeDoubleLE(pos, this.#used);
    this.#buf.writeDoubleLE(size, this.#used + 8);
    this.#used += 16;
  }

  data(pos: number, data: Uint8Array): void {
    this.sent += data.length;
    if (data.length > DIRECT_BYTES) {
      this.#room(FRAME_HEADER_BYTES + 8);
      this.#header(FRAME.data, 8 + data.length);
      this.#buf.writeDoubleLE(pos, this.#used);
      this.#used += 8;
      this.#write([this.#buf.subarray(0, this.#used), data]);
      this.#used = 0;
      return;
    }
    this.#room(FRAME_HEADER_BYTES + 8 + data.length);
    this.#header(FRAME.data, 8 + data.length);
    this.#buf.writeDoubleLE(pos, this.#used);
    this.#buf.set(data, this.#used + 8);
    this.#used += 8 + data.length;
  }

  status(pos: number, size: number, status: string): void {
    this.#room(FRAME_HEADER_BYTES + 17);
    this.#header(FRAME.status, 17);
    this.#buf.writeDoubleLE(pos, this.#used);
    this.#buf.writeDoubleLE(size, this.#used + 8);
    this.#buf[this.#used + 16] = status.charCodeAt(0);
    this.#used += 17;
  }

  readDone(pos: number, size: number, copied: number, error: number): void {
    this.#room(FRAME_HEADER_BYTES + 32);
    this.#header(FRAME.readDone, 32);
    this.#buf.writeDoubleLE(pos, this.#used);
    this.#buf.writeDoubleLE(size, this.#used + 8);
    this.#buf.writeDoubleLE(copied, this.#used + 16);
    this.#buf.writeDoubleLE(error, this.#used + 24);
    this.#used += 32;
  }

  event(e: ReadingEvent): void {
    const json = Buffer.from(JSON.stringify(e), 'utf8');
    if (json.length + FRAME_HEADER_BYTES > BUFFER_BYTES) {
      this.flush();
      const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
      head[0] = FRAME.event;
      head.writeUInt32LE(json.length, 1);
      this.#write([head, json]);
      return;
    }
    this.#room(FRAME_HEADER_BYTES + json.length);
    this.#header(FRAME.event, json.length);
    json.copy(this.#buf, this.#used);
    this.#used += json.length;
  }

  flush(): void {
    if (this.#used === 0) return;
    const n = this.#used;
    this.#used = 0;
    this.#write([this.#buf.subarray(0, n)]);
  }

  #write(parts: Uint8Array[]): void {
    const todo = parts.filter((p) => p.length > 0);
    while (todo.length > 0) {
      let n: number;
      try {
        n = todo.length === 1 ? writeSync(this.#fd, todo[0]!) : writevSync(this.#fd, todo);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'EINTR') continue;
        if (code === 'EAGAIN') {
          Atomics.wait(PAUSE, 0, 0, 1); // a non-blocking pipe that is full: wait for the main process to read
          continue;
        }
        // the main process is gone: nothing here is worth keeping
        process.exit(0);
      }
      while (n > 0 && todo.length > 0) {
        const first = todo[0]!;
        if (n >= first.length) {
          n -= first.length;
          todo.shift();
        } else {
          todo[0] = first.subarray(n);
          n = 0;
        }
      }
    }
  }
}
