/**
 * `--format ddrescue-chunks` against GNU ddrescue 1.27 for real: a rescue of a
 * test-mode source (bad areas with scattered good sectors, so trimming and scraping make
 * pieces of several spans) goes through the engine and the piece sink into the chunk
 * writer; then DDRESCUE-COMMANDS.txt's commands and ddrescue-commands.sh, run with GNU
 * ddrescue and ddrescuelog only, build an image that equals the source on every `+` byte,
 * with a GNU image mapfile whose `+` blocks are the pieces' `+` ranges. Sparse files
 * (ext4 or tmpfs), packed files, and packed files on a real FAT32 file system (fusefat).
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Domain, SblockVector, StatusMap, formatMapfile, normalizeForRescue, parseMapfile, planChunks } from '@ddferry/mapfile';
import { type Piece, fileSystemTypeOf } from '@ddferry/protocol';

import { doRescue } from '../../src/engine/do-rescue.js';
import { DEFAULT_RESCUE_OPTIONS } from '../../src/engine/options.js';
import { SILENT_REPORTER } from '../../src/engine/reporter.js';
import { Rescuebook } from '../../src/engine/rescuebook.js';
import { ChunkFileWriter, readChunkFileReceipts } from '../../src/stick/chunk-files.js';
import type { RescueSink } from '../../src/engine/sink.js';
import { PieceBuilder } from '../../src/run/piece-builder.js';
import { allocAligned } from '../../src/source/aligned-buffer.js';
import { FileSource } from '../../src/source/file-source.js';
import { TestModeSource } from '../../src/source/test-mode-source.js';
import { TOOL_ENV, assertDdrescueVersion } from '../helpers/ddrescue-compare.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const RESCUE = '5e1d2c3b-4a59-4876-9a5b-0c1d2e3f4a5b';
/** Not a whole number of chunks or clusters: the last chunk is 1000 bytes. */
const SOURCE_SIZE = 12 * MIB + 1000;
const CHUNK_SIZE = 4 * MIB;

type Run = { status: number | null; out: string };

function run(command: string, args: readonly string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: TOOL_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, out: out.slice(-262144) }));
  });
}

/** The test map: all good but bad zones in which every fourth sector is good (sectors of 512). */
function testMap(): string {
  const bad: Array<[number, number]> = [[1 * MIB + 4 * KIB, 96 * KIB], [3 * MIB + 100 * KIB, 64 * KIB], [9 * MIB, 200 * KIB], [12 * MIB, 512]];
  const blocks = new SblockVector();
  let at = 0;
  for (const [pos, size] of bad) {
    blocks.push(at, pos, 4);
    for (let s = pos; s < pos + size; s += 512) blocks.push(s, s + 512, ((s - pos) / 512) % 4 === 3 ? 4 : 3);
    at = pos + size;
  }
  blocks.push(at, SOURCE_SIZE, 4);
  return formatMapfile({ currentPos: 0, currentStatus: '+', currentPass: 1, blocks: blocks.compact() }, { program: 'ddferry', commandLine: 'export-gnu test map', startTime: '' }).toString('latin1');
}

/** `[pos, end)` runs of sorted ranges, touching ones joined. */
function joined(ranges: ReadonlyArray<{ pos: number; size: number }>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const r of [...ranges].sort((a, b) => a.pos - b.pos)) {
    const last = out[out.length - 1];
    if (last && last[1] === r.pos) last[1] = r.pos + r.size;
    else out.push([r.pos, r.pos + r.size]);
  }
  return out;
}

function finishedOf(text: Buffer): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const m = parseMapfile(text);
  m.blocks.forEachBlock((pos, end, code) => {
    if (code !== 4) return;
    const last = out[out.length - 1];
    if (last && last[1] === pos) last[1] = end;
    else out.push([pos, end]);
  });
  return out;
}

/** The image equals the source on every rescued byte. */
function expectImage(image: string, source: Buffer, rescued: ReadonlyArray<[number, number]>): void {
  const img = readFileSync(image);
  for (const [pos, end] of rescued) {
    expect(img.length, `image shorter than ${end}`).to.be.at.least(end);
    expect(img.subarray(pos, end).equals(source.subarray(pos, end)), `image bytes ${pos} to ${end}`).to.equal(true);
  }
}

