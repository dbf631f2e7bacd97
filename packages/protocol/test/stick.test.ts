import { expect } from 'chai';
import fc from 'fast-check';

import { ProtocolError } from '../src/errors.js';
import type { Fingerprint } from '../src/identity.js';
import { deriveRescueKeys, receiptMac } from '../src/keys.js';
import type { RescueKeys } from '../src/keys.js';
import type { Receipt, StickRescue } from '../src/stick.js';
import {
  BUNDLE_NAME, bundleFileName, bundleSeqOf, fitJsonText, formatReceipt, formatStickRescue, MAX_RECEIPT_ENTRIES, MAX_STICK_FILE_BYTES, maxReceiptBytes,
  parseReceipt, parseStickRescue, RECEIPT_NAME, RECEIPT_TEXT_BYTES, stickRescueParts,
} from '../src/stick.js';
import { hexOf, xxh64 } from '../src/xxh64.js';

import { KEYS, OTHER_KEYS, OTHER_RESCUE_ID, RESCUE_ID } from './helpers.js';

const FINGERPRINT: Fingerprint = {
  size: 1_000_204_886_016, logicalSectorSize: 512, physicalSectorSize: 4096, model: 'WDC WD10EZEX', serial: 'WD-WCC6Y1234567', wwn: '0x50014ee2b1234567', kind: 'disk',
};

const RESCUE: StickRescue = {
  rescueId: RESCUE_ID, fingerprint: FINGERPRINT, sourceSize: FINGERPRINT.size, sectorSize: 512, chunkSize: 1 << 30, stickId: '0123456789abcdef',
};

