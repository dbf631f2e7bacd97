/**
 * `ddferry-assembler import DIR IMAGE --token-file FILE [--rescue ID]`: the command line of
 * `importStick`. Progress goes to stderr (a line per bundle, or one a second
 * when there are many; every refusal), then a summary and what to do next.
 *
 * | exit | when |
 * |---|---|
 * | 0 | every bundle merged, refused (the reader reads those ranges again) or merged before |
 * | 1 | usage, a rescue or image refused, a failure of PC_B or of the stick (the receipt says what is durable) |
 * | 2 | a malformed `IMAGE.map` or `IMAGE.ddferry.json` |
 * | 130 / 143 | SIGINT / SIGTERM: the merge in progress finished and the receipt written |
 */
import { parseArgs } from 'node:util';

import { printable, readTokenFile } from '@ddferry/protocol';

import { AssemblerError, messageOf } from './errors.js';
import { Image } from './image.js';
import type { BundleEvent, ImportResult } from './import.js';
import { importStick } from './import.js';

export const IMPORT_USAGE = `Usage: ddferry-assembler import DIR IMAGE --token-file FILE [--rescue ID]

Merge the bundles ddferry-reader left on the stick mounted at DIR
(DIR/ddferry/<rescue-id>/piece-*.tar) into IMAGE, after checking each one
whole, and write a receipt to DIR/ddferry/<rescue-id>/receipts/.
IMAGE gets bound to the stick's rescue if it is bound to none yet.
The pieces are sealed with the shared token: nothing without it is merged,
and the receipt is signed with it.

Options:
  --token-file FILE  the shared secret: the same file as ddferry-reader's
                     --token-file on PC_A (chmod 600). Required
  --rescue ID        the rescue to import when the stick holds several
  -h, --help         this text

Exit status: 0 every bundle merged or refused; 1 error; 2 malformed
IMAGE.map or IMAGE.ddferry.json; 130/143 stopped by SIGINT/SIGTERM.
`;

/** Where the command writes. */
interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
}

const MB = 1e6;
/** What `import` says without `--token-file`: how to bring the token from PC_A. */
export const NO_TOKEN_HINT = 'The pieces on the stick are sealed with the token of PC_A; without it nothing can be checked or merged. '
  + 'Bring it from PC_A: copy the token file given there to ddferry-reader --token-file (never onto the stick), chmod 600 it, '
  + 'or type its text into a new file: (umask 077; cat > token), paste the text, Ctrl-D. Then add --token-file token.';

/** With more bundles than this, progress is printed at most once a second. */
const EVERY_BUNDLE_UP_TO = 50;

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'ERR_INTERNAL';
}

function exitOf(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return 3;
  return code.startsWith('ERR_MAPFILE_') || code === 'ERR_IMAGE_BINDING_BAD' ? 2 : 1;
}

