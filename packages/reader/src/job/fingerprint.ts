import type { Fingerprint } from '@ddferry/protocol';

import type { SourceIdentity } from '../source/source.js';

/** What identifies a source across reboots: its size, sector sizes, and what the OS tells. */
export function fingerprintOf(source: { readonly size: number; readonly identity: SourceIdentity }, testMode: boolean): Fingerprint {
  const id = source.identity;
  return {
    size: source.size,
    logicalSectorSize: id.logicalSectorSize,
    physicalSectorSize: id.physicalSectorSize,
    model: id.model ?? '',
    serial: id.serial ?? '',
    wwn: id.wwn ?? '',
    kind: testMode ? 'test-map' : id.kind === 'block-device' ? 'block' : id.kind === 'file' ? 'file' : id.kind,
  };
}

/**
 * A warning for a disk that tells neither a serial number nor a WWN: ddferry then
 * knows it only by its size, sector sizes and model, like any other disk of that model.
 * Null for a disk that tells one, and for files and simulated disks.
 */
export function noSerialWarning(name: string, f: Fingerprint): string | null {
  if (f.kind !== 'block' || f.serial !== '' || f.wwn !== '') return null;
  return `ERR_SOURCE_NO_SERIAL: ${name} tells no serial number or WWN: ddferry can tell it from another disk only by its size and model (${f.model || 'no model'}). `
    + 'Check it is the right disk (lsblk -o NAME,SIZE,MODEL,SERIAL) before each run; a USB adapter that hides the serial may show it on another port or adapter.';
}