describe('chunk files merged by GNU ddrescue 1.27 (--format ddrescue-chunks)', function () {
  this.timeout(300_000);
  let work: string;
  let source: Buffer;
  let pieces: Piece[];
  let rescued: Array<[number, number]>;

  before(async () => {
    await assertDdrescueVersion();
    work = mkdtempSync(join(tmpdir(), 'export-gnu-'));
    source = randomBytes(SOURCE_SIZE);
    writeFileSync(join(work, 'source.bin'), source);
    writeFileSync(join(work, 'test.map'), testMap());
    const chunks = planChunks({ sourceSize: SOURCE_SIZE, sectorSize: 512, chunkSize: CHUNK_SIZE });
    const good = Domain.fromOptions(0, -1, parseMapfile(readFileSync(join(work, 'test.map'))).blocks);
    const raw = new FileSource(join(work, 'source.bin'));
    const testSource = new TestModeSource(raw, good);
    pieces = [];
    let seq = 0;
    // the main process's piece builder, fed as the reading process feeds it (sealing only between reads)
    const b = new PieceBuilder({ rescueId: RESCUE, chunks, nextSeq: () => ++seq, sealBytes: MIB, sealMillis: 1e9 });
    const sink: RescueSink = {
      write(pos, data) {
        if (b.isDue()) pieces.push(...b.seal());
        b.write(pos, data);
      },
      statusChanged: (pos, size, st) => b.statusChanged(pos, size, st),
      sync: () => {
        pieces.push(...b.seal());
      },
      finish: () => {
        pieces.push(...b.seal());
        return null;
      },
      close: () => null,
    };
    const blank = new SblockVector(1);
    blank.push(0, SOURCE_SIZE, 0);
    const domain = Domain.fromOptions(0, SOURCE_SIZE);
    const norm = normalizeForRescue(blank, { insize: SOURCE_SIZE, hardbs: 512, domain, file: 'common.map' });
    const o = DEFAULT_RESCUE_OPTIONS;
    const rb = new Rescuebook({
      source: testSource, testSource, sink, reporter: SILENT_REPORTER, map: new StatusMap(norm.blocks), domain: norm.domain, insize: SOURCE_SIZE, offset: 0,
      currentPos: 0, currentStatus: '?', currentPass: 1, options: o, iobuf: allocAligned(o.cluster * o.hardbs + o.hardbs, 4096),
      clock: () => 0, startTime: 0, interrupted: () => false, sleep: async () => undefined,
    });
    const outcome = await doRescue(rb);
    testSource.close();
    expect(outcome.status).to.equal(0);
    rescued = joined(pieces.flatMap((p) => p.extents));
    const fromMap: Array<[number, number]> = [];
    rb.map.toVector().forEachBlock((pos, end, code) => {
      if (code === 4) fromMap.push([pos, end]);
    });
    expect(joined(fromMap.map(([pos, end]) => ({ pos, size: end - pos }))), 'the pieces carry every + of the rescue').to.deep.equal(rescued);
    expect(pieces.length).to.be.at.least(10);
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  /** Write every piece into `folder`, check the files, then merge with the script and with the text's commands. */
  async function exportAndMerge(folder: string, w: ChunkFileWriter): Promise<void> {
    const files: string[] = [];
    let spans2 = 0;
    let bytes = 0;
    for (const p of pieces) {
      const r = await w.write(p, folder);
      files.push(...r.files);
      bytes += r.bytes;
      if (r.files.filter((f) => f.endsWith('.raw')).length >= 2) ++spans2;
    }
    const data = pieces.reduce((n, p) => n + p.data.length, 0);
    console.log(`      ${w.layout} on ${String(await fileSystemTypeOf(folder))}: ${pieces.length} pieces, ${files.filter((f) => f.endsWith('.raw')).length} span files (${spans2} pieces of 2+ spans), ${bytes} bytes written for ${data} bytes of data`);
    expect(spans2, 'some pieces (trimming, scraping) have extents over 1 MiB apart').to.be.at.least(1);
    for (const f of readdirSync(folder).filter((n) => n.endsWith('.raw'))) expect(statSync(join(folder, f)).size).to.be.below(4 * 1024 * MIB - 1);

    // the script, run from elsewhere, twice (the second run changes nothing)
    const image = join(work, `${w.layout}-${Math.random().toString(16).slice(2)}.img`);
    const first = await run('sh', [join(folder, 'ddrescue-commands.sh'), image], work);
    expect(first.status, first.out).to.equal(0);
    expectImage(image, source, rescued);
    const map1 = readFileSync(`${image}.map`);
    expect(finishedOf(map1), 'the GNU image mapfile').to.deep.equal(rescued);
    expect(parseMapfile(map1).blocks.extent()).to.deep.equal({ pos: 0, size: SOURCE_SIZE });
    const again = await run('sh', [join(folder, 'ddrescue-commands.sh'), image], work);
    expect(again.status, again.out).to.equal(0);
    expect(finishedOf(readFileSync(`${image}.map`))).to.deep.equal(rescued);
    expectImage(image, source, rescued);

    // the text's commands, as a person pastes them (IMAGE set), into another image
    const image2 = `${image}.2`;
    const text = readFileSync(join(folder, 'DDRESCUE-COMMANDS.txt'), 'utf8');
    const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(lines[0]).to.equal('IMAGE=/path/to/disk.img');
    lines[0] = `IMAGE='${image2}'`;
    const pasted = await run('sh', ['-c', lines.join('\n')], folder); // no -e: as pasted into a shell
    expect(pasted.status, pasted.out).to.equal(0);
    expectImage(image2, source, rescued);
    expect(finishedOf(readFileSync(`${image2}.map`))).to.deep.equal(rescued);

    // receipts: every file of every piece is acknowledged
    const done = await readChunkFileReceipts(folder);
    for (const f of files) expect(done.has(f), f).to.equal(true);
  }

  it('merges sparse files (on this machine\'s temporary folder)', async function () {
    const folder = mkdtempSync(join(tmpdir(), 'export-gnu-sparse-'));
    try {
      const type = await fileSystemTypeOf(folder);
      if (type !== 'ext4' && type !== 'tmpfs' && type !== 'xfs' && type !== 'btrfs' && type !== 'overlay') {
        throw new Error(`${folder} is on ${String(type)}, which holds no sparse files; set TMPDIR to an ext4 or tmpfs folder`);
      }
      const w = await ChunkFileWriter.forFolder(folder, { rescueId: RESCUE, sourceSize: SOURCE_SIZE, chunkCount: 4, chunkSize: CHUNK_SIZE });
      expect(w.layout).to.equal('sparse');
      await exportAndMerge(folder, w);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('merges packed files', async () => {
    const folder = join(work, 'packed');
    mkdirSync(folder);
    await exportAndMerge(folder, new ChunkFileWriter({ rescueId: RESCUE, sourceSize: SOURCE_SIZE, chunkCount: 4, chunkSize: CHUNK_SIZE, layout: 'packed' }));
  });

  it('stops at a file ddrescue cannot copy whole, writes no receipt from there on, and skips files PC_A deleted', async () => {
    const folder = join(work, 'broken');
    mkdirSync(folder);
    const w = new ChunkFileWriter({ rescueId: RESCUE, sourceSize: SOURCE_SIZE, chunkCount: 4, chunkSize: CHUNK_SIZE, layout: 'packed' });
    for (const p of pieces) await w.write(p, folder);
    const raws = readdirSync(folder).filter((n) => n.endsWith('.raw')).sort();
    const order = readFileSync(join(folder, 'ddrescue-commands.sh'), 'utf8').split('\n').filter((l) => /^merge_(packed|sparse) chunk/.test(l)).map((l) => `${l.split(' ')[1]!}.raw`);
    expect([...order].sort()).to.deep.equal(raws);
    rmSync(join(folder, order[0]!)); // merged on an earlier trip and deleted by PC_A
    const cut = order[2]!;
    writeFileSync(join(folder, cut), readFileSync(join(folder, cut)).subarray(0, 1000)); // a stick that lost the file's end
    const image = join(work, 'broken.img');
    const r = await run('sh', [join(folder, 'ddrescue-commands.sh'), image], work);
    expect(r.status).to.equal(1);
    expect(r.out).to.include(`${order[0]!} is not here any more`);
    expect(r.out).to.include(`${cut} has 1000 bytes, not `);
    expect(r.out).to.include(`STOPPED: ${cut} was not merged`);
    const done = readFileSync(join(folder, 'receipts', 'ddrescue-done.txt'), 'utf8').split('\n').filter((l) => l !== '');
    expect(done).to.deep.equal([order[1]]);
    // as pasted: the lines after the failure refuse to run
    const lines = readFileSync(join(folder, 'DDRESCUE-COMMANDS.txt'), 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    lines[0] = `IMAGE='${image}.2'`;
    const pasted = await run('sh', ['-c', lines.join('\n')], folder);
    expect(pasted.status).to.equal(1);
    expect(pasted.out).to.include(`not run: ${order[3]!} (stopped at ${cut})`);
    expect(readFileSync(join(folder, 'receipts', 'ddrescue-done.txt'), 'utf8').split('\n').filter((l) => l !== '')).to.deep.equal([order[1], order[1]]);
  });

  describe('on a FAT32 stick (mkfs.vfat -F 32, fusefat)', () => {
    const mounts: string[] = [];
    after(() => {
      for (const mnt of mounts) {
        const u = spawnSync('fusermount', ['-u', mnt], { encoding: 'utf8' });
        if (u.status !== 0) spawnSync('umount', ['-l', mnt]);
      }
    });

    /** A new 64 MiB FAT32 file system mounted by fusefat; fails naming what is missing. */
    function mountFat32(name: string): string {
      const img = join(work, `${name}.img`);
      writeFileSync(img, Buffer.alloc(0));
      spawnSync('truncate', ['-s', '64M', img]);
      const mkfs = spawnSync('mkfs.vfat', ['-F', '32', img], { encoding: 'utf8' });
      if (mkfs.error || mkfs.status !== 0) throw new Error(`mkfs.vfat -F 32 failed (${mkfs.error?.message ?? mkfs.stderr}): install dosfstools`);
      const point = join(work, name);
      mkdirSync(point);
      const mount = spawnSync('fusefat', ['-o', 'rw+', img, point], { encoding: 'utf8' });
      if (mount.error || mount.status !== 0) throw new Error(`fusefat -o rw+ could not mount the FAT32 image (${mount.error?.message ?? mount.stderr}): install fusefat and fuse, and allow FUSE mounts (/dev/fuse)`);
      mounts.push(point);
      return point;
    }

    it('merges the packed files the writer chose for FAT32', async () => {
      const point = mountFat32('mnt');
      const type = await fileSystemTypeOf(point);
      expect(type).to.match(/^fuse/);
      const folder = join(point, 'ddferry', RESCUE);
      mkdirSync(folder, { recursive: true });
      const w = await ChunkFileWriter.forFolder(folder, { rescueId: RESCUE, sourceSize: SOURCE_SIZE, chunkCount: 4, chunkSize: CHUNK_SIZE });
      expect(w.layout).to.equal('packed');
      await exportAndMerge(folder, w);
    });

    it('carries a rescue larger than the stick, trip after trip, with ddferry-reader rescue --format ddrescue-chunks and GNU ddrescue on PC_B', async () => {
      const point = mountFat32('trips');
      const size = 80 * MIB;
      const src = Buffer.concat([source, randomBytes(size - source.length)]);
      const dir = join(work, 'trips-job');
      mkdirSync(dir);
      writeFileSync(join(dir, 'src.bin'), src);
      // bad areas, one with good sectors scattered in it
      const blocks = new SblockVector();
      blocks.push(0, 5 * MIB, 4);
      blocks.push(5 * MIB, 5 * MIB + 64 * KIB, 3);
      blocks.push(5 * MIB + 64 * KIB, 40 * MIB, 4);
      for (let s = 40 * MIB; s < 40 * MIB + 32 * KIB; s += 512) blocks.push(s, s + 512, (s / 512) % 3 === 0 ? 4 : 3);
      blocks.push(40 * MIB + 32 * KIB, size, 4);
      writeFileSync(join(dir, 'test.map'), formatMapfile({ currentPos: 0, currentStatus: '+', currentPass: 1, blocks: blocks.compact() }, { program: 'ddferry', commandLine: 'trips test map', startTime: '' }));
      const bin = join(import.meta.dirname, '..', '..', 'bin', 'ddferry-reader.js');
      const plan = await run('node', [bin, 'plan', 'src.bin', 'job', '--chunk-size', '16MiB', '--test-mode', 'test.map'], dir);
      expect(plan.status, plan.out).to.equal(0);
      const image = join(dir, 'disk.img');
      let trips = 0;
      let last: Run = { status: null, out: '' };
      const statuses: Array<number | null> = [];
      for (; trips < 6; ++trips) {
        last = await run('node', [bin, 'rescue', 'job', '--to', point, '--format', 'ddrescue-chunks', '-q'], dir);
        statuses.push(last.status);
        expect(last.status, last.out).to.be.oneOf([0, 4]);
        if (last.out.includes('The rescue is complete')) break;
        const folder = join(point, 'ddferry', readdirSync(join(point, 'ddferry'))[0]!);
        const merged = await run('sh', [join(folder, 'ddrescue-commands.sh'), image], dir);
        expect(merged.status, merged.out).to.equal(0);
      }
      console.log(`      ${statuses.length} rescue run(s) (exit ${statuses.join(", ")}), ${trips} merge(s) on PC_B`);
      expect(last.out).to.include('The rescue is complete');
      expect(statuses, 'the stick filled at least once').to.include(4);
      const common = finishedOf(readFileSync(join(dir, 'job', 'common.map')));
      expect(common.length).to.be.at.least(3);
      expect(finishedOf(readFileSync(`${image}.map`)), 'the GNU image map says + where common.map does').to.deep.equal(common);
      expectImage(image, src, common);
    });
  });
});
