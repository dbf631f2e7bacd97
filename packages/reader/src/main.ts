import { runDdrescue } from './commands/ddrescue.js';

const USAGE = `Usage: ddferry-reader COMMAND [ARGS]

Commands:
  plan SOURCE JOBDIR ...   make a job folder for a new rescue ('plan --help')
  rescue JOBDIR --to URL   rescue and ship to an assembler ('rescue --help')
  ddrescue [options] infile outfile [mapfile]
                           GNU ddrescue 1.27's rescue ('ddrescue --help')
  help                     this text
  --version                the version
`;

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === '--version' || command === '-V' || command === 'version') {
    process.stdout.write('ddferry-reader 0.1.0 (GNU ddrescue 1.27\'s rescue algorithm and mapfiles)\n');
    return 0;
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    // the pipeline's modules (protobuf, websockets, tar) load only when a job command needs them
    const { PLAN_HELP, RESCUE_HELP } = await import('./commands/job-commands.js');
    process.stdout.write(`${USAGE}\n${PLAN_HELP}\n${RESCUE_HELP}`);
    return command === undefined ? 1 : 0;
  }
  if (command !== 'ddrescue' && command !== 'plan' && command !== 'rescue') {
    process.stderr.write(`ddferry-reader: ERR_USAGE: unknown command '${command}'.\n${USAGE}`);
    return 1;
  }
  let signal: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    signal ??= sig;
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  const io = {
    screen: (t: string) => process.stderr.write(t),
    stderr: (t: string) => process.stderr.write(t),
    stdout: (t: string) => process.stdout.write(t),
    cwd: process.cwd(),
    signal: () => signal,
    screenIsTty: process.stderr.isTTY === true,
  };
  let result: { status: number; signal?: NodeJS.Signals };
  if (command === 'plan' || command === 'rescue') {
    const { runPlan, runRescue } = await import('./commands/job-commands.js');
    result = command === 'plan' ? { status: await runPlan(rest, io) } : await runRescue(rest, io);
  } else {
    result = await runDdrescue(rest, io);
  }
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
