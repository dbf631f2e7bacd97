/**
 * The used-space scan on real disks: GPT and MBR (with an extended partition) images
 * holding ext4, ext3, ext2, NTFS, exFAT, FAT12, FAT16 and FAT32 made by the Debian tools
 * and filled through the real drivers (kernel ext4; ntfs-3g; kernel exfat/vfat, else
 * exfat-fuse/fusefat). The scan must keep every block partclone (`-D`) calls used; what
 * it adds must be metadata or table space the tools name, at most 2 % of the disk; the
 * metadata the tools locate must be in its metadata; GNU ddrescue must take its mapfile
 * and copy exactly that domain. Then damaged copies: the warnings, and never a smaller
 * domain.
 */
import { expect } from 'chai';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type Block, parseMapfile } from '@ddferry/mapfile';

import { alignBlocks, mergeBlocks } from '../../src/used/ranges.js';
import { formatUsedMapfile } from '../../src/used/used-mapfile.js';
import { type UsedSpace, findUsedSpace } from '../../src/used/used-space.js';
import {
  type DiskPartition, type PartSpec, fill, makeDisk, markFatClean, mkfs, mountedBy, mtoolsDomain, partcloneDomain, readAt, requireUsedMapTools, sh, withLoop,
} from '../helpers/used-disks.js';
import { type FsFacts, dumpe2fsDomain, fsFacts } from '../helpers/used-facts.js';
import { fileReader, total, uncovered } from '../helpers/used-readers.js';

const MIB = 1 << 20;

interface Built {
  readonly img: string;
  readonly size: number;
  readonly label: 'gpt' | 'dos';
  readonly parts: ReadonlyArray<DiskPartition & { readonly facts: FsFacts; readonly partclone: Block[]; readonly libext2fs: Block[] }>;
  readonly scan: UsedSpace;
}

const DISKS: ReadonlyArray<{ name: string; label: 'gpt' | 'dos'; mib: number; parts: PartSpec[] }> = [
  {
    name: 'a GPT disk: ext4 (4 KiB blocks; 1 KiB blocks with flex_bg; meta_bg; bigalloc), NTFS, exFAT, FAT32, with gaps',
    label: 'gpt', mib: 500,
    parts: [
      { fs: 'ext4', mib: 96 }, { fs: 'ntfs', mib: 48, gapMib: 4 }, { fs: 'exfat', mib: 40 }, { fs: 'fat32', mib: 40, gapMib: 2 },
      { fs: 'ext4-1k', mib: 64 }, { fs: 'ext4-meta_bg', mib: 64 }, { fs: 'ext4-bigalloc', mib: 64, gapMib: 1 },
    ],
  },
  {
    name: 'an MBR disk: FAT16, and in an extended partition FAT12, ext3 (1 KiB blocks), ext2, exFAT',
    label: 'dos', mib: 200,
    parts: [{ fs: 'fat16', mib: 24 }, { fs: 'fat12', mib: 4, logical: true }, { fs: 'ext3', mib: 48, logical: true }, { fs: 'ext2', mib: 24, logical: true, gapMib: 3 }, { fs: 'exfat', mib: 24, logical: true }],
  },
];

function shift(blocks: readonly Block[], by: number): Block[] {
  return blocks.map((b) => ({ pos: b.pos + by, size: b.size }));
}

