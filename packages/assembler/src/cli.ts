/**
 * `ddferry-assembler`: the command line. `run` parses the arguments, serves
 * until `signal` aborts, and returns the exit status; it never exits itself.
 */
import { open } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import { collectAfterCallbacks, makeSecretText, printable, PROTOCOL_VERSION, raiseMallocThresholds, readTokenFile } from '@ddferry/protocol';

import { AssemblerError, errnoOf, messageOf } from './errors.js';
import { IMPORT_USAGE, runImport } from './import-command.js';
import type { CliIo } from './cli-io.js';
import { IMPORT_DDRESCUE_USAGE, runImportDdrescue } from './import-ddrescue.js';

export type { CliIo } from './cli-io.js';
import { pageUrls } from './live/live-server.js';
import { PREPARE_STICK_USAGE, runPrepareStick } from './prepare-stick.js';
import { AssemblerProgress } from './progress.js';
import { assemblerDisplay, parseProgressInterval } from './progress-view.js';
import type { Log } from './server.js';
import { SERVE_DEFAULTS, serve } from './server.js';

/** The ddferry version (all packages share it: lerna's fixed mode). */
export const VERSION = '0.1.0';

export const DEFAULT_LISTEN = Object.freeze({ host: '0.0.0.0', port: 4455 });

export const USAGE = `Usage: ddferry-assembler COMMAND [ARGS]

Commands:
  serve IMAGE... [--listen HOST:PORT] [--token-file FILE]
        receive rescued pieces from ddferry-reader over the network and merge
        them into IMAGE (see serve --help)
  import DIR IMAGE --token-file FILE [--rescue ID]
        merge the bundles of a stick mounted at DIR and write a receipt on it
        (see import --help)
  import-ddrescue CHUNK.raw --domain CHUNK.map [...] [--map COMMON.map] [--packed] IMAGE
        merge chunk files made on PC_A with 'ddrescue -m' (see import-ddrescue --help)
  token [FILE]
        make a shared token for --token-file (see token --help)
  prepare-stick DIR [--plan JOBDIR] [--token-file FILE]
        write the reader executable and how to run it on PC_A onto the stick
        mounted at DIR, never the token (see prepare-stick --help)
  help [COMMAND]    this text, or the command's
  -V, --version     the version

IMAGE.map (a GNU ddrescue 1.27 mapfile) and IMAGE.ddferry.json (the rescue the
image belongs to) are kept next to each IMAGE.
`;

export const SERVE_USAGE = `Usage: ddferry-assembler serve IMAGE... [--listen HOST:PORT] [--token-file FILE]

Receive rescued pieces from ddferry-reader over the network and merge them
into IMAGE, keeping IMAGE.map (a GNU ddrescue 1.27 mapfile) and
IMAGE.ddferry.json (the rescue the image belongs to) next to it.
Each rescue gets the IMAGE bound to it, else the first unbound IMAGE.

Options:
  --listen HOST:PORT   address to listen on (default 0.0.0.0:4455; [::1]:PORT for IPv6)
  --token-file FILE    shared secret, the same file on both machines (chmod 600,
                       at least 128 bits: make one with 'ddferry-assembler token FILE');
                       without it anyone on the network can send data
  --max-memory SIZE    piece data held at once over all readers (default 512M;
                       K, M, G: KiB, MiB, GiB); a reader past it waits
  --json               progress as one JSON object a line on stdout (for scripts);
                       the address line becomes {"type":"listening","url":...}
  --progress-interval S  seconds between progress lines (one per reader that
                       changed) or JSON objects [10]; on a terminal the readers'
                       progress is redrawn in place once a second
  -h, --help           this text

Before a peer proves it knows the token it may send a few KiB, has 5 s, waits
in a small room apart from the readers already in (the oldest waiting gives
way), and may try the token a few times a minute; pages of other sites are
refused.

Prints "listening ws://HOST:PORT" on stdout once ready; events go to stderr.
SIGINT or SIGTERM: stop accepting, finish the merge in progress, save, exit 0.
`;

export const TOKEN_USAGE = `Usage: ddferry-assembler token [FILE]

Make a shared token: 28 random base32 characters (140 bits) in groups of four,
K7QM-2XWD-... . With FILE, write it there (mode 600; an existing FILE is kept
and refused) and print it; else print it. Copy the file to the other machine,
or type the token there into a file: case, dashes and spaces do not matter.
Give the file to both sides with --token-file.

Options:
  -h, --help   this text
`;

/** Each command's own help. */
const COMMAND_USAGE: Readonly<Record<string, string>> = {
  serve: SERVE_USAGE, import: IMPORT_USAGE, 'import-ddrescue': IMPORT_DDRESCUE_USAGE, token: TOKEN_USAGE, 'prepare-stick': PREPARE_STICK_USAGE,
};

/** Where the command writes. */
/**
 * A size in bytes: digits, optionally followed by K, M or G (KiB, MiB, GiB;
 * `KiB`, `MB`... are read the same).
 * @throws AssemblerError `ERR_USAGE`.
 */
