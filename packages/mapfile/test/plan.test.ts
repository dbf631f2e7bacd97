import { expect } from 'chai';
import fc from 'fast-check';

import { MapfileError } from '../src/errors.js';
import { parseMapfile } from '../src/parse.js';
import { FILE_SIZE_LIMITS, chunkMapName, chunkSizeForMedium, fileSystemOverhead, formatChunkMap, planChunks } from '../src/plan.js';

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
    const small = chunkSizeForMedium({ capacity: 64 * 1024 * 1024, maxFileSize: FILE_SIZE_LIMITS.exfat, fileSystem: 'exfat' }, 4096);
    expect(small).to.equal(57 * 1024 * 1024);
  });

  it('makes a chunk that fits what a stick of that size holds once formatted (measured with mkfs.vfat and mkfs.exfat)', () => {
    const MIB = 1024 * 1024;
    // free bytes of a fresh file system made by mkfs.vfat -F 32 / mkfs.exfat (defaults) on a device of the size
    const measured: ReadonlyArray<readonly ['fat32' | 'exfat', number, number]> = [
      ['fat32', 64 * MIB, 129021 * 512], ['fat32', 160 * MIB, 322605 * 512], ['fat32', 1024 * MIB, 261626 * 4096], ['fat32', 8192 * MIB, 2093056 * 4096],
      ['exfat', 64 * MIB, 15868 * 4096], ['exfat', 160 * MIB, 40443 * 4096], ['exfat', 1024 * MIB, 32701 * 32768], ['exfat', 64 * 1024 * MIB, 524261 * 131072],
    ];
    for (const [fs, capacity, free] of measured) {
      const chunk = chunkSizeForMedium({ capacity, maxFileSize: FILE_SIZE_LIMITS[fs], fileSystem: fs }, 512);
      expect(chunk, `${fs} ${capacity}`).to.be.at.most(free - MIB).and.at.least(Math.min(free * 0.9, FILE_SIZE_LIMITS[fs] - 64 * MIB));
      expect(fileSystemOverhead(capacity, fs), `${fs} ${capacity}: what formatting takes, at most`).to.be.at.least(capacity - free);
    }
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
