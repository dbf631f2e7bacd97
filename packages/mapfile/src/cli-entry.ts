import type { CliIo } from './ddrescuelog/context.js';

/**
 * Run `ddferry-map` with `argv` (without the program name); returns the exit status.
 * The command's modules (ddrescuelog's operations, pictures, option parsing) load on
 * the first call, so a program that only reads and writes maps does not carry them.
 */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const cli = await import('./cli.js');
  return cli.run(argv, io);
}
