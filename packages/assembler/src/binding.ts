/**
 * `IMAGE.ddferry.json`: which rescue an image belongs to, with its plan. The
 * pieces merged into it are in `IMAGE.ddferry.pieces` (merged-pieces.ts).
 *
 * ```json
 * {
 *   "format": "ddferry-image",
 *   "version": 2,
 *   "rescueId": "…",
 *   "fingerprint": {"size":…,"logicalSectorSize":…,"physicalSectorSize":…,"model":"…","serial":"…","wwn":"…","kind":"…"},
 *   "chunkSize": 1073741824,
 *   "sectorSize": 512
 * }
 * ```
 *
 * Version 1 also listed merged sequence numbers (`mergedSeqs`) without header
 * hashes; it is still read, that list ignored: those pieces, sent again, merge
 * again harmlessly (A2) and are then recorded with their hashes.
 */
import type { Fingerprint, RescueId } from '@ddferry/protocol';
import { isRescueId } from '@ddferry/protocol';

import { AssemblerError, messageOf } from './errors.js';

/** The rescue an image belongs to and its plan. */
export interface Binding {
  readonly rescueId: RescueId;
  readonly fingerprint: Fingerprint;
  readonly chunkSize: number;
  readonly sectorSize: number;
}

export const BINDING_FORMAT = 'ddferry-image';
export const BINDING_VERSION = 2;

/** The file's text: one field per line. */
export function formatBinding(binding: Binding): string {
  const f = binding.fingerprint;
  const fingerprint = {
    size: f.size, logicalSectorSize: f.logicalSectorSize, physicalSectorSize: f.physicalSectorSize,
    model: f.model, serial: f.serial, wwn: f.wwn, kind: f.kind,
  };
  return [
    '{',
    `  "format": ${JSON.stringify(BINDING_FORMAT)},`,
    `  "version": ${BINDING_VERSION},`,
    `  "rescueId": ${JSON.stringify(binding.rescueId)},`,
    `  "fingerprint": ${JSON.stringify(fingerprint)},`,
    `  "chunkSize": ${binding.chunkSize},`,
    `  "sectorSize": ${binding.sectorSize}`,
    '}',
    '',
  ].join('\n');
}

function isCount(v: unknown, min: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
}

/**
 * Read the text of a binding file.
 * @throws AssemblerError `ERR_IMAGE_BINDING_BAD` naming `file` and the field.
 */
export function parseBinding(text: string, file: string): Binding {
  const bad = (what: string, cause?: unknown): never => {
    throw new AssemblerError('ERR_IMAGE_BINDING_BAD', file, `${what} The file is not an image binding written by ddferry ${BINDING_VERSION}; restore it, or move it away together with the image and its mapfile to start over.`, { cause });
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    bad(`Not JSON (${messageOf(err)}).`, err);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return bad('Not a JSON object.');
  const o = doc as Record<string, unknown>;
  if (o.format !== BINDING_FORMAT || (o.version !== BINDING_VERSION && o.version !== 1)) bad(`format is ${JSON.stringify(o.format)} version ${JSON.stringify(o.version)}.`);
  if (typeof o.rescueId !== 'string' || !isRescueId(o.rescueId)) bad('rescueId is not a rescue id.');
  const f = o.fingerprint as Record<string, unknown> | null;
  if (typeof f !== 'object' || f === null) return bad('fingerprint is missing.');
  for (const k of ['size', 'logicalSectorSize', 'physicalSectorSize']) if (!isCount(f[k], 0)) bad(`fingerprint.${k} is not a number of bytes.`);
  for (const k of ['model', 'serial', 'wwn', 'kind']) if (typeof f[k] !== 'string') bad(`fingerprint.${k} is not text.`);
  if (!isCount(o.chunkSize, 1)) bad('chunkSize is not a positive number of bytes.');
  if (!isCount(o.sectorSize, 1)) bad('sectorSize is not a positive number of bytes.');
  const fingerprint: Fingerprint = {
    size: f.size as number,
    logicalSectorSize: f.logicalSectorSize as number,
    physicalSectorSize: f.physicalSectorSize as number,
    model: f.model as string,
    serial: f.serial as string,
    wwn: f.wwn as string,
    kind: f.kind as string,
  };
  const binding: Binding = {
    rescueId: o.rescueId as string, fingerprint, chunkSize: o.chunkSize as number, sectorSize: o.sectorSize as number,
  };
  return binding;
}
