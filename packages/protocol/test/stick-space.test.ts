import { expect } from 'chai';

import { spaceFromStatfs } from '../src/stick-space.js';

describe('spaceFromStatfs', () => {
  it('reads fusefat\'s cluster counts where its statfs says 0 blocks (512-byte clusters), and its cluster otherwise', () => {
    // measured on fusefat: a 160 MiB FAT32 of 512-byte clusters, after 3 MiB + 100 bytes written
    const small = { bsize: 1024, blocks: 0, bavail: 0, files: 322606, ffree: 316460 };
    expect(spaceFromStatfs(small, 'fuse.fusefat')).to.deep.equal({ free: 316460 * 512, blockSize: 512, total: 322606 * 512 });
    // elsewhere 0 blocks tells nothing: unknown, never "full"
    expect(spaceFromStatfs(small, 'fuseblk')).to.deep.equal({ free: Number.MAX_SAFE_INTEGER, blockSize: 1024, total: 0 });
    expect(spaceFromStatfs({ ...small, files: 0, ffree: 0 }, 'fuse.fusefat').total).to.equal(0);
    // 4 KiB clusters: blocks in 1 KiB units, files = clusters; files round up to the cluster
    expect(spaceFromStatfs({ bsize: 1024, blocks: 163504, bavail: 160424, files: 40876, ffree: 40106 }, 'fuse.fusefat')).to.deep.equal({ free: 160424 * 1024, blockSize: 4096, total: 163504 * 1024 });
    expect(spaceFromStatfs({ bsize: 4096, blocks: 16384, bavail: 15099, files: 15872, ffree: 15099 }, 'fuseblk')).to.deep.equal({ free: 15099 * 4096, blockSize: 4096, total: 16384 * 4096 });
  });
});
