import { expect } from 'chai';
import fc from 'fast-check';

import { ProtocolError } from '../src/errors.js';
import type { Fingerprint } from '../src/identity.js';
import type { Receipt, StickRescue } from '../src/stick.js';
import {
  BUNDLE_NAME, bundleFileName, bundleSeqOf, formatReceipt, formatStickRescue, MAX_RECEIPT_ENTRIES, MAX_STICK_FILE_BYTES, parseReceipt,
  parseStickRescue, RECEIPT_NAME, stickRescueParts,
} from '../src/stick.js';
import { hexOf, xxh64 } from '../src/xxh64.js';

import { OTHER_RESCUE_ID, RESCUE_ID } from './helpers.js';

const FINGERPRINT: Fingerprint = {
  size: 1_000_204_886_016, logicalSectorSize: 512, physicalSectorSize: 4096, model: 'WDC WD10EZEX', serial: 'WD-WCC6Y1234567', wwn: '0x50014ee2b1234567', kind: 'disk',
};

const RESCUE: StickRescue = {
  rescueId: RESCUE_ID, fingerprint: FINGERPRINT, sourceSize: FINGERPRINT.size, sectorSize: 512, chunkSize: 1 << 30, stickId: '0123456789abcdef',
};

const RECEIPT: Receipt = {
  rescueId: RESCUE_ID,
  merged: [[1, 120], [122, 130]],
  rejected: [{ bundle: 'piece-000121.tar', seqs: [121], code: 'ERR_PIECE_CHECKSUM_MISMATCH', reason: 'piece 121: the data does not match.' }],
  writtenAt: '2026-12-01T07:15:00.000Z',
  writer: 'pc-b:/srv/disk.img',
};

/** The sealed text of any body, as the writers make it: the checksum is right, so the field checks are reached. */
function seal(body: Record<string, unknown>): string {
  return `${JSON.stringify({ ...body, xxh64: hexOf(xxh64(Buffer.from(JSON.stringify(body), 'utf8'))) })}\n`;
}

/** The body of a formatted file (without its checksum), to edit and seal again. */
function bodyOf(text: string): Record<string, unknown> {
  const body = JSON.parse(text) as Record<string, unknown>;
  delete body.xxh64;
  return body;
}

function refusal(fn: () => unknown, code: string, file?: string): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ProtocolError);
    const e = err as ProtocolError;
    expect(e.code, e.message).to.equal(code);
    expect(e.file).to.equal(file);
    if (file !== undefined) expect(e.message).to.include(file);
    return e;
  }
  throw new Error(`expected ${code}`);
}

