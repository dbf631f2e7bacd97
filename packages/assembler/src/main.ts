import { run } from './cli.js';

const controller = new AbortController();
let signals = 0;
const onSignal = (sig: NodeJS.Signals): void => {
  ++signals;
  if (signals === 1) {
    controller.abort(sig);
    return;
  }
  process.stderr.write(`ddferry-assembler: second ${sig}: exiting at once; merges not finished are redone from the readers' spools.\n`);
  process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

run(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  stderrIsTty: process.stderr.isTTY === true,
}, controller.signal).then(
  (status) => {
    process.exitCode = status;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  },
  (err: unknown) => {
    process.stderr.write(`ddferry-assembler: internal error: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 3;
  },
);
