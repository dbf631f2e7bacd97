import { stat, readFile, rm, writeFile } from 'node:fs/promises';

import { expect } from 'chai';

import { AssemblerError } from '../src/errors.js';
import { Image } from '../src/image.js';
import { mergePieces } from '../src/merge.js';

import { bindRequest, CHUNK_SIZE, FINGERPRINT, makePiece, OTHER_FINGERPRINT, OTHER_RESCUE_ID, RESCUE_ID, SOURCE_SIZE, useTempImage } from './helpers.js';

async function expectRefusal(p: Promise<unknown>, code: string): Promise<AssemblerError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(AssemblerError);
    expect((err as AssemblerError).code).to.equal(code);
    return err as AssemblerError;
  }
  throw new Error(`expected ${code}`);
}

describe('Image', () => {
  const t = useTempImage();

  describe('.open', () => {
    it('creates an empty unbound image when the file is missing', async () => {
      const image = await Image.open(t.path);
      try {
        expect(image.binding).to.equal(undefined);
        expect(image.finishedRanges()).to.deep.equal([]);
        expect(image.mergedPieces()).to.deep.equal([]);
        expect(image.maxMergedSeq).to.equal(0);
        expect((await stat(t.path)).size).to.equal(0);
      } finally {
        await image.close();
      }
    });

    it('never truncates an existing image', async () => {
      await writeFile(t.path, Buffer.alloc(100_000, 0xab));
      const image = await Image.open(t.path);
      await image.bind(bindRequest());
      await image.close();
      expect((await stat(t.path)).size).to.equal(100_000);
    });

    it('refuses a folder with ERR_IMAGE_NOT_REGULAR', async () => {
      const err = await expectRefusal(Image.open(t.dir), 'ERR_IMAGE_NOT_REGULAR');
      expect(err.subject).to.equal(t.dir);
    });

    it('refuses an image in a missing folder with ERR_IMAGE_OPEN', async () => {
      await expectRefusal(Image.open(`${t.dir}/nope/disk.img`), 'ERR_IMAGE_OPEN');
    });

    it('refuses a malformed binding with ERR_IMAGE_BINDING_BAD naming the file', async () => {
      await writeFile(`${t.path}.ddferry.json`, '{"format":"ddferry-image","version":1}');
      const err = await expectRefusal(Image.open(t.path), 'ERR_IMAGE_BINDING_BAD');
      expect(err.subject).to.equal(`${t.path}.ddferry.json`);
      expect(err.message).to.contain('rescueId');
    });

    it('refuses a bound image whose mapfile is gone with ERR_IMAGE_MAP_MISSING, pointing at the .bak', async () => {
      const image = await Image.open(t.path);
      await image.bind(bindRequest());
      await mergePieces(image, [makePiece(1, 0, [{ pos: 0, size: 512, status: '+' }])]);
      await image.close();
      await rm(`${t.path}.map`);
      const err = await expectRefusal(Image.open(t.path), 'ERR_IMAGE_MAP_MISSING');
      expect(err.message).to.contain(`${t.path}.map.bak`);
    });
  });

  describe('#bind', () => {
    it('writes a mapfile of one ? block of the source size and the binding', async () => {
      const image = await Image.open(t.path);
      await image.bind(bindRequest());
      await image.close();
      const map = await readFile(`${t.path}.map`, 'utf8');
      expect(map).to.match(/^# Mapfile\. Created by ddferry in the format of GNU ddrescue 1\.27\n/);
      expect(map).to.contain(`0x00000000  0x${SOURCE_SIZE.toString(16).toUpperCase().padStart(8, '0')}  ?\n`);
      const binding = JSON.parse(await readFile(`${t.path}.ddferry.json`, 'utf8'));
      expect(binding).to.deep.equal({ format: 'ddferry-image', version: 2, rescueId: RESCUE_ID, fingerprint: FINGERPRINT, chunkSize: CHUNK_SIZE, sectorSize: 512 });
    });

    it('keeps the binding and the merged pieces (seq and header hash) across a reopen', async () => {
      const image = await Image.open(t.path);
      await image.bind(bindRequest());
      const pieces = [5, 1, 3, 2].map((s) => makePiece(s, 0, [{ pos: s * 512, size: 512, status: '+' }]));
      await mergePieces(image, pieces);
      await image.close();
      const again = await Image.open(t.path);
      try {
        expect(again.binding?.rescueId).to.equal(RESCUE_ID);
        const refs = [...pieces].sort((a, b) => a.seq - b.seq).map((p) => ({ seq: p.seq, headerHash: p.headerHash }));
        expect(again.mergedPieces()).to.deep.equal(refs);
        expect(again.mergedPieces(2)).to.deep.equal(refs.slice(2));
        expect(again.maxMergedSeq).to.equal(5);
        expect(again.isMerged(3, pieces[2]!.headerHash)).to.equal(true);
        expect(again.isMerged(3, pieces[0]!.headerHash)).to.equal(false);
        expect(again.mergedHash(4)).to.equal(undefined);
        expect(again.finishedRanges()).to.deep.equal([{ pos: 512, size: 3 * 512 }, { pos: 5 * 512, size: 512 }]);
        expect((await stat(`${t.path}.ddferry.pieces`)).size).to.equal(32 + 4 * 32);
        await again.bind(bindRequest());
      } finally {
        await again.close();
      }
    });

    it('reads a version 1 binding, ignoring its merged seqs (they had no header hash)', async () => {
      const image = await Image.open(t.path);
      await image.bind(bindRequest());
      await image.close();
      const v2 = JSON.parse(await readFile(`${t.path}.ddferry.json`, 'utf8')) as Record<string, unknown>;
      await writeFile(`${t.path}.ddferry.json`, JSON.stringify({ ...v2, version: 1, mergedSeqs: [[1, 9]] }));
      const again = await Image.open(t.path);
      try {
        expect(again.binding?.rescueId).to.equal(RESCUE_ID);
        expect(again.mergedPieces()).to.deep.equal([]);
      } finally {
        await again.close();
      }
    });

    it('refuses another rescue id with ERR_IMAGE_WRONG_RESCUE, showing both identities', async () => {
      const image = await Image.open(t.path);
      try {
        await image.bind(bindRequest());
        const err = await expectRefusal(image.bind(bindRequest(OTHER_RESCUE_ID, OTHER_FINGERPRINT)), 'ERR_IMAGE_WRONG_RESCUE');
        expect(err.subject).to.equal(t.path);
        expect(err.message).to.contain(RESCUE_ID).and.contain(OTHER_RESCUE_ID);
        expect(err.message).to.contain('FAILING DISK 9000').and.contain('OTHER DISK');
        expect(image.binding?.rescueId).to.equal(RESCUE_ID);
      } finally {
        await image.close();
      }
    });

    it('refuses the same rescue id on another device with ERR_IMAGE_WRONG_DEVICE, showing both devices', async () => {
      const image = await Image.open(t.path);
      try {
        await image.bind(bindRequest());
        const err = await expectRefusal(image.bind(bindRequest(RESCUE_ID, OTHER_FINGERPRINT)), 'ERR_IMAGE_WRONG_DEVICE');
        expect(err.message).to.contain(RESCUE_ID).and.contain('SER-111').and.contain('SER-222');
      } finally {
        await image.close();
      }
    });

    it('accepts the same device described with a different model (serials decide)', async () => {
      const image = await Image.open(t.path);
      try {
        await image.bind(bindRequest());
        await image.bind(bindRequest(RESCUE_ID, { ...FINGERPRINT, model: 'renamed by the OS' }));
      } finally {
        await image.close();
      }
    });

    it('refuses another plan with ERR_IMAGE_WRONG_PLAN', async () => {
      const image = await Image.open(t.path);
      try {
        await image.bind(bindRequest());
        await expectRefusal(image.bind({ ...bindRequest(), chunkSize: 2 * CHUNK_SIZE }), 'ERR_IMAGE_WRONG_PLAN');
      } finally {
        await image.close();
      }
    });

    it('claims synchronously: a second rescue binding at the same time is refused', async () => {
      const image = await Image.open(t.path);
      try {
        const first = image.bind(bindRequest());
        const second = expectRefusal(image.bind(bindRequest(OTHER_RESCUE_ID, OTHER_FINGERPRINT)), 'ERR_IMAGE_WRONG_RESCUE');
        await first;
        await second;
      } finally {
        await image.close();
      }
    });

    it('binds an image started with GNU ddrescue when its mapfile has the source size, keeping its statuses', async () => {
      const hex = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(8, '0')}`;
      await writeFile(`${t.path}.map`, `# Mapfile. Created by GNU ddrescue version 1.27\n# current_pos  current_status  current_pass\n0x00000000     ?               1\n#      pos        size  status\n${hex(0)}  ${hex(4096)}  +\n${hex(4096)}  ${hex(SOURCE_SIZE - 4096)}  -\n`);
      const image = await Image.open(t.path);
      try {
        await image.bind(bindRequest());
        expect(image.finishedRanges()).to.deep.equal([{ pos: 0, size: 4096 }]);
      } finally {
        await image.close();
      }
    });

    it('refuses a mapfile of another size with ERR_IMAGE_MAP_SIZE', async () => {
      await writeFile(`${t.path}.map`, '# current_pos  current_status  current_pass\n0x00000000     ?               1\n0x00000000  0x00001000  ?\n');
      const image = await Image.open(t.path);
      try {
        const err = await expectRefusal(image.bind(bindRequest()), 'ERR_IMAGE_MAP_SIZE');
        expect(err.subject).to.equal(`${t.path}.map`);
        expect(image.binding).to.equal(undefined);
      } finally {
        await image.close();
      }
    });
  });
});