describe('stick layout', () => {
  describe('bundle names', () => {
    it('names a bundle by its first seq, six digits at least, and reads the seq back', () => {
      expect(bundleFileName(123)).to.equal('piece-000123.tar');
      expect(bundleFileName(1_234_567)).to.equal('piece-1234567.tar');
      fc.assert(fc.property(fc.integer({ min: 1, max: 999_999_999_999_999 }), (seq) => bundleSeqOf(bundleFileName(seq)) === seq));
    });

    it('reads no seq from other names: temporaries, too few or too many digits, seq 0, other suffixes', () => {
      for (const name of ['.piece-000123.tar.tmp', 'piece-12345.tar', 'piece-0000000000000001.tar', 'piece-000000.tar', 'piece-000123.tar.bak', 'piece-000123.TAR', 'xpiece-000123.tar', 'piece-00012a.tar', '../piece-000123.tar']) {
        expect(bundleSeqOf(name), name).to.equal(undefined);
      }
      expect(BUNDLE_NAME.test('piece-000123.tar')).to.equal(true);
    });

    it('gives the rescue folder of a rescue id, and refuses anything else as a path part', () => {
      expect(stickRescueParts(RESCUE_ID)).to.deep.equal(['ddferry', RESCUE_ID]);
      for (const bad of ['..', '', '../etc', RESCUE_ID.toUpperCase(), `${RESCUE_ID}/x`]) expect(() => stickRescueParts(bad), bad).to.throw(TypeError);
    });

    it('matches receipt names of letters, digits and dashes only', () => {
      expect(RECEIPT_NAME.test('receipt-20261201T071500Z-a1b2c3.json')).to.equal(true);
      for (const bad of ['receipt-.json', 'receipt-2026:12.json', 'receipt-../x.json', '.receipt-a.json.tmp', `receipt-${'a'.repeat(81)}.json`]) {
        expect(RECEIPT_NAME.test(bad), bad).to.equal(false);
      }
    });
  });

  describe('rescue.json', () => {
    it('round-trips through formatStickRescue and parseStickRescue', () => {
      const text = formatStickRescue(RESCUE);
      expect(text.endsWith('\n')).to.equal(true);
      expect(parseStickRescue(text, 'rescue.json')).to.deep.equal(RESCUE);
    });

    it('round-trips any texts of the fingerprint, quotes and non-ASCII included', () => {
      fc.assert(fc.property(fc.string({ maxLength: 200 }), fc.string({ maxLength: 40 }), (model, serial) => {
        const r = { ...RESCUE, fingerprint: { ...FINGERPRINT, model, serial } };
        expect(parseStickRescue(formatStickRescue(r))).to.deep.equal(r);
      }));
    });

    it('refuses a changed byte (ERR_STICK_BAD_RESCUE_FILE: damaged), naming the file', () => {
      const text = formatStickRescue(RESCUE).replace('"chunkSize":1073741824', '"chunkSize":1073741825');
      const err = refusal(() => parseStickRescue(text, '/stick/ddferry/x/rescue.json'), 'ERR_STICK_BAD_RESCUE_FILE', '/stick/ddferry/x/rescue.json');
      expect(err.message).to.include('damaged');
    });

    it('refuses a missing, malformed or wrong checksum, and text that is not JSON', () => {
      const body = bodyOf(formatStickRescue(RESCUE));
      refusal(() => parseStickRescue(JSON.stringify(body)), 'ERR_STICK_BAD_RESCUE_FILE');
      refusal(() => parseStickRescue(JSON.stringify({ ...body, xxh64: 'ABCDEF0123456789' })), 'ERR_STICK_BAD_RESCUE_FILE');
      refusal(() => parseStickRescue(JSON.stringify({ ...body, xxh64: 42 })), 'ERR_STICK_BAD_RESCUE_FILE');
      refusal(() => parseStickRescue('{"format":'), 'ERR_STICK_BAD_RESCUE_FILE');
      refusal(() => parseStickRescue('[]'), 'ERR_STICK_BAD_RESCUE_FILE');
    });

    it('refuses wrong fields even with a right checksum: extra, missing, wrong types, format, version, ids', () => {
      const body = bodyOf(formatStickRescue(RESCUE));
      const fp = body.fingerprint as Record<string, unknown>;
      const cases: [string, Record<string, unknown>][] = [
        ['an extra field', { ...body, extra: 1 }],
        ['a missing field', Object.fromEntries(Object.entries(body).filter(([k]) => k !== 'stickId'))],
        ['another format', { ...body, format: 'ddferry-receipt' }],
        ['another version', { ...body, version: 2 }],
        ['a bad rescue id', { ...body, rescueId: 'not-a-uuid' }],
        ['an upper-case rescue id', { ...body, rescueId: RESCUE_ID.toUpperCase() }],
        ['a negative size', { ...body, sourceSize: -1, fingerprint: { ...fp, size: -1 } }],
        ['a zero source size', { ...body, sourceSize: 0, fingerprint: { ...fp, size: 0 } }],
        ['a fractional sector size', { ...body, sectorSize: 512.5 }],
        ['a size above 2^53-1', { ...body, sourceSize: 2 ** 53, fingerprint: { ...fp, size: 2 ** 53 } }],
        ['a size as text', { ...body, chunkSize: '1073741824' }],
        ['a chunk size not a multiple of the sector size', { ...body, chunkSize: 1000 }],
        ['a zero chunk size', { ...body, chunkSize: 0 }],
        ['sizes that disagree', { ...body, sourceSize: 4096 }],
        ['a fingerprint with an extra field', { ...body, fingerprint: { ...fp, extra: '' } }],
        ['a fingerprint text as a number', { ...body, fingerprint: { ...fp, model: 7 } }],
        ['a fingerprint text over 4096 characters', { ...body, fingerprint: { ...fp, model: 'x'.repeat(4097) } }],
        ['a stick id in upper case', { ...body, stickId: '0123456789ABCDEF' }],
        ['a short stick id', { ...body, stickId: '0123456' }],
        ['a stick id with a path', { ...body, stickId: '../../etc' }],
      ];
      for (const [what, b] of cases) {
        try {
          parseStickRescue(seal(b), 'r.json');
        } catch (err) {
          expect((err as ProtocolError).code, what).to.equal('ERR_STICK_BAD_RESCUE_FILE');
          continue;
        }
        throw new Error(`accepted ${what}`);
      }
    });

    it('accepts texts of exactly 4096 characters, and a file up to MAX_STICK_FILE_BYTES only', () => {
      const r = { ...RESCUE, fingerprint: { ...FINGERPRINT, model: 'm'.repeat(4096) } };
      expect(parseStickRescue(formatStickRescue(r)).fingerprint.model).to.have.length(4096);
      const text = formatStickRescue(RESCUE);
      const padded = text + ' '.repeat(MAX_STICK_FILE_BYTES - text.length + 1);
      const err = refusal(() => parseStickRescue(padded), 'ERR_STICK_BAD_RESCUE_FILE');
      expect(err.message).to.include(String(MAX_STICK_FILE_BYTES));
      expect(parseStickRescue(padded.slice(0, MAX_STICK_FILE_BYTES))).to.deep.equal(RESCUE);
    });
  });

  describe('receipts', () => {
    it('round-trips through formatReceipt and parseReceipt', () => {
      expect(parseReceipt(formatReceipt(RECEIPT), 'r.json')).to.deep.equal(RECEIPT);
      const empty: Receipt = { ...RECEIPT, merged: [], rejected: [] };
      expect(parseReceipt(formatReceipt(empty))).to.deep.equal(empty);
    });

    it('round-trips any ascending disjoint ranges', () => {
      fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 1000 })), { maxLength: 50 }), (steps) => {
        const merged: [number, number][] = [];
        let at = 0;
        for (const [gap, len] of steps) {
          const first = at + gap + 1;
          merged.push([first, first + len]);
          at = first + len;
        }
        const r = { ...RECEIPT, merged };
        expect(parseReceipt(formatReceipt(r)).merged).to.deep.equal(merged);
      }));
    });

    it('refuses a changed byte (ERR_STICK_BAD_RECEIPT), naming the file', () => {
      const text = formatReceipt(RECEIPT).replace('[1,120]', '[1,121]');
      refusal(() => parseReceipt(text, 'receipts/receipt-a.json'), 'ERR_STICK_BAD_RECEIPT', 'receipts/receipt-a.json');
    });

    it('refuses merged ranges that are not ascending and disjoint, or not of seqs from 1', () => {
      const body = bodyOf(formatReceipt(RECEIPT));
      for (const merged of [[[5, 4]], [[1, 5], [5, 9]], [[6, 9], [1, 2]], [[0, 3]], [[1, 2, 3]], [[1]], [1], [['1', '2']], [[1.5, 2]], [[1, 2 ** 53]], 'all']) {
        try {
          parseReceipt(seal({ ...body, merged }));
        } catch (err) {
          expect((err as ProtocolError).code, JSON.stringify(merged)).to.equal('ERR_STICK_BAD_RECEIPT');
          continue;
        }
        throw new Error(`accepted merged ${JSON.stringify(merged)}`);
      }
      expect(parseReceipt(seal({ ...body, merged: [[1, 5], [7, 9]] })).merged).to.deep.equal([[1, 5], [7, 9]]);
      expect(parseReceipt(seal({ ...body, merged: [[1, 5], [6, 9]] })).merged, 'adjacent ranges are disjoint').to.deep.equal([[1, 5], [6, 9]]);
    });

    it('refuses rejections whose bundle is a path, or whose fields are of the wrong kind', () => {
      const body = bodyOf(formatReceipt(RECEIPT));
      const good = (RECEIPT.rejected[0]!);
      for (const r of [
        { ...good, bundle: '../piece-000121.tar' }, { ...good, bundle: 'a/b.tar' }, { ...good, bundle: 'a\\b.tar' }, { ...good, bundle: '..' },
        { ...good, bundle: 'a\0b' }, { ...good, seqs: [0] }, { ...good, seqs: ['1'] }, { ...good, code: 7 }, { ...good, reason: 'r'.repeat(4097) },
        { ...good, extra: true }, { bundle: good.bundle, seqs: good.seqs, code: good.code },
      ]) {
        try {
          parseReceipt(seal({ ...body, rejected: [r] }));
        } catch (err) {
          expect((err as ProtocolError).code, JSON.stringify(r).slice(0, 100)).to.equal('ERR_STICK_BAD_RECEIPT');
          continue;
        }
        throw new Error(`accepted rejection ${JSON.stringify(r).slice(0, 100)}`);
      }
    });

    it('refuses another rescue id format, a rescue.json given as a receipt, and wrong writer fields', () => {
      const body = bodyOf(formatReceipt(RECEIPT));
      refusal(() => parseReceipt(formatStickRescue(RESCUE)), 'ERR_STICK_BAD_RECEIPT');
      refusal(() => parseReceipt(formatReceipt(RECEIPT)) && parseStickRescue(formatReceipt(RECEIPT)), 'ERR_STICK_BAD_RESCUE_FILE');
      refusal(() => parseReceipt(seal({ ...body, rescueId: 'x' })), 'ERR_STICK_BAD_RECEIPT');
      refusal(() => parseReceipt(seal({ ...body, writer: null })), 'ERR_STICK_BAD_RECEIPT');
      refusal(() => parseReceipt(seal({ ...body, writtenAt: 1 })), 'ERR_STICK_BAD_RECEIPT');
      expect(parseReceipt(seal({ ...body, rescueId: OTHER_RESCUE_ID })).rescueId, 'the parser checks the form; the reader checks it is its rescue').to.equal(OTHER_RESCUE_ID);
    });

    it('accepts MAX_RECEIPT_ENTRIES merged ranges and refuses one more', () => {
      const body = bodyOf(formatReceipt(RECEIPT));
      const merged = Array.from({ length: MAX_RECEIPT_ENTRIES }, (_, i): [number, number] => [2 * i + 1, 2 * i + 1]);
      expect(parseReceipt(seal({ ...body, merged })).merged).to.have.length(MAX_RECEIPT_ENTRIES);
      merged.push([2 * MAX_RECEIPT_ENTRIES + 1, 2 * MAX_RECEIPT_ENTRIES + 1]);
      const err = refusal(() => parseReceipt(seal({ ...body, merged })), 'ERR_STICK_BAD_RECEIPT');
      expect(err.message).to.include(String(MAX_RECEIPT_ENTRIES));
    });
  });
});
