import { execFileSync, spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Piece, Receipt } from '@ddferry/protocol';
import { bundleFileName, deriveRescueKeys, parseReceipt, RECEIPT_NAME, sealPiece, writeBundle } from '@ddferry/protocol';
import { expect } from 'chai';

import { run } from '../src/cli.js';
import type { ImageOptions } from '../src/image.js';
import { Image } from '../src/image.js';
import type { BundleEvent, ImportOptions, ImportResult } from '../src/import.js';
import { importStick } from '../src/import.js';
import { ReceiptWriter, receiptFileName } from '../src/receipt-writer.js';

import {
  bytesOf, CHUNK_SIZE, FINGERPRINT, hold, KEYS, makePiece, OTHER_FINGERPRINT, OTHER_RESCUE_ID, PLUS, readImage, readStatuses, RESCUE_ID, SECRET, SOURCE_SIZE, tempDir,
} from './helpers.js';
import {
  bundleBytes, expectedImage, fourPieces, makeRescueFolder, patchHeader, pieceEntryOffsets, readReceipts, refOf, STICK_ID, writeBundleFile,
} from './stick-fixture.js';

const CHUNK2 = { pos: 2 * CHUNK_SIZE, end: 3 * CHUNK_SIZE };

async function importInto(imagePath: string, stick: string, options: Partial<ImportOptions> = {}, imageOptions: ImageOptions = {}): Promise<ImportResult> {
  const image = await Image.open(imagePath, imageOptions);
  try {
    return await importStick(stick, image, { secret: SECRET, ...options });
  } finally {
    await image.close();
  }
}

