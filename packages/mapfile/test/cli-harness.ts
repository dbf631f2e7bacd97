import { run } from '../src/cli.js';
import type { CliIo } from '../src/cli.js';

export interface CliResult {
  readonly status: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Run `ddferry-map` in-process with `cwd` and `stdin`, collecting its output. */
export async function runCli(argv: readonly string[], cwd: string, stdin: Uint8Array = new Uint8Array(0), tty = false): Promise<CliResult> {
  const out: Buffer[] = [];
  let err = '';
  const io: CliIo = {
    stdout: (chunk) => out.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk)),
    stderr: (text) => {
      err += text;
    },
    readStdin: async () => stdin,
    stdinIsTTY: tty,
    stdoutIsTTY: tty,
    cwd,
  };
  const status = await run(argv, io);
  return { status, stdout: Buffer.concat(out), stderr: err };
}

/** Drop the two lines of a mapfile that change from run to run. */
export function withoutRunLines(text: string): string {
  return text.split('\n').filter((l) => !l.startsWith('# Command line: ') && !l.startsWith('# Start time:   ')).join('\n');
}
