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
 * (the port would be taken), nor a script given on the command line (`-e`, `-p`,
 * `--input-type`: the reading process would run it instead of the entry).
 */
export function readingProcessCommand(host: ReadingProcessHost = currentHost()): { file: string; args: string[] } {
  if (host.isSea) return { file: host.execPath, args: [READING_PROCESS_ARG] };
  const own = new URL(host.moduleUrl);
  const name = basename(own.pathname);
  const entry = name === 'reading-process.ts' ? new URL('../main.ts', own) : name === 'reading-process.js' ? new URL('../main.js', own) : own;
  return { file: host.execPath, args: [...passedOn(host.execArgv), fileURLToPath(entry), READING_PROCESS_ARG] };
}

/** Node options that take the next argument as their value, and are not passed on. */
const SCRIPT_OPTIONS = new Set(['-e', '--eval', '-p', '--print', '--input-type']);

/** The options of this process a reading process gets: all but `--inspect*` and a script given on the command line. */
export function passedOn(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; ++i) {
    const a = execArgv[i]!;
    if (a.startsWith('--inspect')) continue;
    if (SCRIPT_OPTIONS.has(a)) {
      ++i;
      continue;
    }
    if (/^(?:--eval|--print|--input-type)=/.test(a)) continue;
    out.push(a);
  }
  return out;
}

/** Standard streams of a reading process: control in, nothing out, stderr, frames on fd 3. */
const STDIO: ['pipe', 'ignore', 'pipe', 'pipe'] = ['pipe', 'ignore', 'pipe', 'pipe'];

/**
 * Spawn a reading process in its own session (a terminal's Ctrl-C reaches only the main process).
 * @throws ReaderError `ERR_READING_PROCESS` if it cannot be started.
 */
function spawnReading(): ChildProcess {
  const { file, args } = readingProcessCommand();
  let child: ChildProcess;
  try {
    child = spawn(file, args, { stdio: STDIO, detached: true });
  } catch (err) {
    throw new ReaderError('ERR_READING_PROCESS', file, `can't start the reading process (${(err as Error).message}). Check that ${file} can run, then run the same command again.`, { cause: err });
  }
  if (child.pid === undefined) {
    // the 'error' event that tells the same comes later: this error says it
    child.once('error', () => undefined);
    throw new ReaderError('ERR_READING_PROCESS', file, `can't start the reading process with ${file}. Check that it exists and can run (and that /dev/null exists), then run the same command again.`);
  }
  return child;
}

/** A reading process started ahead (`startReadingProcessAhead`), not yet taken. */
let ahead: ChildProcess | undefined;

/** The streams that would keep this process alive, each with ref and unref. */
function pipesOf(child: ChildProcess): { ref?: () => void; unref?: () => void }[] {
  return [child.stdin, child.stderr, child.stdio[3]].filter((s) => s !== null && s !== undefined) as { ref?: () => void; unref?: () => void }[];
}

/**
 * Start the reading process now, while this process still loads the command's modules
 * (starting Node and loading the reader's modules takes a few tenths of a second, in
 * which the source could already be opened): `ReadingProcess.start` takes it. Until
 * taken it keeps nothing alive: a command that never reads exits, the reading
 * process's control input ends with it, and it ends too. A failure to start is left
 * for `ReadingProcess.start` to report.
 */
export function startReadingProcessAhead(): void {
  if (ahead !== undefined) return;
  let child: ChildProcess;
  try {
    child = spawnReading();
  } catch {
    return;
  }
  child.once('error', () => undefined);
  child.unref();
  for (const p of pipesOf(child)) p.unref?.();
  child.once('exit', () => {
    if (ahead === child) ahead = undefined;
  });
  ahead = child;
}

/** The pid of the reading process started ahead and not yet taken, if any. */
export function readingProcessAheadPid(): number | undefined {
  return ahead?.pid;
}

/** The reading process started ahead, if it still runs, now keeping this process alive. */
function takeAhead(): ChildProcess | undefined {
  const child = ahead;
  ahead = undefined;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return undefined;
  child.ref();
  for (const p of pipesOf(child)) p.ref?.();
  return child;
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
  /** Abandoned: whatever it still sends is dropped, never handled. */
  #abandoned = false;
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
      if (this.#abandoned) return;
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
   * Start a reading process (or take the one started ahead) and send it `init`.
   * @throws ReaderError `ERR_READING_PROCESS` if it cannot be started.
   */
  static start(init: ReadingInit, handlers: FrameHandlers): ReadingProcess {
    const p = new ReadingProcess(takeAhead() ?? spawnReading(), handlers);
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

  /**
   * Forget it: the main process may end while it still waits on a read. What it sends
   * once its read returns is dropped: the run that owned it has ended, and nothing it
   * reads may reach a piece, a seq or a map any more (its ranges are read again).
   */
  abandon(): void {
    this.#abandoned = true;
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
