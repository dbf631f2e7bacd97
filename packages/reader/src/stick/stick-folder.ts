import { randomBytes } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import {
  STICK_RESCUE_FILE, type StickRescue, checkRealFolder, describeFingerprint, formatStickRescue, parseStickRescue, readSafeFile, sameDevice, stickRescueParts,
} from '@ddferry/protocol';

import { syncFolder, writeFileDurably } from '../durable-file.js';
import { ReaderError, errnoOf } from '../errors.js';
import type { Job } from '../job/job.js';
import { formatBytes } from '../progress/units.js';
import { type StickSpace, statStick, stickMargin } from './space.js';

/** Largest `rescue.json` read (its texts hold at most 4096 characters each). */
const MAX_RESCUE_FILE_BYTES = 1 << 20;

/** The rescue folder of a stick, checked against the job (or made, with a new stick id). */
export interface StickFolder {
  readonly root: string;
  readonly folder: string;
  readonly stickId: string;
  /** True if this run made the folder: nothing to settle. */
  readonly isNew: boolean;
}

function describeStickRescue(r: Pick<StickRescue, 'rescueId' | 'fingerprint' | 'sourceSize' | 'sectorSize' | 'chunkSize'>): string {
  return `rescue ${r.rescueId}: ${describeFingerprint(r.fingerprint)}; plan: ${r.sourceSize} bytes, sectors of ${r.sectorSize}, chunks of ${r.chunkSize}`;
}

/**
 * Find or make `ROOT/ddferry/<rescue-id>/rescue.json`.
 * @throws ReaderError `ERR_STICK_NOT_A_FOLDER`, `ERR_STICK_WRONG_RESCUE`; ProtocolError `ERR_STICK_BAD_RESCUE_FILE`,
 *   `ERR_FILE_SYMLINK`, `ERR_FILE_NOT_FOLDER` (`ddferry/` or the rescue folder is a link or a file),
 *   `ERR_FILE_NOT_REGULAR`, `ERR_FILE_TOO_LARGE` (rescue.json is a FIFO, a device, a folder, or too large).
 */
export async function openStickFolder(to: string, job: Job, stat0: (dir: string) => Promise<StickSpace> = statStick): Promise<StickFolder> {
  const root = resolve(to);
  let isDir = false;
  try {
    isDir = (await stat(root)).isDirectory();
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT' && errnoOf(err) !== 'ENOTDIR') throw err;
  }
  if (!isDir) {
    throw new ReaderError('ERR_STICK_NOT_A_FOLDER', root, `${root} is not a folder.`, { hint: 'Mount the stick and give its mount point (e.g. --to /media/usb), or give ws://HOST:PORT to ship over the LAN.' });
  }
  const parts = stickRescueParts(job.rescueId as StickRescue['rescueId']);
  const folder = join(root, ...parts);
  const file = join(folder, STICK_RESCUE_FILE);
  // what the stick holds is opened as it is: a link is never followed, a FIFO never waited on
  await checkRealFolder(join(root, parts[0]), 'the stick\'s ddferry folder');
  await checkRealFolder(folder, 'the stick\'s rescue folder');
  let text: string | undefined;
  try {
    text = (await readSafeFile(file, { maxBytes: MAX_RESCUE_FILE_BYTES, what: 'the stick\'s rescue.json' })).toString('utf8');
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  const ours = { rescueId: job.rescueId as StickRescue['rescueId'], fingerprint: job.fingerprint, sourceSize: job.sourceSize, sectorSize: job.sectorSize, chunkSize: job.chunkSize };
  if (text !== undefined) {
    const r = parseStickRescue(text, file);
    if (r.rescueId !== job.rescueId || r.sourceSize !== job.sourceSize || r.sectorSize !== job.sectorSize || r.chunkSize !== job.chunkSize || !sameDevice(r.fingerprint, job.fingerprint)) {
      throw new ReaderError('ERR_STICK_WRONG_RESCUE', file, `${file} belongs to another rescue.\n  this job:  ${describeStickRescue(ours)}\n  the stick: ${describeStickRescue(r)}`, {
        hint: 'Use another stick (or another folder on it), or run the job that made this folder.',
      });
    }
    return { root, folder, stickId: r.stickId, isNew: false };
  }
  // fusefat breaks a folder entry made on a full stick: make the folder only with room to spare
  const space = await stat0(root);
  if (space.total > 0 && space.free < stickMargin(space.total) + 64 * 1024) {
    throw new ReaderError('ERR_STICK_FULL', root, `${root} has ${formatBytes(space.free)} free: not enough to start a rescue folder on it (the stick keeps ${formatBytes(stickMargin(space.total))} free).`, {
      hint: 'Free space on the stick or use a bigger one, then run the same command again.',
    });
  }
  await mkdir(folder, { recursive: true });
  const stickId = randomBytes(8).toString('hex');
  await writeFileDurably(folder, STICK_RESCUE_FILE, async (out) => {
    await new Promise<void>((res, rej) => out.write(formatStickRescue({ ...ours, stickId }), (err) => (err ? rej(err) : res())));
  });
  await syncFolder(join(root, stickRescueParts(ours.rescueId)[0]));
  return { root, folder, stickId, isNew: true };
}

