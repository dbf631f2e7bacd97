import type { Fingerprint } from '@ddferry/protocol';

import type { Source } from '../source/source.js';

/** What identifies a source across reboots: its size, sector sizes, and what the OS tells. */
export function fingerprintOf(source: Source, testMode: boolean): Fingerprint {
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
