import { expect } from 'chai';
import fc from 'fast-check';

import { MapfileError } from '../src/errors.js';
import { parseMapfile } from '../src/parse.js';
import { FILE_SIZE_LIMITS, chunkMapName, chunkSizeForMedium, formatChunkMap, planChunks } from '../src/plan.js';

describe('planChunks', () => {
  it('makes sector-aligned chunks that never overlap and cover the source exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 44 }), fc.constantFrom(512, 4096), fc.integer({ min: 1, max: 2000 }), (sourceSize, sectorSize, parts) => {
        const chunkSize = Math.max(sectorSize, Math.ceil(sourceSize / parts / sectorSize) * sectorSize);
        const chunks = planChunks({ sourceSize, sectorSize, chunkSize });
        let pos = 0;
        chunks.forEach((c, i) => {
          expect(c.index).to.equal(i);
          expect(c.pos).to.equal(pos);
          expect(c.pos % sectorSize).to.equal(0);
          expect(c.size).to.be.greaterThan(0);
          pos += c.size;
        });
        expect(pos).to.equal(sourceSize);
      }),
      { numRuns: 500, seed: 3 },
    );
  });

  it('fits chunks on a FAT32 stick under 4 GiB and leaves a margin', () => {
    const size = chunkSizeForMedium({ capacity: 64e9, maxFileSize: FILE_SIZE_LIMITS.fat32 }, 512);
    expect(size).to.be.below(4 * 1024 ** 3);
    expect(size % (1024 * 1024)).to.equal(0);
    const small = chunkSizeForMedium({ capacity: 64 * 1024 * 1024, maxFileSize: FILE_SIZE_LIMITS.exfat }, 4096);
    expect(small).to.equal(63 * 1024 * 1024);
  });

  it('refuses a chunk size that is not a multiple of the sector size, suggesting one', () => {
    expect(() => planChunks({ sourceSize: 1e6, sectorSize: 512, chunkSize: 1000 })).to.throw(MapfileError, /try 512/).with.property('code', 'ERR_PLAN_BAD_SIZE');
    expect(() => chunkSizeForMedium({ capacity: 1024 * 1024, maxFileSize: FILE_SIZE_LIMITS.fat32 }, 512)).to.throw(MapfileError).with.property('code', 'ERR_PLAN_MEDIUM_TOO_SMALL');
  });

  it('writes chunk maps whose finished blocks are exactly the chunk', () => {
    const text = formatChunkMap({ index: 1, pos: 4096, size: 8192 }, 20000);
    const m = parseMapfile(text);
    expect([...m.blocks]).to.deep.equal([
      { pos: 0, size: 4096, status: '?' },
      { pos: 4096, size: 8192, status: '+' },
      { pos: 12288, size: 7712, status: '?' },
    ]);
    expect(chunkMapName(7, 12)).to.equal('chunk0007.map');
    expect(chunkMapName(7, 12345)).to.equal('chunk00007.map');
  });
});
