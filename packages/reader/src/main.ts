import { runDdrescue } from './ddrescue/run.js';

const USAGE = `Usage: ddferry-reader COMMAND [ARGS]

Commands:
  ddrescue [options] infile outfile [mapfile]
                GNU ddrescue 1.27's rescue (see 'ddferry-reader ddrescue --help')
  help          this text
`;

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? 1 : 0;
  }
  if (command !== 'ddrescue') {
    process.stderr.write(`ddferry-reader: ERR_USAGE: unknown command '${command}'.\n${USAGE}`);
    return 1;
  }
  let signal: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    signal ??= sig;
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  const result = await runDdrescue(rest, {
    screen: (t) => process.stderr.write(t),
    stderr: (t) => process.stderr.write(t),
    stdout: (t) => process.stdout.write(t),
    cwd: process.cwd(),
    signal: () => signal,
  });
  for (const s of signals) process.off(s, onSignal);
  if (result.signal) {
    // re-raise, so the parent sees death by the signal, as with ddrescue
    process.kill(process.pid, result.signal);
    await new Promise((r) => setTimeout(r, 1000));
  }
  return result.status;
}

main().then(
  (status) => {
    process.exitCode = status;
  },
  (err: unknown) => {
    process.stderr.write(`ddferry-reader: internal error: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 3;
  },
);