const RECEIPT: Receipt = {
  rescueId: RESCUE_ID,
  merged: [{ seq: 1, headerHash: 'a'.repeat(32) }, { seq: 122, headerHash: '0123456789abcdef'.repeat(2) }],
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
      fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 40 }), (seq) => bundleSeqOf(bundleFileName(seq)) === seq));
    });

    it('reads no seq from other names: temporaries, too few or too many digits, seq 0, other suffixes', () => {
      for (const name of [bundleFileName(2 ** 40 + 1), bundleFileName(2 ** 53 - 1), '.piece-000123.tar.tmp', 'piece-12345.tar', 'piece-0000000000000001.tar', 'piece-000000.tar', 'piece-000123.tar.bak', 'piece-000123.TAR', 'xpiece-000123.tar', 'piece-00012a.tar', '../piece-000123.tar']) {
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
    /** The signed text of any body, as the assembler makes it: the MAC is right, so the field checks are reached. */
    function signed(body: Record<string, unknown>, keys: RescueKeys = KEYS): string {
      return `${JSON.stringify({ ...body, mac: receiptMac(keys, JSON.stringify(body)) })}\n`;
    }

    function receiptBody(r: Receipt = RECEIPT): Record<string, unknown> {
      const body = JSON.parse(formatReceipt(r, KEYS)) as Record<string, unknown>;
      delete body.mac;
      return body;
    }

    it('round-trips through formatReceipt and parseReceipt', () => {
      expect(parseReceipt(formatReceipt(RECEIPT, KEYS), KEYS, 'r.json')).to.deep.equal(RECEIPT);
      const empty: Receipt = { ...RECEIPT, merged: [], rejected: [] };
      expect(parseReceipt(formatReceipt(empty, KEYS), KEYS)).to.deep.equal(empty);
      expect(formatReceipt(RECEIPT, KEYS)).to.match(/^\{"format":"ddferry-receipt","version":2,"rescueId":"[^"]+","merged":\[\[1,"a{32}"\],/);
    });

    it('keeps within maxReceiptBytes(bundles) for one-piece bundles merged and refused with the longest texts', () => {
      const worst = (n: number): Receipt => ({
        rescueId: RESCUE_ID, writtenAt: `${'9'.repeat(4000)}`, writer: `host:${'\u0001é'.repeat(2000)}`,
        merged: Array.from({ length: n }, (_, i) => ({ seq: 2 ** 40 - n + i + 1, headerHash: 'f'.repeat(32) })),
        rejected: Array.from({ length: n }, (_, i) => ({
          bundle: `piece-${String(2 ** 40 - n + i + 1).padStart(15, '0')}.tar`, seqs: [2 ** 40, 2 ** 40, 2 ** 40, 2 ** 40, 2 ** 40, 2 ** 40],
          code: `ERR_${'X'.repeat(4000)}`, reason: '\u0000"\\ 😀'.repeat(1000),
        })),
      });
      for (const n of [0, 1, 7, 300]) {
        const text = formatReceipt(worst(n), KEYS);
        expect(Buffer.byteLength(text), `${n} bundles`).to.be.at.most(maxReceiptBytes(n));
        const back = parseReceipt(text, KEYS);
        expect(back.rejected[0]?.reason.endsWith('…') ?? true).to.equal(true);
        expect(back.merged).to.have.length(n);
      }
      expect(Buffer.byteLength(JSON.stringify(fitJsonText('é'.repeat(500), RECEIPT_TEXT_BYTES)))).to.be.within(RECEIPT_TEXT_BYTES - 3, RECEIPT_TEXT_BYTES);
      const fits = 'a'.repeat(RECEIPT_TEXT_BYTES - 2);
      expect(fitJsonText(fits, RECEIPT_TEXT_BYTES)).to.equal(fits);
      expect(fitJsonText(`${fits}b`, RECEIPT_TEXT_BYTES)).to.equal(`${'a'.repeat(RECEIPT_TEXT_BYTES - 5)}…`);
    });

    it('round-trips any ascending seqs with their header hashes', () => {
      fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.uint8Array({ minLength: 16, maxLength: 16 })), { maxLength: 50 }), (steps) => {
        let at = 0;
        const merged = steps.map(([gap, h]) => ({ seq: (at += gap), headerHash: Buffer.from(h).toString('hex') }));
        const r = { ...RECEIPT, merged };
        expect(parseReceipt(formatReceipt(r, KEYS), KEYS).merged).to.deep.equal(merged);
      }));
    });

    it('refuses a changed byte, a changed hash, an added piece: ERR_STICK_RECEIPT_MAC, naming the file', () => {
      const text = formatReceipt(RECEIPT, KEYS);
      for (const forged of [text.replace('[1,"', '[9,"'), text.replace(`"${'a'.repeat(32)}"`, `"${'b'.repeat(32)}"`), text.replace('"merged":[', `"merged":[[0,"${'c'.repeat(32)}"],`)]) {
        expect(forged).to.not.equal(text);
        refusal(() => parseReceipt(forged, KEYS, 'receipts/receipt-a.json'), 'ERR_STICK_RECEIPT_MAC', 'receipts/receipt-a.json');
      }
    });

    it('refuses a receipt written without the token: no mac, a mac of another token or another rescue', () => {
      const body = receiptBody();
      refusal(() => parseReceipt(`${JSON.stringify({ ...body, mac: '0'.repeat(64) })}\n`, KEYS), 'ERR_STICK_RECEIPT_MAC');
      refusal(() => parseReceipt(`${JSON.stringify({ ...body, mac: 'not hex' })}\n`, KEYS), 'ERR_STICK_RECEIPT_MAC');
      refusal(() => parseReceipt(JSON.stringify(body), KEYS), 'ERR_STICK_BAD_RECEIPT');
      refusal(() => parseReceipt(signed(body, deriveRescueKeys('a guess', RESCUE_ID)), KEYS), 'ERR_STICK_RECEIPT_MAC');
      refusal(() => parseReceipt(signed({ ...body, rescueId: OTHER_RESCUE_ID }, OTHER_KEYS), KEYS), 'ERR_STICK_BAD_RECEIPT');
      refusal(() => parseReceipt(signed(body, OTHER_KEYS), KEYS), 'ERR_STICK_RECEIPT_MAC');
      expect(() => formatReceipt(RECEIPT, OTHER_KEYS)).to.throw(TypeError);
    });

    it('refuses merged pieces that are not ascending, not of seqs 1 to 2^40, or without a header hash', () => {
      const body = receiptBody();
      const h = 'ab'.repeat(16);
      for (const merged of [[[5, h], [5, h]], [[6, h], [1, h]], [[0, h]], [[1, h, 3]], [[1]], [1], [['1', h]], [[1.5, h]], [[2 ** 40 + 1, h]], [[1, h.toUpperCase()]], [[1, h.slice(2)]], 'all']) {
        try {
          parseReceipt(signed({ ...body, merged }), KEYS);
        } catch (err) {
          expect((err as ProtocolError).code, JSON.stringify(merged)).to.equal('ERR_STICK_BAD_RECEIPT');
          continue;
        }
        throw new Error(`accepted merged ${JSON.stringify(merged)}`);
      }
      expect(parseReceipt(signed({ ...body, merged: [[1, h], [2 ** 40, h]] }), KEYS).merged).to.deep.equal([{ seq: 1, headerHash: h }, { seq: 2 ** 40, headerHash: h }]);
    });

    it('refuses rejections whose bundle is a path, or whose fields are of the wrong kind', () => {
      const body = receiptBody();
      const good = (RECEIPT.rejected[0]!);
      for (const r of [
        { ...good, bundle: '../piece-000121.tar' }, { ...good, bundle: 'a/b.tar' }, { ...good, bundle: 'a\\b.tar' }, { ...good, bundle: '..' },
        { ...good, bundle: 'a\0b' }, { ...good, seqs: [0] }, { ...good, seqs: ['1'] }, { ...good, code: 7 }, { ...good, reason: 'r'.repeat(4097) },
        { ...good, extra: true }, { bundle: good.bundle, seqs: good.seqs, code: good.code },
      ]) {
        try {
          parseReceipt(signed({ ...body, rejected: [r] }), KEYS);
        } catch (err) {
          expect((err as ProtocolError).code, JSON.stringify(r).slice(0, 100)).to.equal('ERR_STICK_BAD_RECEIPT');
          continue;
        }
        throw new Error(`accepted rejection ${JSON.stringify(r).slice(0, 100)}`);
      }
    });

    it('refuses a version 1 receipt, a rescue.json given as a receipt, and wrong writer fields', () => {
      const body = receiptBody();
      refusal(() => parseReceipt(formatStickRescue(RESCUE), KEYS), 'ERR_STICK_BAD_RECEIPT');
      refusal(() => parseStickRescue(formatReceipt(RECEIPT, KEYS)), 'ERR_STICK_BAD_RESCUE_FILE');
      refusal(() => parseReceipt(signed({ ...body, version: 1, merged: [[1, 120]] }), KEYS), 'ERR_STICK_BAD_RECEIPT');
      refusal(() => parseReceipt(signed({ ...body, rescueId: 'x' }), KEYS), 'ERR_STICK_BAD_RECEIPT');
      refusal(() => parseReceipt(signed({ ...body, writer: null }), KEYS), 'ERR_STICK_BAD_RECEIPT');
      refusal(() => parseReceipt(signed({ ...body, writtenAt: 1 }), KEYS), 'ERR_STICK_BAD_RECEIPT');
    });

    it('accepts MAX_RECEIPT_ENTRIES merged pieces and refuses one more', () => {
      const body = receiptBody();
      const h = '00'.repeat(16);
      const merged = Array.from({ length: MAX_RECEIPT_ENTRIES }, (_, i): [number, string] => [i + 1, h]);
      expect(parseReceipt(signed({ ...body, merged }), KEYS).merged).to.have.length(MAX_RECEIPT_ENTRIES);
      merged.push([MAX_RECEIPT_ENTRIES + 1, h]);
      const err = refusal(() => parseReceipt(signed({ ...body, merged }), KEYS), 'ERR_STICK_BAD_RECEIPT');
      expect(err.message).to.include(String(MAX_RECEIPT_ENTRIES));
    });
  });
});
