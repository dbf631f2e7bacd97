/** The `ddferry-map` process: wires `run` to this process's streams. */
import { fstatSync, writeSync } from 'node:fs';

import { run } from './cli.js';

/** True if standard output is a regular file (written synchronously, in order, with nothing kept). */
function stdoutIsFile(): boolean {
  try {
    return fstatSync(1).isFile();
  } catch (err) {
    if ((err as { code?: unknown }).code === 'EBADF') return false;
    throw err;
  }
}

/**
 * Standard output. `run` may reuse a piece once this returns: a file gets it at once;
 * a pipe or terminal, whose writes Node may hold until later, gets a copy.
 */
function makeStdout(): (chunk: string | Uint8Array) => void {
  if (!stdoutIsFile()) return (chunk) => process.stdout.write(typeof chunk === 'string' ? chunk : Buffer.from(chunk));
  return (chunk) => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    for (let done = 0; done < bytes.length;) done += writeSync(1, bytes, done, bytes.length - done);
  };
}

async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const status = await run(process.argv.slice(2), {
  stdout: makeStdout(),
  stderr: (text) => process.stderr.write(text),
  readStdin,
  stdinIsTTY: process.stdin.isTTY === true,
  stdoutIsTTY: process.stdout.isTTY === true,
  cwd: process.cwd(),
});
process.exitCode = status;
