/**
 * The command line's edge: the one place errors become text. A coded error prints as
 * `PROGRAM: CODE: message` and its hint; a malformed mapfile exits 2, other coded
 * errors 1. Anything else is a bug and is thrown on (main prints it, exit 3).
 */
import { MAPFILE_PARSE_CODES } from '@ddferry/mapfile';

export interface CommandIo {
  readonly screen: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly stdout: (text: string) => void;
  /** True if `screen` is a terminal: the progress is redrawn in place. */
  readonly screenIsTty?: boolean;
}

/** The code of a coded error (`ERR_...`), or undefined. */
export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_') ? code : undefined;
}

/** The text of a coded error: its message, then its hint when it has one the message does not hold. */
export function describeError(err: unknown): string {
  const message = (err as Error).message.replace(/^ERR_[A-Z0-9_]+: /, '');
  const hint = (err as { hint?: unknown }).hint;
  return typeof hint === 'string' && hint !== '' && !message.includes(hint) ? `${message} ${hint}` : message;
}

/**
 * Print a coded error and return its exit status (2 for a malformed mapfile, else 1).
 * @throws err itself when it carries no code (a bug: main reports it).
 */
export function report(err: unknown, io: Pick<CommandIo, 'stderr'>, program = 'ddferry-reader'): number {
  const code = codeOf(err);
  if (code === undefined) throw err;
  io.stderr(`${program}: ${code}: ${describeError(err)}\n`);
  return MALFORMED_MAPFILE.has(code) ? 2 : 1;
}

/** The codes of a malformed mapfile: exit status 2, as ddrescue's. */
const MALFORMED_MAPFILE: ReadonlySet<string> = MAPFILE_PARSE_CODES;