async function receiptOf(result: ImportResult): Promise<Receipt> {
  expect(result.receipt, 'a receipt was written').to.be.a('string');
  return parseReceipt(await readFile(result.receipt!, 'utf8'), KEYS, result.receipt);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<Error> {
  try {
    await p;
  } catch (err) {
    expect((err as { code?: string }).code, (err as Error).message).to.equal(code);
    return err as Error;
  }
  throw new Error(`expected ${code}`);
}

describe('importStick', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let stick: string;
  let imagePath: string;
  let folder: string;
  let pieces: Piece[];
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    stick = join(dir, 'stick');
    imagePath = join(dir, 'disk.img');
    folder = await makeRescueFolder(stick);
    pieces = fourPieces();
  });
  afterEach(async () => cleanup());

  async function writeAll(list: readonly Piece[] = pieces): Promise<void> {
    for (const p of list) await writeBundleFile(folder, p);
  }

  describe('a clean stick', () => {
    it('merges every bundle: the image equals the pieces, the map their statuses, the receipt lists them', async () => {
      await writeAll();
      const events: BundleEvent[] = [];
      const result = await importInto(imagePath, stick, { onBundle: (e) => events.push(e) });
      expect(result.stopped).to.equal('done');
      expect(result.error).to.equal(undefined);
      expect({ bundles: result.bundles, merged: result.merged, refused: result.refused, pieces: result.mergedPieces })
        .to.deep.equal({ bundles: 4, merged: 4, refused: 0, pieces: 4 });
      expect(result.mergedBytes).to.equal(pieces.reduce((s, p) => s + p.data.length, 0));
      expect(await readImage(imagePath)).to.deep.equal(expectedImage(pieces));
      const statuses = await readStatuses(`${imagePath}.map`);
      expect(statuses.length).to.equal(SOURCE_SIZE);
      expect(statuses[2048]).to.equal(3); // '-'
      expect(statuses[2 * CHUNK_SIZE + 2000]).to.equal(1); // '*'
      expect(statuses[3 * CHUNK_SIZE + 999]).to.equal(PLUS);
      const receipt = await receiptOf(result);
      expect(receipt.rescueId).to.equal(RESCUE_ID);
      expect(receipt.merged).to.deep.equal(pieces.map(refOf));
      expect(receipt.rejected).to.deep.equal([]);
      expect(receipt.writer).to.match(/:.*disk\.img$/);
      expect(events.map((e) => e.outcome).sort()).to.deep.equal(['merged', 'merged', 'merged', 'merged']);
      const binding = JSON.parse(await readFile(`${imagePath}.ddferry.json`, 'utf8')) as { rescueId: string };
      expect(binding.rescueId).to.equal(RESCUE_ID);
      const image = await Image.open(imagePath);
      expect(image.mergedPieces()).to.deep.equal(pieces.map(refOf));
      await image.close();
    });

    it('signs its receipt with the rescue\'s receipt key: another token cannot read it as genuine (ERR_STICK_RECEIPT_MAC)', async () => {
      await writeAll();
      const result = await importInto(imagePath, stick);
      const text = await readFile(result.receipt!, 'utf8');
      expect(text).to.match(/"mac":"[0-9a-f]{64}"\}\n$/);
      expect(() => parseReceipt(text, deriveRescueKeys('not the token', RESCUE_ID), result.receipt)).to.throw().with.property('code', 'ERR_STICK_RECEIPT_MAC');
      const forged = text.replace(`[1,"${refOf(pieces[0]!).headerHash}"]`, `[1,"${'0'.repeat(32)}"]`);
      expect(forged).to.not.equal(text);
      expect(() => parseReceipt(forged, KEYS, result.receipt)).to.throw().with.property('code', 'ERR_STICK_RECEIPT_MAC');
    });

    it('is idempotent: a replayed stick (every bundle again) is skipped without opening frames, changes nothing, and is named in a new receipt (the older one it covers deleted)', async () => {
      await writeAll();
      await importInto(imagePath, stick);
      const image1 = await readFile(imagePath);
      const map1 = await readStatuses(`${imagePath}.map`);
      const again = await importInto(imagePath, stick);
      expect({ merged: again.merged, skipped: again.skipped, pieces: again.mergedPieces }).to.deep.equal({ merged: 0, skipped: 4, pieces: 0 });
      expect(await readFile(imagePath)).to.deep.equal(image1);
      expect(await readStatuses(`${imagePath}.map`)).to.deep.equal(map1);
      expect((await receiptOf(again)).merged).to.deep.equal(pieces.map(refOf));
      expect(await readReceipts(folder)).to.have.length(1);
    });

    it('merges a bundle of several pieces, skipping the ones merged before', async () => {
      await writeBundleFile(folder, [pieces[0]!]);
      await importInto(imagePath, stick);
      await rm(join(folder, 'piece-000001.tar'));
      await writeBundleFile(folder, pieces);
      const result = await importInto(imagePath, stick);
      expect({ merged: result.merged, pieces: result.mergedPieces }).to.deep.equal({ merged: 1, pieces: 3 });
      expect(await readImage(imagePath)).to.deep.equal(expectedImage(pieces));
    });

    it('reads a bundle larger than maxHeldBytes twice (checked whole, then merged piece by piece) with the same result', async () => {
      await writeBundleFile(folder, pieces.slice(0, 3));
      await writeBundleFile(folder, pieces[3]!);
      const result = await importInto(imagePath, stick, { maxHeldBytes: 1 });
      expect({ merged: result.merged, pieces: result.mergedPieces }).to.deep.equal({ merged: 2, pieces: 4 });
      expect(await readImage(imagePath)).to.deep.equal(expectedImage(pieces));
    });

    it('deciphers held bundles in their own buffers (a zero run first: memory of its own), used again only once their pieces are merged', async () => {
      // frames of 1 KiB: a piece of two random frames is deciphered in its bundle's buffer; one
      // whose first frame is a zero run goes into memory of its own (the pool of merged pieces')
      const list: Piece[] = [];
      for (let c = 0; c < 3; ++c) {
        for (let h = 0; h < 2; ++h) {
          const pos = c * CHUNK_SIZE + h * 2048;
          const data = h === 0 ? bytesOf(2048, pos) : Buffer.concat([Buffer.alloc(1024), bytesOf(1024, pos)]);
          list.push(makePiece(list.length + 1, c, [{ pos, size: 2048, status: '+', data }]));
        }
      }
      for (const p of list) await writeBundle([sealPiece(p, KEYS, { frameBytes: 1024 })], createWriteStream(join(folder, bundleFileName(p.seq))));
      // merges held back while the next bundles are read: a buffer given back too early is read into
      const image = await Image.open(imagePath);
      let result: ImportResult;
      try {
        const { release, held } = hold(image);
        const importing = importStick(stick, image, { secret: SECRET, maxHeldBytes: 20_000 });
        await new Promise((r) => setTimeout(r, 200));
        release();
        await held;
        result = await importing;
      } finally {
        await image.close();
      }
      expect({ merged: result.merged, refused: result.refused, pieces: result.mergedPieces }).to.deep.equal({ merged: 6, refused: 0, pieces: 6 });
      expect(Buffer.from(await readImage(imagePath)).equals(Buffer.from(expectedImage(list)))).to.equal(true);
    });

    it('ignores temporaries and other files, and writes a receipt even with no bundle', async () => {
      await writeFile(join(folder, '.piece-000001.tar.tmp'), 'partial');
      await writeFile(join(folder, 'notes.txt'), 'hello');
      const warnings: string[] = [];
      await writeFile(join(folder, 'piece-1.tar'), 'not a bundle name');
      await writeFile(join(folder, 'piece-9007199254740991.tar'), await bundleBytes(pieces[0]!));
      await writeFile(join(folder, `piece-${2 ** 40 + 1}.tar`), await bundleBytes(pieces[0]!));
      const result = await importInto(imagePath, stick, { warn: (m) => warnings.push(m) });
      expect(result.bundles).to.equal(0);
      expect(warnings.join('\n')).to.include('piece-1.tar').and.include('piece-9007199254740991.tar').and.include(`piece-${2 ** 40 + 1}.tar`);
      const receipt = await receiptOf(result);
      expect(receipt.merged).to.deep.equal([]);
      expect(receiptFileName(new Date(Date.UTC(2026, 11, 1, 7, 15, 0, 123)), 'a1b2c3')).to.equal('receipt-20261201T071500Z-a1b2c3.json');
      expect(RECEIPT_NAME.test(result.receipt!.split('/').pop()!)).to.equal(true);
    });
  });

  describe('refusals', () => {
    /** Write bundles 1, 2 and 4 sound and bundle 3 through `damage`; import; check chunk 2 untouched. */
    async function refuse(damage: (good: Buffer) => Buffer | Promise<Buffer>, code: string | RegExp, name = 'piece-000003.tar', piece3: Piece = pieces[2]!): Promise<Receipt> {
      await writeAll([pieces[0]!, pieces[1]!, pieces[3]!]);
      await writeFile(join(folder, name), await damage(await bundleBytes(piece3)));
      const result = await importInto(imagePath, stick);
      expect(result.stopped).to.equal('done');
      expect({ merged: result.merged, refused: result.refused }).to.deep.equal({ merged: 3, refused: 1 });
      const receipt = await receiptOf(result);
      expect(receipt.merged).to.deep.equal([pieces[0]!, pieces[1]!, pieces[3]!].map(refOf));
      expect(receipt.rejected).to.have.length(1);
      const r = receipt.rejected[0]!;
      expect(r.bundle).to.equal(name);
      if (typeof code === 'string') expect(r.code, r.reason).to.equal(code);
      else expect(r.code, r.reason).to.match(code);
      const image = await readImage(imagePath);
      expect(image.subarray(CHUNK2.pos, CHUNK2.end).every((b) => b === 0), 'nothing of the refused bundle written').to.equal(true);
      const statuses = await readStatuses(`${imagePath}.map`);
      expect(statuses.subarray(CHUNK2.pos, CHUNK2.end).every((s) => s === 0), 'chunk 2 still ? in IMAGE.map').to.equal(true);
      expect(image).to.deep.equal(expectedImage([pieces[0]!, pieces[1]!, pieces[3]!]));
      return receipt;
    }

    it('refuses a flipped byte in a sealed frame or its tag (ERR_SEAL_FRAME_AUTH_FAILED), naming its seqs', async () => {
      const receipt = await refuse((b) => {
        b[pieceEntryOffsets(pieces[2]!).data + 100]! ^= 0x01;
        return b;
      }, 'ERR_SEAL_FRAME_AUTH_FAILED');
      expect(receipt.rejected[0]!.seqs).to.deep.equal([3]);
    });

    it('refuses a flipped byte in the sealed header (ERR_SEAL_AUTH_FAILED)', async () => {
      await refuse((b) => {
        b[pieceEntryOffsets(pieces[2]!).sealedHeader + 60]! ^= 0x01;
        return b;
      }, 'ERR_SEAL_AUTH_FAILED');
    });

    it('refuses a bundle sealed with the wrong secret (ERR_SEAL_AUTH_FAILED)', async () => {
      await refuse(() => bundleBytes(pieces[2]!, 'a guessed token'), 'ERR_SEAL_AUTH_FAILED');
    });

    for (const seq of [2 ** 40 + 1, 2 ** 53 - 1]) {
      it(`refuses a sealed header claiming seq ${seq} (ERR_PIECE_BAD_SEQ), changing nothing`, async () => {
        await refuse((b) => {
          b.writeBigUInt64BE(BigInt(seq), pieceEntryOffsets(pieces[2]!).sealedHeader + 21);
          return b;
        }, 'ERR_PIECE_BAD_SEQ');
        const image = await Image.open(imagePath);
        expect(image.maxMergedSeq).to.equal(4);
        expect(image.mergedPieces().map((r) => r.seq)).to.deep.equal([1, 2, 4]);
        await image.close();
      });
    }

    it('refuses a truncated bundle', async () => {
      await refuse((b) => b.subarray(0, pieceEntryOffsets(pieces[2]!).data + 300), /^ERR_BUNDLE_(MALFORMED|MISSING_ENTRY|SIZE_MISMATCH)$/);
    });

    it('refuses a bundle cut after its sealed header (ERR_BUNDLE_MISSING_ENTRY)', async () => {
      await refuse((b) => Buffer.concat([b.subarray(0, pieceEntryOffsets(pieces[2]!).header), Buffer.alloc(1024)]), 'ERR_BUNDLE_MISSING_ENTRY');
    });

    it('refuses a renamed bundle (ERR_STICK_BUNDLE_NAME) without reading its data', async () => {
      await refuse((b) => b, 'ERR_STICK_BUNDLE_NAME', 'piece-000005.tar');
    });

    it('refuses a tar entry named ../x (ERR_BUNDLE_UNSAFE_PATH)', async () => {
      await refuse((b) => {
        patchHeader(b, pieceEntryOffsets(pieces[2]!).header, { name: '../x' });
        return b;
      }, 'ERR_BUNDLE_UNSAFE_PATH');
    });

    it('refuses a symlink entry (ERR_BUNDLE_ENTRY_TYPE)', async () => {
      await refuse((b) => {
        patchHeader(b, pieceEntryOffsets(pieces[2]!).header, { type: '2', linkname: '/etc/passwd' });
        return b;
      }, 'ERR_BUNDLE_ENTRY_TYPE');
    });

    it('refuses a bundle moved from another rescue, even sealed with the same token (ERR_PIECE_WRONG_RESCUE)', async () => {
      await refuse((b) => b, 'ERR_PIECE_WRONG_RESCUE', 'piece-000003.tar', fourPieces(OTHER_RESCUE_ID)[2]!);
    });

    it('refuses a piece outside its chunk (ERR_PIECE_EXTENT_OUTSIDE_CHUNK)', async () => {
      const outside = makePiece(3, 2, [{ pos: 2 * CHUNK_SIZE - 512, size: 1024, status: '+' }]);
      await refuse((b) => b, 'ERR_PIECE_EXTENT_OUTSIDE_CHUNK', 'piece-000003.tar', outside);
    });

    it('refuses a bundle that is a symbolic link (ERR_IMPORT_BUNDLE_NOT_FILE)', async () => {
      await writeAll([pieces[0]!, pieces[1]!, pieces[3]!]);
      await writeFile(join(dir, 'elsewhere.tar'), await bundleBytes(pieces[2]!));
      await symlink(join(dir, 'elsewhere.tar'), join(folder, 'piece-000003.tar'));
      const result = await importInto(imagePath, stick);
      expect((await receiptOf(result)).rejected.map((r) => r.code)).to.deep.equal(['ERR_IMPORT_BUNDLE_NOT_FILE']);
      expect(await readImage(imagePath)).to.deep.equal(expectedImage([pieces[0]!, pieces[1]!, pieces[3]!]));
    });

    it('refuses swapped bundles: both with ERR_STICK_BUNDLE_NAME, nothing of either written', async () => {
      await writeAll([pieces[0]!, pieces[1]!]);
      await writeBundleFile(folder, pieces[2]!, 'piece-000004.tar');
      await writeBundleFile(folder, pieces[3]!, 'piece-000003.tar');
      const result = await importInto(imagePath, stick);
      const receipt = await receiptOf(result);
      expect(receipt.merged).to.deep.equal([pieces[0]!, pieces[1]!].map(refOf));
      expect(receipt.rejected.map((r) => [r.bundle, r.code, r.seqs])).to.deep.equal([
        ['piece-000003.tar', 'ERR_STICK_BUNDLE_NAME', [4]],
        ['piece-000004.tar', 'ERR_STICK_BUNDLE_NAME', [3]],
      ]);
      expect(await readImage(imagePath)).to.deep.equal(expectedImage([pieces[0]!, pieces[1]!]));
    });

    it('merges a refused bundle once the reader writes it again', async () => {
      await refuse((b) => {
        b[pieceEntryOffsets(pieces[2]!).data]! ^= 0x80;
        return b;
      }, 'ERR_SEAL_FRAME_AUTH_FAILED');
      await rename(join(folder, 'piece-000003.tar'), join(dir, 'bad.tar'));
      await writeBundleFile(folder, pieces[2]!);
      const result = await importInto(imagePath, stick);
      expect((await receiptOf(result)).merged).to.deep.equal(pieces.map(refOf));
      expect(await readImage(imagePath)).to.deep.equal(expectedImage(pieces));
    });

    it('refuses a forged bundle reusing a genuine seq, then merges the genuine one: the receipts never name the forgery', async () => {
      // the forger has no token: its piece 3 holds zeros where the disk has data
      const forged = makePiece(3, 2, [{ pos: 2 * CHUNK_SIZE, size: 4096, status: '+', data: new Uint8Array(4096) }]);
      await writeAll([pieces[0]!, pieces[1]!, pieces[3]!]);
      await writeBundleFile(folder, forged, undefined, 'a guessed token');
      const first = await importInto(imagePath, stick);
      const r1 = await receiptOf(first);
      expect(r1.rejected.map((r) => [r.bundle, r.code])).to.deep.equal([['piece-000003.tar', 'ERR_SEAL_AUTH_FAILED']]);
      expect(r1.merged.map((r) => r.seq)).to.deep.equal([1, 2, 4]);
      expect((await readStatuses(`${imagePath}.map`)).subarray(CHUNK2.pos, CHUNK2.end).every((s) => s === 0)).to.equal(true);
      await rm(join(folder, 'piece-000003.tar'));
      await writeBundleFile(folder, pieces[2]!);
      const second = await importInto(imagePath, stick);
      expect((await receiptOf(second)).merged).to.deep.equal(pieces.map(refOf));
      expect(await readImage(imagePath)).to.deep.equal(expectedImage(pieces));
    });

    it('refuses loudly the genuine piece when a token holder merged another under its seq first (ERR_PIECE_SEQ_CONFLICT): the receipt names the other hash, so the reader keeps its piece', async () => {
      const other = makePiece(3, 2, [{ pos: 2 * CHUNK_SIZE, size: 512, status: '-' }]);
      await writeAll([pieces[0]!, pieces[1]!, pieces[3]!]);
      await writeBundleFile(folder, other);
      await importInto(imagePath, stick);
      await rm(join(folder, 'piece-000003.tar'));
      await writeBundleFile(folder, pieces[2]!);
      const events: BundleEvent[] = [];
      const result = await importInto(imagePath, stick, { onBundle: (e) => events.push(e) });
      const receipt = await receiptOf(result);
      expect(receipt.rejected.map((r) => [r.bundle, r.code, r.seqs])).to.deep.equal([['piece-000003.tar', 'ERR_PIECE_SEQ_CONFLICT', [3]]]);
      expect(receipt.rejected[0]!.reason).to.contain(refOf(pieces[2]!).headerHash).and.contain(refOf(other).headerHash);
      expect(receipt.merged.find((r) => r.seq === 3)).to.equal(undefined);
      expect(events.find((e) => e.bundle === 'piece-000003.tar')).to.deep.include({ outcome: 'refused', code: 'ERR_PIECE_SEQ_CONFLICT' });
      const image = await Image.open(imagePath);
      expect(image.mergedHash(3)).to.equal(refOf(other).headerHash);
      await image.close();
    });
  });

  describe('the rescue', () => {
    it('binds an unbound image to the stick\'s only rescue', async () => {
      await writeAll();
      await importInto(imagePath, stick);
      const image = await Image.open(imagePath);
      expect(image.binding?.rescueId).to.equal(RESCUE_ID);
      await image.close();
    });

    it('refuses an unbound image when the stick holds several rescues, listing them; --rescue chooses', async () => {
      await writeAll();
      await makeRescueFolder(stick, OTHER_RESCUE_ID, OTHER_FINGERPRINT);
      const image = await Image.open(imagePath);
      try {
        const err = await expectCode(importStick(stick, image, { secret: SECRET }), 'ERR_IMPORT_AMBIGUOUS');
        expect(err.message).to.include(RESCUE_ID).and.include(OTHER_RESCUE_ID).and.include('--rescue');
        expect(image.binding).to.equal(undefined);
        const result = await importStick(stick, image, { secret: SECRET, rescueId: RESCUE_ID });
        expect(result.merged).to.equal(4);
      } finally {
        await image.close();
      }
      // bound now: the image's rescue is picked among several
      const again = await importInto(imagePath, stick);
      expect(again.rescue.rescueId).to.equal(RESCUE_ID);
    });

    it('refuses a stick without the bound rescue (ERR_IMPORT_NO_RESCUE), showing both', async () => {
      const image = await Image.open(imagePath);
      await image.bind({ rescueId: OTHER_RESCUE_ID, fingerprint: OTHER_FINGERPRINT, chunkSize: CHUNK_SIZE, sectorSize: 512 });
      try {
        const err = await expectCode(importStick(stick, image, { secret: SECRET }), 'ERR_IMPORT_NO_RESCUE');
        expect(err.message).to.include(OTHER_RESCUE_ID).and.include(RESCUE_ID);
        await expectCode(importStick(stick, image, { secret: SECRET, rescueId: RESCUE_ID }), 'ERR_IMAGE_WRONG_RESCUE');
      } finally {
        await image.close();
      }
      expect(await readReceipts(folder)).to.deep.equal([]);
    });

    it('refuses a rescue.json of another device for the same rescue (ERR_IMAGE_WRONG_DEVICE)', async () => {
      await writeAll();
      await importInto(imagePath, stick);
      await makeRescueFolder(stick, RESCUE_ID, { ...FINGERPRINT, serial: 'SER-999' });
      const before = await readFile(imagePath);
      const image = await Image.open(imagePath);
      try {
        const err = await expectCode(importStick(stick, image, { secret: SECRET }), 'ERR_IMAGE_WRONG_DEVICE');
        expect(err.message).to.include('SER-111').and.include('SER-999');
      } finally {
        await image.close();
      }
      expect(await readFile(imagePath)).to.deep.equal(before);
    });

    it('refuses a damaged rescue.json (ERR_STICK_BAD_RESCUE_FILE) and one in another rescue\'s folder', async () => {
      await writeAll();
      const file = join(folder, 'rescue.json');
      const text = await readFile(file, 'utf8');
      await writeFile(file, text.replace('"chunkSize":4096', '"chunkSize":8192'));
      await expectCode(importInto(imagePath, stick), 'ERR_STICK_BAD_RESCUE_FILE');
      await writeFile(file, text);
      const moved = join(stick, 'ddferry', OTHER_RESCUE_ID);
      await rename(folder, moved);
      await expectCode(importInto(imagePath, stick), 'ERR_STICK_BAD_RESCUE_FILE');
      await rm(join(stick, 'ddferry'), { recursive: true });
      await expectCode(importInto(imagePath, stick), 'ERR_IMPORT_NO_RESCUE');
      const image = await Image.open(imagePath);
      expect(image.binding).to.equal(undefined);
      await image.close();
    });
  });

  describe('interruptions', () => {
    it('loses nothing when merging stops at any durable step: a re-import completes the image', async () => {
      await writeAll();
      let steps = 0;
      await importInto(join(dir, 'count.img'), stick, {}, { onStep: () => void ++steps });
      expect(steps).to.be.greaterThan(6);
      for (let k = 1; k <= steps; k++) {
        const path = join(dir, `kill-${k}.img`);
        let n = 0;
        const killed = await importInto(path, stick, {}, {
          onStep: () => {
            if (++n === k) throw new Error(`killed at step ${k}`);
          },
        }).then((r): ImportResult | Error => r, (err: unknown) => err as Error);
        // what the image claims is durable and right
        const expected = expectedImage(pieces);
        const image = await readImage(path);
        const statuses = await readStatuses(`${path}.map`).catch(() => new Uint8Array(0));
        for (let i = 0; i < statuses.length; i++) {
          if (statuses[i] === PLUS && image[i] !== expected[i]) throw new Error(`kill at step ${k}: byte ${i} is + but not written`);
        }
        if (!(killed instanceof Error)) {
          expect(killed.stopped, `kill at step ${k}`).to.equal('failed');
          // a receipt may list a piece only once its data is fsynced and IMAGE.map saved
          const receipt = await receiptOf(killed);
          for (const { seq, headerHash } of receipt.merged) {
            expect(headerHash).to.equal(refOf(pieces[seq - 1]!).headerHash);
            for (const e of pieces[seq - 1]!.extents) {
              for (let i = e.pos; i < e.pos + e.size; i++) {
                if (statuses[i] !== PLUS || image[i] !== expected[i]) throw new Error(`kill at step ${k}: the receipt lists piece ${seq}, but byte ${i} is not durable`);
              }
            }
          }
        }
        const again = await importInto(path, stick);
        expect(again.stopped).to.equal('done');
        expect(await readImage(path), `re-import after a kill at step ${k}`).to.deep.equal(expected);
        expect((await receiptOf(again)).merged).to.deep.equal(pieces.map(refOf));
      }
    });

    it('stops at a bundle boundary when aborted, with a receipt of what is durable', async () => {
      await writeAll();
      const controller = new AbortController();
      const result = await importInto(imagePath, stick, {
        maxHeldBytes: 1, signal: controller.signal, onBundle: (e) => {
          if (e.outcome === 'merged') controller.abort('SIGINT');
        },
      });
      expect(result.stopped).to.equal('aborted');
      expect(result.merged).to.equal(1);
      expect((await receiptOf(result)).merged).to.deep.equal([refOf(pieces[0]!)]);
      const rest = await importInto(imagePath, stick);
      expect({ merged: rest.merged, skipped: rest.skipped }).to.deep.equal({ merged: 3, skipped: 1 });
    });

    it('merges every bundle on a stick too full for the receipt, says what to free, and writes the receipt at the next import once freed', async () => {
      await writeAll();
      const bundleNames = (await readdir(folder)).filter((n) => n.endsWith('.tar')).sort();
      // 700 bytes free on a stick of 512-byte clusters (fusefat): no receipt fits
      let free = 700;
      const space = async (): Promise<{ free: number; blockSize: number; total: number }> => ({ free, blockSize: 512, total: 64 << 20 });
      const first = await importInto(imagePath, stick, { maxHeldBytes: 1, space });
      expect({ merged: first.merged, stopped: first.stopped, receipt: first.receipt }).to.deep.equal({ merged: 4, stopped: 'failed', receipt: undefined });
      expect(await readImage(imagePath)).to.deep.equal(expectedImage(pieces));
      const err = first.error as Error & { code: string };
      expect(err.code).to.equal('ERR_IMPORT_RECEIPT_WRITE');
      const need = /\((\d+) bytes free, (\d+) needed\)/.exec(err.message);
      expect(need, err.message).to.not.equal(null);
      expect(err.message).to.include(`Free at least ${Number(need![2]) - 700} bytes on the stick`).and.include('then run the same import again: it writes the receipt');
      // it names merged bundles that free enough, with their sizes, and nothing was created on the stick
      const named = bundleNames.filter((n) => err.message.includes(`${n} (`));
      expect(named.length, err.message).to.be.at.least(1);
      expect(await readdir(folder)).to.not.include('receipts');
      const kept = `${imagePath}.ddferry.receipt-${STICK_ID}.json`;
      expect(parseReceipt(await readFile(kept, 'utf8'), KEYS).merged).to.deep.equal(pieces.map(refOf));
      // the user deletes what the message named; the next import names those pieces too, from the kept copy
      for (const n of named) await rm(join(folder, n));
      free = 64 << 20;
      const second = await importInto(imagePath, stick, { space });
      expect({ stopped: second.stopped, skipped: second.skipped }).to.deep.equal({ stopped: 'done', skipped: 4 - named.length });
      expect((await receiptOf(second)).merged).to.deep.equal(pieces.map(refOf));
      expect(await readdir(dir)).to.not.include(`disk.img.ddferry.receipt-${STICK_ID}.json`);
    });

    it('keeps one receipt on the stick however often it is imported: a new one covering an older deletes it', async () => {
      await writeAll(pieces.slice(0, 2));
      await importInto(imagePath, stick);
      await writeAll(pieces.slice(2));
      const again = await importInto(imagePath, stick);
      expect(await readdir(join(folder, 'receipts'))).to.deep.equal([again.receipt!.split('/').pop()]);
      expect((await receiptOf(again)).merged).to.deep.equal(pieces.map(refOf));
    });

    it('stops on a failure of PC_B (not a refusal), with a receipt of what is durable', async () => {
      await writeAll();
      let writes = 0;
      const result = await importInto(imagePath, stick, { maxHeldBytes: 1 }, {
        onStep: (step) => {
          if (step === 'write' && ++writes === 3) throw Object.assign(new Error('No space left on device'), { code: 'ERR_IMAGE_WRITE' });
        },
      });
      expect(result.stopped).to.equal('failed');
      expect((result.error as { code?: string }).code).to.equal('ERR_IMAGE_WRITE');
      const receipt = await receiptOf(result);
      expect(receipt.rejected).to.deep.equal([]);
      expect(receipt.merged).to.deep.equal([refOf(pieces[0]!)]);
      expect(await readImage(imagePath)).to.deep.equal(expectedImage([pieces[0]!]));
    });
  });

  describe('ddferry-assembler import', () => {
    const io = (): { io: { stdout: (t: string) => void; stderr: (t: string) => void }; out: string[]; err: string[] } => {
      const out: string[] = [];
      const err: string[] = [];
      return { io: { stdout: (t) => out.push(t), stderr: (t) => err.push(t) }, out, err };
    };

    let token: string;
    beforeEach(async () => {
      token = join(dir, 'token');
      await writeFile(token, `${SECRET}\n`, { mode: 0o600 });
    });

    it('merges, prints a line per bundle and a summary, and exits 0 (refusals included)', async () => {
      await writeAll([pieces[0]!, pieces[1]!]);
      await writeBundleFile(folder, pieces[2]!, 'piece-000009.tar');
      const t = io();
      expect(await run(['import', stick, imagePath, '--token-file', token], t.io)).to.equal(0);
      const text = t.err.join('');
      expect(text).to.include('[1/3] piece-000001.tar: merged 1 piece(s)');
      expect(text).to.include('piece-000009.tar: refused: ERR_STICK_BUNDLE_NAME');
      expect(text).to.match(/2 merged, 1 refused/);
      expect(text).to.match(/MB\/s/);
      expect(text).to.include('rescued (');
      expect(text).to.include('ddferry-reader rescue JOBDIR --to STICK --token-file TOKEN` again there (STICK: where the stick is mounted on PC_A;');
      expect(text, 'no path of PC_B in what to run on PC_A').to.not.include(`--to ${stick}`);
    });

    it('refuses to import without --token-file (ERR_IMPORT_NO_TOKEN, exit 1), saying how to bring the token from PC_A, touching nothing', async () => {
      await writeAll();
      const t = io();
      expect(await run(['import', stick, imagePath], t.io)).to.equal(1);
      const text = t.err.join('');
      expect(text).to.include('ERR_IMPORT_NO_TOKEN').and.include('--token-file').and.include('PC_A').and.include('chmod 600').and.include('cat > token');
      await readFile(imagePath).then(() => expect.fail('the image was created'), (err: { code: string }) => expect(err.code).to.equal('ENOENT'));
      expect(await readReceipts(folder)).to.deep.equal([]);
    });

    it('with another token, refuses every bundle (ERR_SEAL_AUTH_FAILED) and merges nothing', async () => {
      await writeAll();
      const wrong = join(dir, 'wrong-token');
      await writeFile(wrong, 'not the token of these tests, but a strong one\n', { mode: 0o600 });
      const t = io();
      expect(await run(['import', stick, imagePath, '--token-file', wrong], t.io)).to.equal(0);
      expect(t.err.join('')).to.match(/0 merged, 4 refused/).and.include('ERR_SEAL_AUTH_FAILED');
      expect(await readImage(imagePath)).to.deep.equal(new Uint8Array(SOURCE_SIZE));
    });

    it('exits 1 naming the code for an ambiguous stick, 2 for a malformed IMAGE.map, 1 for usage', async () => {
      await makeRescueFolder(stick, OTHER_RESCUE_ID, OTHER_FINGERPRINT);
      let t = io();
      expect(await run(['import', stick, imagePath, '--token-file', token], t.io)).to.equal(1);
      expect(t.err.join('')).to.include('ERR_IMPORT_AMBIGUOUS');
      await writeFile(`${imagePath}.map`, 'garbage\n');
      t = io();
      expect(await run(['import', stick, imagePath, '--rescue', RESCUE_ID, '--token-file', token], t.io)).to.equal(2);
      t = io();
      expect(await run(['import', stick], t.io)).to.equal(1);
      expect(t.err.join('')).to.include('ERR_USAGE');
      t = io();
      expect(await run(['import', '--help'], t.io)).to.equal(0);
      expect(t.out.join('')).to.include('import DIR IMAGE --token-file FILE [--rescue ID]');
    });

    it('exits 143 on SIGTERM, 130 on SIGINT, after writing the receipt', async () => {
      await writeAll();
      const controller = new AbortController();
      controller.abort('SIGTERM');
      const t = io();
      expect(await run(['import', stick, imagePath, '--token-file', token], t.io, controller.signal)).to.equal(143);
      expect(t.err.join('')).to.include('stopped:');
      const receipts = await readReceipts(folder);
      expect(receipts.map((r) => r.receipt.merged)).to.deep.equal([[]]);
      const c2 = new AbortController();
      c2.abort('SIGINT');
      expect(await run(['import', stick, imagePath, '--token-file', token], io().io, c2.signal)).to.equal(130);
    });
  });
});