export function parseSize(text: string, option: string): number {
  const m = /^(\d{1,15})\s*([KMG])?(?:i?B)?$/i.exec(text.trim());
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m?.[2] ?? '').toUpperCase() as '' | 'K' | 'M' | 'G'];
  const n = m === null ? NaN : Number(m[1]) * unit;
  if (!Number.isSafeInteger(n) || n <= 0) throw new AssemblerError('ERR_USAGE', option, `"${text}" is not a size (for example 512M or 2G).`);
  return n;
}

/** `token [FILE]`. */
async function runToken(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...argv], options: { help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  if (values.help === true) {
    io.stdout(TOKEN_USAGE);
    return EXIT.ok;
  }
  if (positionals.length > 1) throw new AssemblerError('ERR_USAGE', 'token', 'Give at most one FILE.');
  const token = makeSecretText();
  const [file] = positionals;
  if (file !== undefined) {
    let fh;
    try {
      fh = await open(file, 'wx', 0o600);
    } catch (err) {
      const code = errnoOf(err);
      const hint = code === 'EEXIST' ? 'It exists and is kept: give a new name, or remove it first.' : 'Check the folder exists and is writable.';
      throw new AssemblerError('ERR_TOKEN_FILE_WRITE', file, `Cannot create the token file (${code ?? messageOf(err)}). ${hint}`, { cause: err });
    }
    try {
      await fh.writeFile(`${token}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    io.stderr(`ddferry-assembler: token written to ${file} (mode 600). Copy the file to the other machine, or type the token there into a file (chmod 600); give it to both sides with --token-file.\n`);
  }
  io.stdout(`${token}\n`);
  return EXIT.ok;
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
  // the commands that move data keep freed memory for the next buffers
  if (argv[0] === 'import' || argv[0] === 'import-ddrescue') raiseMallocThresholds();
  if (argv[0] === 'import') return runImport(argv.slice(1), io, signal);
  if (argv[0] === 'import-ddrescue' || argv[0] === 'token' || argv[0] === 'prepare-stick') {
    try {
      if (argv[0] === 'prepare-stick') return await runPrepareStick(argv.slice(1), io, VERSION);
      return await (argv[0] === 'token' ? runToken(argv.slice(1), io) : runImportDdrescue(argv.slice(1), io, signal));
    } catch (err) {
      return fail(err instanceof TypeError && errnoOf(err)?.startsWith('ERR_PARSE_ARGS_') === true ? new AssemblerError('ERR_USAGE', argv[0], messageOf(err)) : err);
    }
  }
  if (argv[0] === 'help') {
    const usage = argv[1] === undefined ? USAGE : COMMAND_USAGE[argv[1]];
    if (usage === undefined) return fail(new AssemblerError('ERR_USAGE', argv[1] ?? 'help', 'No such command; the commands are serve, import, import-ddrescue, token and prepare-stick.'));
    io.stdout(usage);
    return EXIT.ok;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        listen: { type: 'string' }, 'token-file': { type: 'string' }, help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' }, json: { type: 'boolean' }, 'progress-interval': { type: 'string' }, 'max-memory': { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    return fail(new AssemblerError('ERR_USAGE', 'arguments', messageOf(err)));
  }
  const { values, positionals } = parsed;
  const [command, ...images] = positionals;
  if (values.help === true) {
    io.stdout(command === 'serve' ? SERVE_USAGE : USAGE);
    return EXIT.ok;
  }
  if (values.version === true || command === 'version') {
    io.stdout(`ddferry-assembler ${VERSION} (ddferry protocol ${PROTOCOL_VERSION}, GNU ddrescue 1.27 mapfiles)\n`);
    return EXIT.ok;
  }
  try {
    if (command !== 'serve') {
      throw new AssemblerError('ERR_USAGE', command ?? 'command', command === undefined ? 'Give a command: serve, import, import-ddrescue or token.' : 'Unknown command; the commands are serve, import, import-ddrescue and token.');
    }
    if (images.length === 0) throw new AssemblerError('ERR_USAGE', 'serve', 'Give at least one IMAGE.');
    const listen = values.listen === undefined ? DEFAULT_LISTEN : parseListen(values.listen);
    const secret = values['token-file'] === undefined ? undefined : await readTokenFile(values['token-file']);
    const mode = values.json === true ? 'json' : io.stderrIsTty === true ? 'tty' : 'lines';
    const interval = values['progress-interval'] === undefined ? undefined : parseProgressInterval(values['progress-interval']);
    const maxMemory = values['max-memory'] === undefined ? SERVE_DEFAULTS.maxMemory : parseSize(values['max-memory'], '--max-memory');
    const progress = new AssemblerProgress({ clock: Date.now });
    const display = assemblerDisplay({
      mode, interval, write: mode === 'json' ? io.stdout : io.stderr, messages: io.stderr, clock: Date.now, snapshot: () => progress.snapshot(),
    });
    // a line may quote what a peer sent: no control or bidi character reaches the terminal
    const say = (prefix: string) => (message: string): void => display.message(`ddferry-assembler: ${prefix}${printable(message, 4000)}`);
    const log: Log = { info: say(''), warn: say('warning: '), error: say('error: ') };
    if (signal?.aborted) return EXIT.ok;
    raiseMallocThresholds();
    // a socket message is held while its frame is deciphered: collect after its callback
    collectAfterCallbacks();
    const server = await serve({ images, listen, secret, log, progress, maxMemory });
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
