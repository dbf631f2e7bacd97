import { randomUUID } from 'node:crypto';

import { ProtocolError } from './errors.js';
import { printable } from './text.js';

/**
 * A rescue id: a random UUID (version 4) made at planning time, in its
 * canonical lowercase form. Everything that crosses machines carries it.
 */
export type RescueId = string;

const RESCUE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A fresh rescue id. */
export function makeRescueId(): RescueId {
  return randomUUID();
}

/** True if `text` is a canonical (lowercase) UUID version 4. */
export function isRescueId(text: string): text is RescueId {
  return RESCUE_ID.test(text);
}

/**
 * A rescue id typed by a user: surrounding spaces and upper case are accepted.
 * @throws ProtocolError `ERR_PROTO_BAD_RESCUE_ID` for anything but a UUID version 4.
 */
export function parseRescueId(text: string): RescueId {
  const id = text.trim().toLowerCase();
  if (!isRescueId(id)) throw new ProtocolError('ERR_PROTO_BAD_RESCUE_ID', `"${text.slice(0, 64)}" is not a rescue id.`);
  return id;
}

/** What the OS tells about a source. Empty strings mean unknown. */
export interface Fingerprint {
  /** Size in bytes. */
  readonly size: number;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly model: string;
  readonly serial: string;
  /** World Wide Name, in any common spelling (`0x5000…`, `naa.5000…`). */
  readonly wwn: string;
  /** `block` (a block device), `file` (a regular file), `test-map` (a ddrescue test-mode map), or another word. */
  readonly kind: string;
}

function normalWwn(wwn: string): string {
  return wwn.trim().toLowerCase().replace(/^(0x|naa\.|wwn-0x)/, '');
}

/**
 * True if `a` and `b` describe the same device. The size must always be equal
 * (the image and the mapfiles are that size). Then the first rule that applies
 * decides:
 *
 * | both have | same device when |
 * |---|---|
 * | a WWN | the WWNs are equal |
 * | a serial | the serials are equal |
 * | otherwise | sector sizes and model are equal |
 */
export function sameDevice(a: Fingerprint, b: Fingerprint): boolean {
  if (a.size !== b.size) return false;
  const wwnA = normalWwn(a.wwn);
  const wwnB = normalWwn(b.wwn);
  if (wwnA !== '' && wwnB !== '') return wwnA === wwnB;
  const serialA = a.serial.trim();
  const serialB = b.serial.trim();
  if (serialA !== '' && serialB !== '') return serialA === serialB;
  return a.logicalSectorSize === b.logicalSectorSize
    && a.physicalSectorSize === b.physicalSectorSize
    && a.model.trim() === b.model.trim();
}

/**
 * One line naming a device, for error messages: model, serial, WWN, size,
 * sectors, kind. The texts come from a peer or a stick: each is `printable`
 * (no control or bidi characters) and at most 100 characters.
 */
export function describeFingerprint(f: Fingerprint): string {
  const text = (s: string): string => printable(s.trim(), 100);
  const ids = [
    f.serial.trim() === '' ? undefined : `serial ${text(f.serial)}`,
    f.wwn.trim() === '' ? undefined : `wwn ${text(f.wwn)}`,
  ].filter((s) => s !== undefined);
  const model = f.model.trim() === '' ? 'unknown model' : text(f.model);
  return `${model}${ids.length === 0 ? '' : ` (${ids.join(', ')})`}, ${f.size} bytes, sectors ${f.logicalSectorSize}/${f.physicalSectorSize}${f.kind === '' ? '' : `, ${text(f.kind)}`}`;
}

/** A rescue as one side knows it. */
export interface RescueIdentity {
  readonly rescueId: RescueId;
  readonly fingerprint: Fingerprint;
}

/**
 * Check that the peer's rescue is ours; the error shows both identities.
 * @throws ProtocolError `ERR_PROTO_WRONG_RESCUE` if the rescue ids differ,
 *   `ERR_PROTO_WRONG_DEVICE` if the fingerprints are not the same device.
 */
export function assertSameRescue(ours: RescueIdentity, theirs: RescueIdentity, peer?: string): void {
  if (ours.rescueId !== theirs.rescueId) {
    throw new ProtocolError('ERR_PROTO_WRONG_RESCUE', `Rescue ${theirs.rescueId} (${describeFingerprint(theirs.fingerprint)}) is not this rescue ${ours.rescueId} (${describeFingerprint(ours.fingerprint)}).`, { peer });
  }
  if (!sameDevice(ours.fingerprint, theirs.fingerprint)) {
    throw new ProtocolError('ERR_PROTO_WRONG_DEVICE', `Rescue ${ours.rescueId} was planned for ${describeFingerprint(ours.fingerprint)}, but the source is ${describeFingerprint(theirs.fingerprint)}.`, { peer });
  }
}