describe('ReceiptWriter', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => cleanup());

  const refs = (last: number): Receipt['merged'] => Array.from({ length: last }, (_, i) => ({ seq: i + 1, headerHash: String(i).padStart(32, '0') }));
  const receipt = (last: number): Receipt => ({ rescueId: RESCUE_ID, merged: refs(last), rejected: [], writtenAt: new Date(0).toISOString(), writer: 'test' });

  it('joins writes asked for during a write into one, and the newest receipt wins', async () => {
    const writer = new ReceiptWriter(join(dir, 'ddferry', RESCUE_ID), KEYS, new Date(), () => undefined);
    await Promise.all(Array.from({ length: 20 }, (_, i) => writer.write(receipt(i + 1))));
    expect(writer.writes).to.be.within(1, 2);
    expect(parseReceipt(await readFile(writer.path, 'utf8'), KEYS).merged).to.deep.equal(refs(20));
    await writer.write(receipt(30));
    expect(parseReceipt(await readFile(writer.path, 'utf8'), KEYS).merged).to.deep.equal(refs(30));
    expect(await readdir(join(dir, 'ddferry', RESCUE_ID, 'receipts'))).to.have.length(1);
  });

  it('fails with ERR_IMPORT_RECEIPT_WRITE, naming the receipt, when the folder cannot be made', async () => {
    await writeFile(join(dir, 'ddferry'), 'a file where the folder should be');
    const writer = new ReceiptWriter(join(dir, 'ddferry', RESCUE_ID), KEYS, new Date(), () => undefined);
    const err = await expectCode(writer.write(receipt(1)), 'ERR_IMPORT_RECEIPT_WRITE');
    expect(err.message).to.include(writer.path);
  });
});

