import { describeFingerprint, sameDevice } from '@ddferry/protocol';

import { ReaderError } from '../errors.js';
import type { SourceIdentity } from '../source/source.js';
import { fingerprintOf } from './fingerprint.js';
import type { Job } from './job.js';

/**
 * Check that the source opened as `name` (its size and identity) is the disk the job was
 * planned for (`sameDevice` of the fingerprints: WWN, else serial, else sector sizes and
 * model; the size always).
 * @throws ReaderError `ERR_JOB_WRONG_DEVICE` showing both identities.
 */
export function assertPlannedDevice(job: Job, name: string, source: { readonly size: number; readonly identity: SourceIdentity }): void {
  const now = fingerprintOf(source, job.testMode !== undefined);
  if (!sameDevice(job.fingerprint, now)) {
    throw new ReaderError('ERR_JOB_WRONG_DEVICE', name,
      `${name} is not the disk this job was planned for.\n  planned: ${describeFingerprint(job.fingerprint)}\n  found:   ${describeFingerprint(now)}`, {
        hint: 'Connect the right disk and give its current name with --source (device names can change between boots).',
      });
  }
}