async function build(work: string, spec: (typeof DISKS)[number]): Promise<Built> {
  const img = join(work, `${spec.label}.img`);
  const layout = makeDisk(img, spec.label, spec.mib, spec.parts);
  const parts = [];
  for (const [i, p] of layout.entries()) {
    parts.push(await withLoop(img, p, async (dev) => {
      mkfs(dev, p.fs);
      await fill(dev, p.fs, p.size, join(work, `mnt-${spec.label}-${i}`));
      if (mountedBy.get(p.fs) === 'fusefat') markFatClean(dev, p.fs);
      sh('blockdev', ['--flushbufs', dev]);
      // partclone 0.3.23 misreads FAT12 (it maps clusters no file uses and misses used ones) and refuses bigalloc
      // ("bitmap error at 0 group"): mtools and libext2fs (dumpe2fs) are the references there
      const reference = p.fs === 'fat12' ? mtoolsDomain(dev, p.pos)
        : p.fs === 'ext4-bigalloc' ? dumpe2fsDomain(dev, p.pos)
          : partcloneDomain(dev, p.fs, p.pos, join(work, `partclone-${spec.label}-${i}.map`));
      return { ...p, facts: fsFacts(dev, p.fs), partclone: reference, libext2fs: p.fs.startsWith('ext') ? dumpe2fsDomain(dev, p.pos) : [] };
    }));
  }
  const size = spec.mib * MIB;
  return { img, size, label: spec.label, parts, scan: await findUsedSpace(fileReader(img)) };
}

/** Extra space that may be ours and not partclone's, by name: the tables, and each partition's space past its file system. */
function namedExtras(d: Built): Array<{ name: string; blocks: Block[] }> {
  const out: Array<{ name: string; blocks: Block[] }> = [];
  if (d.label === 'gpt') {
    out.push({ name: 'GPT: protective MBR, primary header and entries', blocks: [{ pos: 0, size: 34 * 512 }] });
    out.push({ name: 'GPT: backup entries and header', blocks: [{ pos: d.size - 33 * 512, size: 33 * 512 }] });
  } else {
    out.push({ name: 'MBR', blocks: [{ pos: 0, size: 512 }] });
    const ebrs: Block[] = [];
    const fd = openSync(d.img, 'r');
    const sector = Buffer.alloc(512);
    for (const p of d.parts) {
      for (let at = p.pos - MIB; at < p.pos; at += 512) {
        readSync(fd, sector, 0, 512, at);
        if (sector.readUInt16LE(510) === 0xaa55 && at > 0) ebrs.push({ pos: at, size: 512 });
      }
    }
    closeSync(fd);
    out.push({ name: 'EBRs', blocks: ebrs });
  }
  for (const p of d.parts) {
    const name = p.fs === 'ntfs' ? 'NTFS backup boot sector, past the volume' : `${p.fs}: partition space past the file system`;
    out.push({ name, blocks: [{ pos: p.pos + p.facts.fsEnd, size: p.size - p.facts.fsEnd }] });
    if (p.facts.unmapped) out.push({ name: p.facts.unmapped.name, blocks: shift(p.facts.unmapped.blocks, p.pos) });
  }
  return out;
}

const builds = new Map<string, Promise<Built>>();
let workDir: string | undefined;

/** The folder holding the images, made once and removed after the last test. */
function work(): string {
  workDir ??= mkdtempSync(join(tmpdir(), 'ddferry-used-'));
  return workDir;
}

after(() => {
  if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
});

/** The disk of `spec`, built once for every test that needs it. */
function disk(spec: (typeof DISKS)[number]): Promise<Built> {
  let b = builds.get(spec.label);
  if (b === undefined) {
    b = build(work(), spec);
    builds.set(spec.label, b);
  }
  return b;
}

