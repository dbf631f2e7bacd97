import { READING_PROCESS_ARG } from './run/reading-messages.js';

const USAGE = `Usage: ddferry-reader COMMAND [ARGS]

Commands:
  plan SOURCE JOBDIR ...   make a job folder for a new rescue ('plan --help')
  rescue JOBDIR --to URL   rescue and ship to an assembler or a stick ('rescue --help')
  used-map SOURCE|JOBDIR   the used space of the disk's file systems ('used-map --help')
  ddrescue [options] infile outfile [mapfile]
                           GNU ddrescue 1.27's rescue ('ddrescue --help')
  help                     this text
  --version                the version
`;

/** Milliseconds after the first signal before the process ends whatever it is doing (the 3 s, with a margin). */
const STOP_DEADLINE_MS = 2700;

const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** The status a shell shows for death by `sig` (128 + its number). */
function signalStatus(sig: NodeJS.Signals): number {
  return 128 + (sig === 'SIGHUP' ? 1 : sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 0);
}

/** End the process by `sig` (the parent sees death by that signal), or with 128+N if that fails. */
function dieBy(sig: NodeJS.Signals): void {
  for (const s of SIGNALS) process.removeAllListeners(s);
  process.kill(process.pid, sig);
  setTimeout(() => process.exit(signalStatus(sig)), 200).unref();
}

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === READING_PROCESS_ARG) {
    const { runReadingProcess } = await import('./run/reading-child.js');
    await runReadingProcess();
    return 0;
  }
  if (command === '--version' || command === '-V' || command === 'version') {
    process.stdout.write('ddferry-reader 0.1.0 (GNU ddrescue 1.27\'s rescue algorithm and mapfiles)\n');
    return 0;
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    // the pipeline's modules (protobuf, websockets, tar) load only when a job command needs them
    const [{ PLAN_HELP }, { RESCUE_HELP }, { USED_MAP_HELP }] = await Promise.all([import('./commands/plan.js'), import('./commands/rescue.js'), import('./commands/used-map.js')]);
    process.stdout.write(`${USAGE}\n${PLAN_HELP}\n${RESCUE_HELP}\n${USED_MAP_HELP}`);
    return command === undefined ? 1 : 0;
  }
  if (command !== 'ddrescue' && command !== 'plan' && command !== 'rescue' && command !== 'used-map') {
    process.stderr.write(`ddferry-reader: ERR_USAGE: unknown command '${command}'.\n${USAGE}`);
    return 1;
  }
  // the first signal asks the command to stop (it saves its map); a second one ends the process at once
  let signal: NodeJS.Signals | null = null;
  const controller = new AbortController();
  // the commands that read through a reading process never wait on the source: they stop within the deadline
  const detached = command !== 'ddrescue';
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signal !== null) {
      if (detached) dieBy(sig);
      return;
    }
    signal = sig;
    controller.abort();
    // whatever is still running after the deadline is given up
    if (detached) setTimeout(() => dieBy(sig), STOP_DEADLINE_MS).unref();
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  const io = {
    screen: (t: string) => process.stderr.write(t),
    stderr: (t: string) => process.stderr.write(t),
    stdout: (t: string) => process.stdout.write(t),
    cwd: process.cwd(),
    signal: () => signal,
    screenIsTty: process.stderr.isTTY === true,
  };
  let result: { status: number; signal?: NodeJS.Signals };
  if (command === 'plan') {
    const { runPlan } = await import('./commands/plan.js');
    result = { status: await runPlan(rest, io, controller.signal) };
    if (signal !== null) result = { status: signalStatus(signal), signal };
  } else if (command === 'used-map') {
    const { runUsedMap } = await import('./commands/used-map.js');
    result = await runUsedMap(rest, io, controller.signal);
    if (signal !== null) result = { status: signalStatus(signal), signal };
  } else if (command === 'rescue') {
    // the reading process starts while the pipeline's modules load
    if (!rest.some((a) => a === '--help' || a === '-h')) (await import('./run/reading-process.js')).startReadingProcessAhead();
    const { runRescue } = await import('./commands/rescue.js');
    result = await runRescue(rest, io, controller.signal, () => signal);
  } else {
    const { runDdrescue } = await import('./commands/ddrescue.js');
    result = await runDdrescue(rest, io);
  }
  if (result.signal) {
    // the parent sees death by the signal, as with ddrescue
    dieBy(result.signal);
    await new Promise((r) => setTimeout(r, 1000));
  }
  for (const s of SIGNALS) process.off(s, onSignal);
  return result.status;
}

main().then(
  (status) => {
    process.exitCode = status;
    // nothing may keep a finished command alive (a link closing, a reading process left in a read)
    if (process.argv[2] !== 'ddrescue') setTimeout(() => process.exit(status), 100).unref();
  },
  (err: unknown) => {
    process.stderr.write(`ddferry-reader: internal error: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 3;
  },
);
