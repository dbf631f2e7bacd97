import { open } from 'node:fs/promises';
import { join } from 'node:path';

import { makeSecretText, readTokenFile } from '@ddferry/protocol';

import { syncFolder } from '../durable-file.js';
import { errnoOf } from '../errors.js';

/** `JOBDIR/token`: the shared secret `plan` makes when no `--token-file` names one. */
export const TOKEN_FILE = 'token';

/**
 * Make `JOBDIR/token`: a new secret of 140 bits as text a person can type
 * (`K7QM-2XWD-...`), readable by its owner only, never replacing one.
 * @returns the file and its text.
 */
export async function makeJobToken(jobDir: string): Promise<{ file: string; text: string }> {
  const file = join(jobDir, TOKEN_FILE);
  const text = makeSecretText();
  const fh = await open(file, 'wx', 0o600);
  try {
    await fh.writeFile(`${text}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await syncFolder(jobDir);
  return { file, text };
}

/**
 * The token a run uses: `--token-file` if given, else the one the job names or `plan`
 * made (`JOBDIR/token`). @returns null when there is none.
 * @throws ProtocolError `ERR_AUTH_TOKEN_*` for a file that is not a good token.
 */
export async function readJobToken(jobDir: string, given?: string, planned?: string): Promise<{ file: string; secret: string } | null> {
  const file = given ?? planned ?? join(jobDir, TOKEN_FILE);
  try {
    return { file, secret: await readTokenFile(file) };
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    if (given === undefined && planned === undefined && (errnoOf(err) === 'ENOENT' || errnoOf(cause) === 'ENOENT' || /ENOENT/.test((err as Error).message))) return null;
    throw err;
  }
}
