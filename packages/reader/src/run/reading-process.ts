import { type ChildProcess, spawn } from 'node:child_process';
import { basename } from 'node:path';
import { isSea } from 'node:sea';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';

import { ReaderError } from '../errors.js';
import { type FrameHandlers, FrameDecoder } from './frame-decoder.js';
import { READING_PROCESS_ARG, type ReadingControl, type ReadingInit, encodeControl } from './reading-messages.js';

/** Where the running reader comes from, as `readingProcessCommand` needs it. */
export interface ReadingProcessHost {
  /** The running executable: Node, or a single executable application (SEA). */
  readonly execPath: string;
  /** Node's own options of this process (`--import tsx`, ...). */
  readonly execArgv: readonly string[];
  /** The URL of the module holding `readingProcessCommand`: `run/reading-process.js`, its `.ts`, or a bundle. */
  readonly moduleUrl: string;
  /** True in a SEA: the executable is the program, with no entry script. */
  readonly isSea: boolean;
}

/** This process, as `readingProcessCommand` sees it. */
export function currentHost(): ReadingProcessHost {
  return { execPath: process.execPath, execArgv: process.execArgv, moduleUrl: import.meta.url, isSea: isSea() };
}

/**
 * The command that starts a reading process, the reader's own program with `__reading-process`:
 *
 * | the reader runs as | command |
 * |---|---|
 * | a SEA (`dist/bin/ddferry-reader`) | `EXECUTABLE __reading-process` |
 * | the workspace (`bin/ddferry-reader.js`, `dist/`) | `NODE [execArgv] dist/main.js __reading-process` |
 * | its TypeScript under a loader (tests) | `NODE [execArgv] src/main.ts __reading-process` |
 * | a bundle (`ddferry-reader.mjs`) | `NODE [execArgv] ddferry-reader.mjs __reading-process` |
 *
 * A bundle is the module that is neither `reading-process.js` nor `.ts`: the reader's
 * code is in one file, which is its own entry. `--inspect*` options are not passed on
 * (the port would be taken).
 */
export function readingProcessCommand(host: ReadingProcessHost = currentHost()): { file: string; args: string[] } {
  if (host.isSea) return { file: host.execPath, args: [READING_PROCESS_ARG] };
  const own = new URL(host.moduleUrl);
  const name = basename(own.pathname);
  const entry = name === 'reading-process.ts' ? new URL('../main.ts', own) : name === 'reading-process.js' ? new URL('../main.js', own) : own;
  const execArgv = host.execArgv.filter((a) => !a.startsWith('--inspect'));
  return { file: host.execPath, args: [...execArgv, fileURLToPath(entry), READING_PROCESS_ARG] };
}

/** Longest stderr text of the reading process kept for an error message. */
const STDERR_KEEP = 8192;

/**
 * The main process's handle on its reading process (reading-child.ts): starts it in its
 * own session (a terminal's Ctrl-C reaches only the main process, which decides), feeds
 * its frames to `handlers`, and sends it the init, grants and stop. The main process
 * never waits on it: `stop` asks it to end, and a reading process stuck in a read is
 * left to end by itself when the read returns.
 */
export class ReadingProcess {
  readonly pid: number;
  readonly #child: ChildProcess;
  readonly #control: Writable;
  readonly #decoder: FrameDecoder;
  #stderr = '';
  #exited = false;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Milliseconds (Date.now) of the last frame received. */
  lastHeard = Date.now();

  private constructor(child: ChildProcess, handlers: FrameHandlers) {
    this.#child = child;
    this.pid = child.pid!;
    this.#control = child.stdin!;
    this.#decoder = new FrameDecoder(handlers);
    const frames = child.stdio[3] as Readable;
    frames.on('data', (chunk: Buffer) => {
      this.lastHeard = Date.now();
      this.#decoder.push(chunk);
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (t: string) => {
      this.#stderr = (this.#stderr + t).slice(-STDERR_KEEP);
    });
    // a write to a reading process that has gone fails; its exit tells the rest
    this.#control.on('error', () => undefined);
    const framesEnded = new Promise<void>((resolve) => {
      frames.once('close', resolve);
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        // every frame it wrote is read before the exit is told
        void framesEnded.then(() => {
          this.#exited = true;
          resolve({ code, signal });
        });
      });
    });
  }

  /**
   * Start a reading process and send it `init`.
   * @throws ReaderError `ERR_READING_PROCESS` if it cannot be started.
   */
  static start(init: ReadingInit, handlers: FrameHandlers): ReadingProcess {
    const { file, args } = readingProcessCommand();
    let child: ChildProcess;
    try {
      child = spawn(file, args, { stdio: ['pipe', 'ignore', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      throw new ReaderError('ERR_READING_PROCESS', file, `can't start the reading process (${(err as Error).message}). Check that ${file} can run, then run the same command again.`, { cause: err });
    }
    if (child.pid === undefined) {
      // the 'error' event that tells the same comes later: this error says it
      child.once('error', () => undefined);
      throw new ReaderError('ERR_READING_PROCESS', file, `can't start the reading process with ${file}. Check that it exists and can run (and that /dev/null exists), then run the same command again.`);
    }
    const p = new ReadingProcess(child, handlers);
    p.#send({ kind: 'init', ...init });
    return p;
  }

  get hasExited(): boolean {
    return this.#exited;
  }

  /** What the reading process wrote on stderr (a crash's trace), last part. */
  get stderr(): string {
    return this.#stderr;
  }

  start(): void {
    this.#send({ kind: 'start' });
  }

  grant(total: number): void {
    this.#send({ kind: 'grant', total });
  }

  /**
   * Ask it to stop: it exits at once if it is between reads (everything read was sent);
   * a reading process in a read ends when the read returns. The pipes are let go, so the
   * main process may exit without waiting for it.
   */
  stop(): void {
    if (this.#exited) return;
    this.#send({ kind: 'stop' });
    this.#control.end();
  }

  /** Forget it: the main process may end while it still waits on a read. */
  abandon(): void {
    this.stop();
    this.#child.unref();
    (this.#child.stdio[3] as Readable & { unref?: () => void }).unref?.();
    (this.#child.stderr as Readable & { unref?: () => void }).unref?.();
    (this.#control as Writable & { unref?: () => void }).unref?.();
  }

  #send(c: ReadingControl): void {
    if (this.#exited || this.#control.destroyed || this.#control.writableEnded) return;
    this.#control.write(encodeControl(c));
  }
}
