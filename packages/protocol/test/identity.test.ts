import { expect } from 'chai';

import { ProtocolError } from '../src/errors.js';
import { assertSameRescue, describeFingerprint, isRescueId, makeRescueId, parseRescueId, sameDevice } from '../src/identity.js';
import type { Fingerprint } from '../src/identity.js';
import { OTHER_RESCUE_ID, RESCUE_ID } from './helpers.js';

const disk: Fingerprint = {
  size: 4000787030016, logicalSectorSize: 512, physicalSectorSize: 4096, model: 'WDC WD40EFRX-68N32N0', serial: 'WD-WCC7K1234567', wwn: '0x50014ee2b1234567', kind: 'block',
};

describe('RescueId', () => {
  it('makes and recognises UUID version 4', () => {
    for (let i = 0; i < 50; i++) expect(isRescueId(makeRescueId())).to.equal(true);
    expect(isRescueId(RESCUE_ID)).to.equal(true);
    expect(isRescueId(RESCUE_ID.toUpperCase())).to.equal(false);
    expect(isRescueId('0f3c2a4e-9b1d-1c6e-8a7f-1234567890ab')).to.equal(false);
    expect(isRescueId('0f3c2a4e-9b1d-4c6e-7a7f-1234567890ab')).to.equal(false);
    expect(isRescueId(`${RESCUE_ID}\n`)).to.equal(false);
  });

  it('parses what a user types', () => {
    expect(parseRescueId(` ${RESCUE_ID.toUpperCase()}\n`)).to.equal(RESCUE_ID);
    expect(() => parseRescueId('abc')).to.throw(ProtocolError).with.property('code', 'ERR_PROTO_BAD_RESCUE_ID');
  });
});

describe('sameDevice', () => {
  it('lets the WWN decide when both have one', () => {
    expect(sameDevice(disk, { ...disk, wwn: 'naa.50014EE2B1234567', serial: 'other', model: 'USB bridge' })).to.equal(true);
    expect(sameDevice(disk, { ...disk, wwn: '0x50014ee2b7654321' })).to.equal(false);
  });

  it('lets the serial decide when a WWN is missing', () => {
    expect(sameDevice(disk, { ...disk, wwn: '', model: 'USB bridge', logicalSectorSize: 4096 })).to.equal(true);
    expect(sameDevice(disk, { ...disk, wwn: '', serial: 'WD-OTHER' })).to.equal(false);
  });

  it('compares sector sizes and model otherwise', () => {
    const anon = { ...disk, wwn: '', serial: '' };
    expect(sameDevice(anon, { ...anon })).to.equal(true);
    expect(sameDevice(anon, { ...anon, physicalSectorSize: 512 })).to.equal(false);
    expect(sameDevice(anon, { ...anon, model: 'other' })).to.equal(false);
  });

  it('always requires the same size', () => {
    expect(sameDevice(disk, { ...disk, size: disk.size - 512 })).to.equal(false);
  });
});

describe('describeFingerprint / assertSameRescue', () => {
  it('names the model, serial, WWN, size and sectors', () => {
    expect(describeFingerprint(disk)).to.equal('WDC WD40EFRX-68N32N0 (serial WD-WCC7K1234567, wwn 0x50014ee2b1234567), 4000787030016 bytes, sectors 512/4096, block');
    expect(describeFingerprint({ ...disk, model: '', serial: '', wwn: '', kind: '' })).to.equal('unknown model, 4000787030016 bytes, sectors 512/4096');
  });

  it('shows both identities when refusing', () => {
    const ours = { rescueId: RESCUE_ID, fingerprint: disk };
    expect(() => assertSameRescue(ours, { rescueId: RESCUE_ID, fingerprint: { ...disk } })).to.not.throw();
    try {
      assertSameRescue(ours, { rescueId: OTHER_RESCUE_ID, fingerprint: disk }, 'pc-a');
      expect.fail('expected a throw');
    } catch (err) {
      expect(err).to.be.instanceOf(ProtocolError).with.property('code', 'ERR_PROTO_WRONG_RESCUE');
      expect((err as Error).message).to.contain(RESCUE_ID).and.contain(OTHER_RESCUE_ID).and.match(/^pc-a: /);
    }
    try {
      assertSameRescue(ours, { rescueId: RESCUE_ID, fingerprint: { ...disk, serial: 'X', wwn: '' } });
      expect.fail('expected a throw');
    } catch (err) {
      expect(err).to.be.instanceOf(ProtocolError).with.property('code', 'ERR_PROTO_WRONG_DEVICE');
      expect((err as Error).message).to.contain('serial X').and.contain('serial WD-WCC7K1234567');
    }
  });
});
