/**
 * The rescues a stick carries (`DIR/ddferry/<rescue-id>/rescue.json`) and the
 * one an import is for. `rescue.json` is untrusted (S2): it is parsed field by
 * field (`parseStickRescue`), must name the folder it is in, and then claims the
 * image exactly as a LAN Hello does (`Image.bind`: rescue, device and plan).
 *
 * | image | `--rescue` | stick | rescue imported |
 * |---|---|---|---|
 * | bound to R | none or R | has R | R |
 * | bound to R | S ≠ R | | refused: `ERR_IMAGE_WRONG_RESCUE` (both identities) |
 * | bound to R | | lacks R | refused: `ERR_IMPORT_NO_RESCUE` (what the stick has) |
 * | unbound | none | one rescue | that one |
 * | unbound | none | several | refused: `ERR_IMPORT_AMBIGUOUS` (lists them) |
 * | unbound | S | has S | S |
 */
import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import type { StickRescue } from '@ddferry/protocol';
import {
  checkRealFolder, describeFingerprint, isRescueId, MAX_STICK_FILE_BYTES, parseStickRescue, ProtocolError, readSafeFile, STICK_FOLDER, STICK_RESCUE_FILE,
} from '@ddferry/protocol';

import { AssemblerError, errnoOf, messageOf } from './errors.js';
import type { Image } from './image.js';

/** A rescue folder found on the stick. */
export interface StickRescueFolder {
  /** `DIR/ddferry/<rescue-id>`. */
  readonly folder: string;
  /** Its `rescue.json`, checked; undefined when it could not be read or is damaged (see `error`). */
  readonly rescue: StickRescue | undefined;
  /** Why `rescue` is undefined: `ERR_STICK_BAD_RESCUE_FILE`, `ERR_IMPORT_STICK_READ`. */
  readonly error: (Error & { code: string }) | undefined;
  /** The folder's name: a rescue id. */
  readonly rescueId: string;
}

function stickReadError(file: string, err: unknown): AssemblerError {
  return new AssemblerError('ERR_IMPORT_STICK_READ', file, `Cannot read it (${errnoOf(err) ?? messageOf(err)}). Check the stick is mounted and readable (dmesg), then import again.`, { cause: err });
}

/**
 * The rescue folders under `DIR/ddferry/`, sorted by name. Entries whose name is
 * not a rescue id, and links, are ignored (they are not ddferry's); no link is
 * followed, and rescue.json is read as `readSafeFile` does (a FIFO or a link
 * there makes the folder unusable, with its code, at once).
 * @throws AssemblerError `ERR_IMPORT_NO_RESCUE` (no `DIR/ddferry/`),
 *   `ERR_IMPORT_STICK_READ`; ProtocolError `ERR_FILE_SYMLINK` (`DIR/ddferry` is a link).
 */
export async function listStickRescues(dir: string): Promise<StickRescueFolder[]> {
  const top = join(dir, STICK_FOLDER);
  let entries: Dirent[];
  try {
    if (!(await checkRealFolder(top, `the stick's ${STICK_FOLDER} folder`))) throw Object.assign(new Error(`no ${STICK_FOLDER} folder`), { code: 'ENOENT' });
    entries = await readdir(top, { withFileTypes: true });
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ERR_FILE_SYMLINK') throw err;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ERR_FILE_NOT_FOLDER') {
      throw new AssemblerError('ERR_IMPORT_NO_RESCUE', dir, `There is no ${STICK_FOLDER}/ folder here. Give the folder where the stick is mounted (the DIR of ddferry-reader rescue --to DIR).`, { cause: err });
    }
    throw stickReadError(top, err);
  }
  const out: StickRescueFolder[] = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!e.isDirectory() || !isRescueId(e.name)) continue;
    const folder = join(top, e.name);
    const file = join(folder, STICK_RESCUE_FILE);
    let rescue: StickRescue | undefined;
    let error: (Error & { code: string }) | undefined;
    try {
      const text = (await readSafeFile(file, { maxBytes: MAX_STICK_FILE_BYTES, what: STICK_RESCUE_FILE })).toString('utf8');
      const parsed = parseStickRescue(text, file);
      if (parsed.rescueId === e.name) rescue = parsed;
      else error = new ProtocolError('ERR_STICK_BAD_RESCUE_FILE', `It names rescue ${parsed.rescueId} but lies in the folder of rescue ${e.name}: the folder was renamed or the file copied.`, { file });
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      if (code === 'ERR_STICK_BAD_RESCUE_FILE' || (typeof code === 'string' && code.startsWith('ERR_FILE_'))) error = err as Error & { code: string };
      else if (typeof code === 'string' && code.startsWith('E') && !code.startsWith('ERR_')) error = stickReadError(file, err);
      else throw err;
    }
    out.push({ folder, rescue, error, rescueId: e.name });
  }
  return out;
}