describe('findUsedSpace on real disks (root: loop devices, mkfs, mount, FUSE, partclone, GNU ddrescue)', function () {
  before(() => requireUsedMapTools());

  for (const spec of DISKS) {
    describe(spec.name, () => {
      let d: Built;
      before(async () => {
        d = await disk(spec);
      });

      it('finds each partition at the place sfdisk put it, with its file system', () => {
        const want = d.parts.map((p) => ({ pos: p.pos, size: p.size, fs: p.fs.startsWith('ext') ? 'ext4' : p.fs }));
        expect(d.scan.partitions.map((p) => ({ pos: p.pos, size: p.size, fs: p.fs }))).to.deep.equal(want);
        expect(d.scan.warnings).to.deep.equal([]);
      });

      it('keeps every block partclone calls used', () => {
        for (const p of d.parts) {
          const missing = uncovered(mergeBlocks(p.partclone), d.scan.used);
          expect(missing, `${p.fs} (mounted by ${mountedBy.get(p.fs)}): partclone's used blocks missing from ours`).to.deep.equal([]);
          expect(total(p.partclone), `${p.fs}: partclone maps used blocks`).to.be.greaterThan(0);
          expect(uncovered(mergeBlocks(p.libext2fs), d.scan.used), `${p.fs}: used blocks by dumpe2fs missing from ours`).to.deep.equal([]);
        }
      });

      it('adds to partclone only named metadata and table space, at most 2 % of the disk', () => {
        const named = namedExtras(d);
        const theirs = mergeBlocks(d.parts.flatMap((p) => p.partclone));
        const extra = uncovered(d.scan.used, theirs);
        const unexplained = uncovered(extra, mergeBlocks(named.flatMap((n) => n.blocks)));
        expect(unexplained, 'extra ranges no table or file system tool names').to.deep.equal([]);
        const inside = (p: Block): number => total(extra) - total(uncovered(extra, [p]));
        const perPart = d.parts.map((p) => `${p.fs} ${((inside(p) / d.size) * 100).toFixed(3)} %`);
        console.log(`      extra over partclone (${spec.label}): ${perPart.join(', ')}; total ${((total(extra) / d.size) * 100).toFixed(3)} % of ${d.size} bytes`);
        expect(total(extra)).to.be.at.most(0.02 * d.size);
      });

      it('counts as metadata what the file systems\' tools locate: superblocks, descriptors, bitmaps, journals, MFT, FATs', () => {
        for (const p of d.parts) {
          for (const m of p.facts.metadata) {
            const want = alignBlocks(shift(m.blocks, p.pos), 512, d.size);
            expect(uncovered(want, d.scan.metadata), `${p.fs}: ${m.name}`).to.deep.equal([]);
          }
        }
        expect(uncovered(d.scan.metadata, d.scan.used)).to.deep.equal([]);
      });

      it('writes a mapfile GNU ddrescue -m takes, and ddrescue copies exactly that domain', () => {
        const dom = join(work(), `${spec.label}-used.map`);
        writeFileSync(dom, formatUsedMapfile(d.scan, d.size, 'ddferry-reader used-map test'));
        const copy = join(work(), `${spec.label}-copy.img`);
        const log = join(work(), `${spec.label}-copy.map`);
        sh('ddrescue', ['-q', '-m', dom, d.img, copy, log]);
        const blocks = parseMapfile(readFileSync(log), { file: log }).blocks;
        const finished: Block[] = [];
        for (let i = 0; i < blocks.length; ++i) if (blocks.code(i) === 4) finished.push({ pos: blocks.pos(i), size: blocks.size(i) });
        expect(mergeBlocks(finished)).to.deep.equal(d.scan.used);
        const a = openSync(d.img, 'r');
        const b = openSync(copy, 'r');
        try {
          for (const r of d.scan.used) {
            for (let at = r.pos; at < r.pos + r.size; at += 4 * MIB) {
              const n = Math.min(4 * MIB, r.pos + r.size - at);
              const x = Buffer.alloc(n);
              const y = Buffer.alloc(n);
              readSync(a, x, 0, n, at);
              readSync(b, y, 0, n, at);
              expect(x.equals(y), `bytes at ${at}`).to.equal(true);
            }
          }
        } finally {
          closeSync(a);
          closeSync(b);
        }
      });
    });
  }
});

/** A copy of the image with `edits` (position, bytes) written into it. */
function damaged(d: Built, name: string, edits: ReadonlyArray<readonly [number, Uint8Array]>): string {
  const img = join(work(), `${name}.img`);
  sh('cp', ['--sparse=always', d.img, img]);
  const fd = openSync(img, 'r+');
  try {
    for (const [pos, bytes] of edits) writeSync(fd, bytes, 0, bytes.length, pos);
  } finally {
    closeSync(fd);
  }
  return img;
}

