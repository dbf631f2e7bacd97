/**
 * `rescue` runs in the test's process (the reading process is still a process of its
 * own): the job opened as the command opens it, progress off, messages collected.
 */
import { parseDdrescueCommand } from '../../src/commands/ddrescue-options.js';
import { join } from 'node:path';

import { readTokenFile } from '@ddferry/protocol';

import { type JobFolder, openJobFolder } from '../../src/job/job-folder.js';
import { readJobToken } from '../../src/job/token.js';
import { lanRescue } from '../../src/lan/lan-rescue.js';
import { type RescueProgress, openRescueProgress } from '../../src/progress/progress.js';
import type { RescueRequest } from '../../src/run/rescue-run.js';
import type { StickSpace } from '../../src/stick/space.js';
import { stickTrip } from '../../src/stick/trip.js';
import type { StickWriter } from '../../src/stick/writer.js';

export interface InProcess {
  readonly job: JobFolder;
  readonly request: RescueRequest;
  readonly progress: RescueProgress;
  readonly log: (line: string) => void;
}

/** Open the job as `rescue` does, with ddrescue options `args` (default `-q`). */
export async function openInProcess(jobDir: string, lines: string[], args: readonly string[] = ['-q'], spoolBytes = 256 << 20): Promise<InProcess> {
  const engine = parseDdrescueCommand([jobDir, ...args]);
  const token = await readJobToken(jobDir);
  const job = await openJobFolder(jobDir, { secret: token?.secret ?? '', spoolBytes, hardbs: engine.rescue.hardbs, commandLine: 'test rescue', saveInterval: -1, syncInterval: 300 });
  const progress = openRescueProgress({ progress: { mode: 'off' }, engine }, { screen: () => undefined, stderr: (t) => lines.push(t) }, { sourceSize: job.job.sourceSize, chunks: job.chunks });
  const request: RescueRequest = {
    options: engine.rescue, source: job.job.source, chunkAtATime: false, commandLine: 'test rescue',
    logs: { events: engine.eventLog, rates: engine.rateLog, reads: engine.readLog },
  };
  return { job, request, progress, log: (l) => lines.push(`${l}\n`) };
}

/** One stick trip in process. @returns its exit status. */
export async function stickTripInProcess(jobDir: string, to: string, lines: string[], extra: {
  statStick?: (dir: string) => Promise<StickSpace>; writer?: StickWriter; format?: 'bundles' | 'ddrescue-chunks'; forgetStick?: string; signal?: AbortSignal; args?: readonly string[];
} = {}): Promise<number> {
  const p = await openInProcess(jobDir, lines, extra.args);
  const r = await stickTrip({
    ...p, to, tokenFile: join(jobDir, 'token'), format: extra.format, forgetStick: extra.forgetStick, statStick: extra.statStick, writer: extra.writer, signal: extra.signal ?? new AbortController().signal,
  }, () => null);
  return r.status;
}

/** One LAN run in process. @returns its exit status. */
export async function lanRescueInProcess(jobDir: string, url: string, lines: string[], extra: { tokenFile?: string; signal?: AbortSignal; args?: readonly string[]; spoolBytes?: number } = {}): Promise<number> {
  const p = await openInProcess(jobDir, lines, extra.args, extra.spoolBytes);
  const secret = extra.tokenFile === undefined ? (await readJobToken(jobDir))?.secret ?? '' : await readTokenFile(extra.tokenFile);
  const r = await lanRescue({ ...p, url, secret, signal: extra.signal ?? new AbortController().signal }, () => null);
  return r.status;
}
