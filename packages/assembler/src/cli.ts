/**
 * `ddferry-assembler`: the command line. `run` parses the arguments, serves
 * until `signal` aborts, and returns the exit status; it never exits itself.
 */
import { parseArgs } from 'node:util';

import { PROTOCOL_VERSION, readTokenFile } from '@ddferry/protocol';

import { AssemblerError, messageOf } from './errors.js';
import { runImport } from './import-command.js';
import { runImportDdrescue } from './import-ddrescue.js';
import { pageUrls } from './live/live-server.js';
import { AssemblerProgress } from './progress.js';
import { ProgressDisplay, parseProgressInterval } from './progress-view.js';
import type { Log } from './server.js';
import { serve } from './server.js';

/** The ddferry version (all packages share it: lerna's fixed mode). */
export const VERSION = '0.1.0';

export const DEFAULT_LISTEN = Object.freeze({ host: '0.0.0.0', port: 4455 });

export const USAGE = `Usage: ddferry-assembler serve IMAGE... [--listen HOST:PORT] [--token-file FILE]
       ddferry-assembler import DIR IMAGE --token-file FILE [--rescue ID]
       ddferry-assembler import-ddrescue CHUNK.raw --domain CHUNK.map [CHUNK2.raw --domain CHUNK2.map ...] [--map COMMON.map] [--packed] IMAGE

Receive rescued pieces from ddferry-reader over the network and merge them
into IMAGE, keeping IMAGE.map (a GNU ddrescue 1.27 mapfile) and
IMAGE.ddferry.json (the rescue the image belongs to) next to it.
Each rescue gets the IMAGE bound to it, else the first unbound IMAGE.

Options:
  --listen HOST:PORT   address to listen on (default 0.0.0.0:4455; [::1]:PORT for IPv6)
  --token-file FILE    shared secret, the same file on both machines (chmod 600);
                       without it anyone on the network can send data
  --json               progress as one JSON object a line on stdout (for scripts);
                       the address line becomes {"type":"listening","url":...}
  --progress-interval S  seconds between progress lines (one per reader that
                       changed) or JSON objects [10]; on a terminal the readers'
                       progress is redrawn in place once a second
  -h, --help           this text
  -V, --version        the version

Prints "listening ws://HOST:PORT" on stdout once ready; events go to stderr.
SIGINT or SIGTERM: stop accepting, finish the merge in progress, save, exit 0.

import merges the bundles of a stick (DIR: where it is mounted) and writes
a receipt on it for the reader (see import --help).

import-ddrescue merges a chunk file made on PC_A by
'ddrescue -m CHUNK.map SOURCE CHUNK.raw COMMON.map' (see import-ddrescue --help).
`;

/** Where the command writes. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** True if stderr is a terminal: the progress is redrawn in place. */
  readonly stderrIsTty?: boolean | undefined;
}

/** Exit statuses. */
export const EXIT = Object.freeze({ ok: 0, error: 1, badMapfile: 2, internal: 3 });

/**
 * `HOST:PORT`, `[IPV6]:PORT`, or `:PORT` (all addresses).
 * @throws AssemblerError `ERR_USAGE`.
 */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) {
    throw new AssemblerError('ERR_USAGE', '--listen', `"${text}" is not HOST:PORT (for example 0.0.0.0:4455 or [::1]:4455).`);
  }
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? DEFAULT_LISTEN.host : host, port };
}

function exitFor(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return EXIT.internal;
  if (code.startsWith('ERR_MAPFILE_') || code === 'ERR_IMAGE_BINDING_BAD') return EXIT.badMapfile;
  return EXIT.error;
}

/**
 * Run `ddferry-assembler ARGS`.
 * @returns 0 after a clean stop (help, or `signal` aborted), 1 for usage and
 *   start-up errors (printed with their code), 2 for a malformed IMAGE.map or
 *   IMAGE.ddferry.json, 3 for an internal error.
 */
export async function run(argv: readonly string[], io: CliIo, signal?: AbortSignal): Promise<number> {
  const fail = (err: unknown): number => {
    const code = (err as { code?: unknown } | null)?.code;
    const status = exitFor(err);
    if (status === EXIT.internal) io.stderr(`ddferry-assembler: internal error: ${(err as Error).stack ?? String(err)}\n`);
    else io.stderr(`ddferry-assembler: ${String(code)}: ${messageOf(err)}\n`);
    if (code === 'ERR_USAGE') io.stderr("Try 'ddferry-assembler --help'.\n");
    return status;
  };
  if (argv[0] === 'import') return runImport(argv.slice(1), io, signal);
  if (argv[0] === 'import-ddrescue') {
    try {
      return await runImportDdrescue(argv.slice(1), io, signal);
    } catch (err) {
      return fail(err);
    }
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        listen: { type: 'string' }, 'token-file': { type: 'string' }, help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' }, json: { type: 'boolean' }, 'progress-interval': { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    return fail(new AssemblerError('ERR_USAGE', 'arguments', messageOf(err)));
  }
  const { values, positionals } = parsed;
  const [command, ...images] = positionals;
  if (values.help === true || command === 'help') {
    io.stdout(USAGE);
    return EXIT.ok;
  }
  if (values.version === true || command === 'version') {
    io.stdout(`ddferry-assembler ${VERSION} (ddferry protocol ${PROTOCOL_VERSION}, GNU ddrescue 1.27 mapfiles)\n`);
    return EXIT.ok;
  }
  try {
    if (command !== 'serve') {
      throw new AssemblerError('ERR_USAGE', command ?? 'command', command === undefined ? 'Give a command: serve.' : 'Unknown command; the command is serve.');
    }
    if (images.length === 0) throw new AssemblerError('ERR_USAGE', 'serve', 'Give at least one IMAGE.');
    const listen = values.listen === undefined ? DEFAULT_LISTEN : parseListen(values.listen);
    const secret = values['token-file'] === undefined ? undefined : await readTokenFile(values['token-file']);
    const mode = values.json === true ? 'json' : io.stderrIsTty === true ? 'tty' : 'lines';
    const interval = values['progress-interval'] === undefined ? undefined : parseProgressInterval(values['progress-interval']);
    const progress = new AssemblerProgress({ clock: Date.now });
    const display = new ProgressDisplay({
      mode, interval, write: mode === 'json' ? io.stdout : io.stderr, messages: io.stderr, clock: Date.now, snapshot: () => progress.snapshot(),
    });
    const say = (prefix: string) => (message: string): void => display.message(`ddferry-assembler: ${prefix}${message}`);
    const log: Log = { info: say(''), warn: say('warning: '), error: say('error: ') };
    if (signal?.aborted) return EXIT.ok;
    const server = await serve({ images, listen, secret, log, progress });
    progress.images = server.images;
    io.stdout(mode === 'json' ? `${JSON.stringify({ type: 'listening', url: server.url })}\n` : `listening ${server.url}\n`);
    if (server.live !== undefined) log.info(`live map page: ${pageUrls(server.host, server.port).join(' or ')}${secret === undefined ? ' (no token: anyone on the network can watch)' : ' with #token=TOKEN appended (the text of the token file)'}`);
    display.start();
    await new Promise<void>((resolve) => {
      if (signal === undefined) return;
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
    });
    log.info('stopping: finishing the merges in progress…');
    await server.close();
    display.finish();
    log.info('stopped; every merged piece is saved.');
    return EXIT.ok;
  } catch (err) {
    return fail(err);
  }
}