/** The EBR describing logical partition `p`: the sector before it whose first entry points at it. */
function findEbr(img: string, p: Block): number {
  for (let at = p.pos - 512; at >= Math.max(0, p.pos - 8 * MIB); at -= 512) {
    const s = readAt(img, at, 512);
    if (s.readUInt16LE(510) === 0xaa55 && s[446 + 4] !== 0 && at + s.readUInt32LE(446 + 8) * 512 === p.pos) return at;
  }
  throw new Error(`no EBR found for the partition at ${p.pos}`);
}

function metadataOf(p: Built['parts'][number], name: string): Block {
  const m = p.facts.metadata.find((x) => x.name === name);
  if (m === undefined || m.blocks.length === 0) throw new Error(`no ${name} in the facts of ${p.fs}`);
  return { pos: p.pos + m.blocks[0]!.pos, size: m.blocks[0]!.size };
}

describe('findUsedSpace on damaged copies of real disks (root)', function () {
  let gpt: Built;
  let mbr: Built;
  before(async () => {
    requireUsedMapTools();
    gpt = await disk(DISKS[0]!);
    mbr = await disk(DISKS[1]!);
  });

  const part = (d: Built, fs: string): Built['parts'][number] => d.parts.find((p) => p.fs === fs)!;
  const codes = (u: UsedSpace): string[] => u.warnings.map((w) => w.code);
  const keepsAll = (d: Built, u: UsedSpace): void => {
    expect(uncovered(d.scan.used, u.used), 'used ranges of the sound disk lost').to.deep.equal([]);
    expect(uncovered(d.scan.metadata.filter((m) => m.pos < 34 * 512 || m.pos >= d.size - 33 * 512), u.used)).to.deep.equal([]);
  };

  it('uses the backup GPT when the primary header is damaged', async () => {
    const header = readAt(gpt.img, 512, 512);
    header[40] = header[40]! ^ 0xff; // first usable LBA: the header's CRC-32 no longer matches
    const u = await findUsedSpace(fileReader(damaged(gpt, 'gpt-primary', [[512, header]])));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_GPT_PRIMARY_BAD']);
    expect(u.partitions).to.deep.equal(gpt.scan.partitions);
    expect(u.used).to.deep.equal(gpt.scan.used);
  });

  it('counts the whole disk as used when both GPT headers are damaged', async () => {
    const img = damaged(gpt, 'gpt-both', [[512 + 8, Uint8Array.of(0x55)], [gpt.size - 512 + 8, Uint8Array.of(0x55)]]);
    const u = await findUsedSpace(fileReader(img));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_GPT']);
    expect(u.used).to.deep.equal([{ pos: 0, size: gpt.size }]);
  });

  it('counts an ext4 group as used when its block bitmap was zeroed in part (checksum and free count)', async () => {
    const bitmap = metadataOf(part(gpt, 'ext4'), 'ext block bitmaps');
    const u = await findUsedSpace(fileReader(damaged(gpt, 'ext4-bitmap', [[bitmap.pos + 64, new Uint8Array(32)]])));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_BITMAP']);
    keepsAll(gpt, u);
    expect(total(u.used)).to.be.greaterThan(total(gpt.scan.used));
  });

  it('counts an ext4 partition as used when its superblock fails its checksum', async () => {
    const p = part(gpt, 'ext4');
    const u = await findUsedSpace(fileReader(damaged(gpt, 'ext4-super', [[p.pos + 1024 + 8, Uint8Array.of(0x12, 0x34)]])));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_SUPERBLOCK']);
    expect(uncovered([{ pos: p.pos, size: p.size }], u.used)).to.deep.equal([]);
    keepsAll(gpt, u);
  });

  it('counts the groups of an unreadable ext4 bitmap block as used', async () => {
    const bitmap = metadataOf(part(gpt, 'ext4'), 'ext block bitmaps');
    const u = await findUsedSpace(fileReader(gpt.img, 512, [{ pos: bitmap.pos, size: 512 }]));
    expect(codes(u)).to.include('ERR_USED_MAP_UNREADABLE');
    keepsAll(gpt, u);
    expect(total(u.used)).to.be.greaterThan(total(gpt.scan.used));
  });

  it('reads the MFT from $MFTMirr when MFT record 0 is torn (update sequence mismatch)', async () => {
    const mft = metadataOf(part(gpt, 'ntfs'), 'NTFS $MFT (system records)');
    const u = await findUsedSpace(fileReader(damaged(gpt, 'ntfs-mft', [[mft.pos + 510, Uint8Array.of(0xde, 0xad)]])));
    expect(codes(u)).to.include('ERR_USED_MAP_BAD_METADATA');
    expect(u.warnings.find((w) => w.code === 'ERR_USED_MAP_BAD_METADATA')!.message).to.include('$MFTMirr');
    keepsAll(gpt, u);
  });

  it('counts clusters used in either FAT copy when the first FAT32 copy was zeroed in part', async () => {
    const fats = metadataOf(part(gpt, 'fat32'), 'FAT tables');
    const u = await findUsedSpace(fileReader(damaged(gpt, 'fat32-fat', [[fats.pos + 4096, new Uint8Array(8192)]])));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_FAT_COPIES_DIFFER']);
    expect(u.used).to.deep.equal(gpt.scan.used);
  });

  it('uses the backup exFAT boot region when the main one fails its checksum', async () => {
    const p = part(gpt, 'exfat');
    const u = await findUsedSpace(fileReader(damaged(gpt, 'exfat-boot', [[p.pos + 100, Uint8Array.of(0x99)]])));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_SUPERBLOCK']);
    expect(u.used).to.deep.equal(gpt.scan.used);
  });

  it('counts as used a group whose block bitmap waits in an ext3 journal that needs recovery (debugfs jo/jw/jc)', async () => {
    const p = part(mbr, 'ext3');
    const img = damaged(mbr, 'ext3-journal', []);
    const zeros = join(work(), 'zero-block');
    writeFileSync(zeros, Buffer.alloc(1024));
    const group = await withLoop(img, p, (dev) => {
      const g = /^Group 2: \(Blocks (\d+)-(\d+)\)[^]*?Block bitmap at (\d+)/m.exec(sh('dumpe2fs', [dev]));
      if (g === null) throw new Error('dumpe2fs shows no group 2');
      sh('debugfs', ['-w', '-f', '-', dev], `jo\njw -b ${g[3]} ${zeros}\njc\n`);
      expect(sh('dumpe2fs', ['-h', dev])).to.match(/needs_recovery/);
      return { pos: p.pos + Number(g[1]) * 1024, size: (Number(g[2]) - Number(g[1]) + 1) * 1024 };
    });
    const u = await findUsedSpace(fileReader(img));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_JOURNAL_DIRTY']);
    expect(uncovered([group], u.used)).to.deep.equal([]);
    expect(uncovered([group], mbr.scan.used)).to.not.deep.equal([]);
    keepsAll(mbr, u);
  });

  it('stops an extended partition chain that loops, counting the rest of the extended partition as used', async () => {
    // the EBR of the third logical partition links back to the first EBR
    const ebr = findEbr(mbr.img, mbr.parts[3]!);
    const sector = readAt(mbr.img, ebr, 512);
    sector.writeUInt32LE(0, 446 + 16 + 8);
    const u = await findUsedSpace(fileReader(damaged(mbr, 'ebr-loop', [[ebr, sector]])));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_EBR_LOOP']);
    keepsAll(mbr, u);
    expect(u.partitions.length).to.equal(mbr.scan.partitions.length - 1);
  });
});