describe('importStick on a FAT32 stick (fusefat)', function () {
  this.timeout(60_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  let mnt: string;
  let mounted = false;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    const img = join(dir, 'stick.img');
    mnt = join(dir, 'mnt');
    await mkdir(mnt);
    await truncate(await writeFile(img, '').then(() => img), 64 << 20);
    const mkfs = spawnSync('mkfs.vfat', ['-F', '32', img], { encoding: 'utf8' });
    if (mkfs.error !== undefined || mkfs.status !== 0) throw new Error(`mkfs.vfat failed (install dosfstools): ${mkfs.error?.message ?? mkfs.stderr}`);
    const mount = spawnSync('fusefat', ['-o', 'rw+', img, mnt], { encoding: 'utf8' });
    if (mount.error !== undefined || mount.status !== 0) throw new Error(`fusefat cannot mount the test stick (install fusefat; /dev/fuse needed): ${mount.error?.message ?? mount.stderr}`);
    mounted = true;
  });
  after(async () => {
    if (mounted) execFileSync('fusermount', ['-u', mnt]);
    await cleanup();
  });

  it('merges the bundles, refuses a damaged one, and writes receipts there (rename over, folder fsync)', async () => {
    const mount = execFileSync('findmnt', ['-n', '-o', 'FSTYPE', mnt], { encoding: 'utf8' }).trim();
    expect(mount).to.equal('fuse.fusefat');
    const folder = await makeRescueFolder(mnt);
    const pieces = fourPieces();
    for (const p of pieces.slice(0, 3)) await writeBundleFile(folder, p);
    const bad = await bundleBytes(pieces[3]!);
    bad[pieceEntryOffsets(pieces[3]!).data + 10]! ^= 0xff;
    await writeFile(join(folder, 'piece-000004.tar'), bad);
    const imagePath = join(dir, 'disk.img');
    const warnings: string[] = [];
    const result = await importInto(imagePath, mnt, { warn: (m) => warnings.push(m) });
    expect(warnings).to.deep.equal([]);
    const receipt = await receiptOf(result);
    expect(receipt.merged).to.deep.equal(pieces.slice(0, 3).map(refOf));
    expect(receipt.rejected.map((r) => r.code)).to.deep.equal(['ERR_SEAL_FRAME_AUTH_FAILED']);
    expect(await readImage(imagePath)).to.deep.equal(expectedImage(pieces.slice(0, 3)));
    expect(result.receipt!.startsWith(join(folder, 'receipts'))).to.equal(true);
    // no temporary left beside the receipt
    expect(await readdir(join(folder, 'receipts'))).to.deep.equal([result.receipt!.split('/').pop()]);
  });
});