function formatBytes(n: number): string {
  if (n < 1e4) return `${n} B`;
  if (n < 1e7) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e10) return `${(n / MB).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function signalStatus(signal: AbortSignal | undefined): number {
  return signal?.reason === 'SIGTERM' ? 143 : 130;
}

/**
 * Run `ddferry-assembler import ARGS` (ARGS after the word `import`).
 * @param signal aborted on SIGINT/SIGTERM, with the signal's name as its reason.
 * @returns the exit status (see the module comment).
 */
export async function runImport(argv: readonly string[], io: Io, signal?: AbortSignal): Promise<number> {
  // lines quote the stick (file names, reasons): no control or bidi character reaches the terminal
  const say = (text: string): void => io.stderr(`ddferry-assembler: ${printable(text, 4000)}\n`);
  const fail = (err: unknown): number => {
    const status = exitOf(err);
    if (status === 3) say(`internal error: ${(err as Error).stack ?? String(err)}`);
    else say(`${codeOf(err)}: ${messageOf(err)}`);
    if (codeOf(err) === 'ERR_USAGE') io.stderr("Try 'ddferry-assembler import --help'.\n");
    return status;
  };
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv], options: { rescue: { type: 'string' }, 'token-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true,
    }));
  } catch (err) {
    return fail(new AssemblerError('ERR_USAGE', 'import', messageOf(err)));
  }
  if (values.help === true) {
    io.stdout(IMPORT_USAGE);
    return 0;
  }
  const [dir, imagePath, ...rest] = positionals;
  if (dir === undefined || imagePath === undefined || rest.length > 0) {
    return fail(new AssemblerError('ERR_USAGE', 'import', 'Give the stick folder and the image: import DIR IMAGE --token-file FILE [--rescue ID].'));
  }
  const tokenFile = values['token-file'];
  if (tokenFile === undefined) return fail(new AssemblerError('ERR_IMPORT_NO_TOKEN', '--token-file', NO_TOKEN_HINT));
  let secret: string;
  let image: Image;
  try {
    secret = await readTokenFile(tokenFile);
    image = await Image.open(imagePath, { commandLine: `ddferry-assembler import ${dir} ${imagePath}` });
  } catch (err) {
    return fail(err);
  }
  const started = performance.now();
  let lastLine = 0;
  const onBundle = (e: BundleEvent): void => {
    const t = performance.now();
    const where = `[${e.index}/${e.total}] ${e.bundle}`;
    if (e.outcome === 'refused') say(`${where}: refused: ${e.code}: ${e.reason}`);
    else if (e.outcome === 'unreadable') say(`${where}: unreadable, left on the stick: ${e.reason}`);
    else if (e.total <= EVERY_BUNDLE_UP_TO || t - lastLine >= 1000 || e.index === e.total) {
      lastLine = t;
      const what = e.outcome === 'merged' ? `merged ${e.pieces} piece(s), ${formatBytes(e.bytes)}` : 'merged before, skipped';
      say(`${where}: ${what}`);
    }
  };
  let result: ImportResult;
  try {
    result = await importStick(dir, image, { secret, rescueId: values.rescue, signal, onBundle, warn: (m) => say(`warning: ${m}`) });
  } catch (err) {
    await image.close();
    return fail(err);
  }
  await image.close().catch((err: unknown) => say(`warning: closing ${imagePath}: ${messageOf(err)}`));
  const seconds = (performance.now() - started) / 1000;
  const rescued = image.finishedRanges().reduce((s, b) => s + b.size, 0);
  const pct = image.size > 0 ? (100 * rescued) / image.size : 0;
  say(`rescue ${result.rescue.rescueId}: ${result.bundles} bundle(s): ${result.merged} merged, ${result.refused} refused, ${result.skipped} merged before, ${result.unreadable} unreadable`);
  say(`merged ${result.mergedPieces} piece(s), ${formatBytes(result.mergedBytes)} in ${seconds.toFixed(1)} s (${(result.mergedBytes / MB / Math.max(seconds, 1e-3)).toFixed(1)} MB/s)`);
  say(`${image.mapPath}: ${formatBytes(rescued)} of ${formatBytes(image.size)} rescued (${pct.toFixed(2)} %)`);
  if (result.receipt !== undefined) say(`receipt: ${result.receipt}`);
  if (result.stopped === 'failed') {
    fail(result.error);
    say(result.receipt !== undefined ? 'the receipt lists what is durable; fix the cause, then import the stick again (nothing is merged twice).' : 'no receipt was written: fix the cause, then import the stick again (nothing is merged twice).');
    return 1;
  }
  if (result.stopped === 'aborted' || isAborted(signal)) {
    say('stopped: the merge in progress is finished and the receipt written; import again to merge the rest.');
    return signalStatus(signal);
  }
  // the command runs on PC_A: its paths are named by what they are, never by this machine's
  say(`next: carry the stick back to PC_A and run the same \`ddferry-reader rescue JOBDIR --to STICK --token-file TOKEN\` again there (STICK: where the stick is mounted on PC_A; `
    + `it frees what was merged${result.refused > 0 ? ' and reads the refused ranges again' : ''}).`);
  if (result.error !== undefined) {
    fail(result.error);
    return 1;
  }
  return 0;
}
