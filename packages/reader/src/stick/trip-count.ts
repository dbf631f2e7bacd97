import { readFile } from 'node:fs/promises';
import { join } from 'node:path';


import { errnoOf } from '../errors.js';
import { saveFileAtomic } from '../durable-file.js';

/** `JOBDIR/trips.json`: how many stick trips (runs of `rescue --to DIR`) the job has made. */
export const TRIPS_FILE = 'trips.json';

/**
 * Count one more stick trip and return its number (1 for the first). The count is for
 * people (progress lines, the live page): a damaged file starts the count again rather
 * than stopping a rescue.
 */
export async function countTrip(jobDir: string): Promise<number> {
  const file = join(jobDir, TRIPS_FILE);
  let trips = 0;
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as { stickTrips?: unknown };
    if (typeof v.stickTrips === 'number' && Number.isSafeInteger(v.stickTrips) && v.stickTrips >= 0) trips = v.stickTrips;
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
  }
  await saveFileAtomic(file, `${JSON.stringify({ stickTrips: trips + 1 })}\n`);
  return trips + 1;
}
