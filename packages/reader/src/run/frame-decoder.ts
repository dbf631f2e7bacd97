import { FRAME, FRAME_HEADER_BYTES, type ReadingEvent } from './reading-messages.js';

/** What the decoder hands on, in stream order. */
export interface FrameHandlers {
  read(pos: number, size: number): void;
  /**
   * Good data at `pos`. One frame may come in several calls with consecutive positions
   * (as the pipe delivers it); `data` is only valid during the call.
   */
  data(pos: number, data: Uint8Array): void;
  status(pos: number, size: number, status: string): void;
  readDone(pos: number, size: number, copied: number, error: number): void;
  event(e: ReadingEvent): void;
}

/** Longest non-data frame accepted (an event with a long message). */
const MAX_SMALL_FRAME = 16 << 20;

/**
 * The main process's decoder of the reading process's frames (reading-messages.ts): an
 * incremental state machine that takes chunks of any size and passes data on without
 * copying it.
 * @throws Error on a malformed stream (a bug, or not a reading process).
 */
export class FrameDecoder {
  readonly #h: FrameHandlers;
  /** Bytes of a frame header or small frame collected across chunks. */
  #pending: Buffer = Buffer.alloc(0);
  /** Inside a data frame: where its next byte goes, and how many are left. */
  #dataPos = 0;
  #dataLeft = 0;

  constructor(handlers: FrameHandlers) {
    this.#h = handlers;
  }

  /** True if no frame is cut in the middle. */
  get idle(): boolean {
    return this.#pending.length === 0 && this.#dataLeft === 0;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#dataLeft > 0) {
        const n = Math.min(this.#dataLeft, chunk.length - at);
        this.#h.data(this.#dataPos, chunk.subarray(at, at + n));
        this.#dataPos += n;
        this.#dataLeft -= n;
        at += n;
        continue;
      }
      // a frame's header (and for data, its position) must be whole before it is read
      let buf = chunk;
      let start = at;
      if (this.#pending.length > 0) {
        const need = this.#need(this.#pending);
        const take = Math.min(need - this.#pending.length, chunk.length - at);
        this.#pending = Buffer.concat([this.#pending, chunk.subarray(at, at + take)]);
        at += take;
        if (this.#pending.length < this.#need(this.#pending)) continue;
        buf = this.#pending;
        start = 0;
        this.#pending = Buffer.alloc(0);
        this.#frame(buf, start);
        continue;
      }
      const need = this.#need(chunk.subarray(at));
      if (chunk.length - at < need) {
        this.#pending = Buffer.from(chunk.subarray(at));
        return;
      }
      at += this.#frame(buf, start);
    }
  }

  /** Bytes needed before `#frame` can act on what `b` starts with. */
  #need(b: Buffer): number {
    if (b.length < FRAME_HEADER_BYTES) return FRAME_HEADER_BYTES;
    const type = b[0]!;
    const length = b.readUInt32LE(1);
    if (type === FRAME.data) return FRAME_HEADER_BYTES + 8;
    if (length > MAX_SMALL_FRAME) throw new Error(`internal: a reading-process frame of type ${type} and ${length} bytes`);
    return FRAME_HEADER_BYTES + length;
  }

  /** Act on the frame at `b[at]` (whole, or a data frame's header and position). @returns the bytes used. */
  #frame(b: Buffer, at: number): number {
    const type = b[at]!;
    const length = b.readUInt32LE(at + 1);
    const p = at + FRAME_HEADER_BYTES;
    switch (type) {
      case FRAME.read:
        this.#h.read(b.readDoubleLE(p), b.readDoubleLE(p + 8));
        return FRAME_HEADER_BYTES + length;
      case FRAME.data: {
        this.#dataPos = b.readDoubleLE(p);
        this.#dataLeft = length - 8;
        return FRAME_HEADER_BYTES + 8;
      }
      case FRAME.status:
        this.#h.status(b.readDoubleLE(p), b.readDoubleLE(p + 8), String.fromCharCode(b[p + 16]!));
        return FRAME_HEADER_BYTES + length;
      case FRAME.readDone:
        this.#h.readDone(b.readDoubleLE(p), b.readDoubleLE(p + 8), b.readDoubleLE(p + 16), b.readDoubleLE(p + 24));
        return FRAME_HEADER_BYTES + length;
      case FRAME.event:
        this.#h.event(JSON.parse(b.toString('utf8', p, p + length)) as ReadingEvent);
        return FRAME_HEADER_BYTES + length;
      default:
        throw new Error(`internal: unknown reading-process frame type ${type}`);
    }
  }
}