function describe(f: StickRescueFolder): string {
  if (f.rescue === undefined) return `rescue ${f.rescueId} (unusable: ${f.error?.code ?? 'unknown'})`;
  return `rescue ${f.rescueId} (${describeFingerprint(f.rescue.fingerprint)})`;
}

/**
 * Pick the rescue to import into `image` (see the module's table) and claim the
 * image for it with `image.bind`, exactly as a LAN Hello does.
 * @param wanted the `--rescue ID` of the command line, if any.
 * @returns the folder, with its checked `rescue.json`.
 * @throws AssemblerError `ERR_IMPORT_NO_RESCUE`, `ERR_IMPORT_AMBIGUOUS`,
 *   `ERR_IMPORT_STICK_READ`, the codes of `Image.bind` (`ERR_IMAGE_WRONG_*`
 *   show both identities); ProtocolError `ERR_STICK_BAD_RESCUE_FILE`.
 */
export async function pickStickRescue(dir: string, image: Image, wanted?: string): Promise<StickRescueFolder & { rescue: StickRescue }> {
  const found = await listStickRescues(dir);
  const list = found.length === 0 ? 'nothing' : found.map(describe).join('; ');
  const bound = image.binding?.rescueId;
  const id = wanted ?? bound;
  let folder: StickRescueFolder | undefined;
  if (id !== undefined) {
    if (bound !== undefined && wanted !== undefined && wanted !== bound) {
      const ours = image.binding!;
      throw new AssemblerError('ERR_IMAGE_WRONG_RESCUE', image.path, `The image belongs to rescue ${ours.rescueId} (${describeFingerprint(ours.fingerprint)}); --rescue ${wanted} is another rescue. Give that rescue its own image path.`);
    }
    folder = found.find((f) => f.rescueId === id);
    if (folder === undefined) {
      const whose = bound !== undefined ? `The image belongs to rescue ${bound} (${describeFingerprint(image.binding!.fingerprint)}), but the stick` : `The stick`;
      throw new AssemblerError('ERR_IMPORT_NO_RESCUE', join(dir, STICK_FOLDER), `${whose} has no folder for rescue ${id}; it holds ${list}. Give the image of the stick's rescue, or the stick of this image's rescue.`);
    }
  } else {
    if (found.length === 0) throw new AssemblerError('ERR_IMPORT_NO_RESCUE', join(dir, STICK_FOLDER), 'The stick holds no rescue folder. Run ddferry-reader rescue JOBDIR --to DIR first.');
    if (found.length > 1) {
      throw new AssemblerError('ERR_IMPORT_AMBIGUOUS', join(dir, STICK_FOLDER), `The stick holds several rescues and the image is bound to none: ${list}. Choose one with --rescue ID.`);
    }
    folder = found[0]!;
  }
  if (folder.rescue === undefined) throw folder.error ?? new Error('internal: a stick rescue without rescue.json nor error');
  const r = folder.rescue;
  await image.bind({ rescueId: r.rescueId, fingerprint: r.fingerprint, chunkSize: r.chunkSize, sectorSize: r.sectorSize });
  return { ...folder, rescue: r };
}
