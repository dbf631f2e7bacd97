/**
 * The manual recipe with GNU ddrescue 1.27 run for real: on "PC_A",
 * `ddrescue -m chunkNN.map -H TESTMAP SOURCE chunkNN.raw common.map` for each
 * chunk of `ddferry-map plan`; on "PC_B", the built
 * `ddferry-assembler import-ddrescue` of each chunk file. The image must equal
 * the source on every `+` byte and IMAGE.map must equal common.map.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { formatChunkMap, parseMapfile } from '@ddferry/mapfile';
import { expect } from 'chai';

const HERE = dirname(fileURLToPath(import.meta.url));
const ASSEMBLER = join(HERE, '../../bin/ddferry-assembler.js');
const MAPTOOL = join(HERE, '../../../mapfile/bin/ddferry-map.js');
const MIB = 1024 * 1024;

type Row = readonly [pos: number, size: number, status: string];

function rowsOf(path: string): Row[] {
  const c = parseMapfile(readFileSync(path), { file: path }).blocks.compact();
  const out: Row[] = [];
  for (let i = 0; i < c.length; ++i) out.push([c.pos(i), c.size(i), c.status(i)]);
  return out;
}

/** Deterministic bytes: every 8 hold their position and a seed. */
function sourceBytes(size: number, seed: number): Buffer {
  const buf = Buffer.alloc(size);
  for (let p = 0; p + 8 <= size; p += 8) buf.writeBigUInt64LE(BigInt(p) * 2654435761n + BigInt(seed), p);
  return buf;
}

/** A GNU ddrescue test map: `+` everywhere but the `bad` ranges. */
function testMap(size: number, bad: readonly (readonly [number, number])[]): string {
  const lines = ['0 + 1'];
  let p = 0;
  for (const [pos, len] of [...bad].sort((a, b) => a[0] - b[0])) {
    if (pos > p) lines.push(`0x${p.toString(16)} 0x${(pos - p).toString(16)} +`);
    lines.push(`0x${pos.toString(16)} 0x${len.toString(16)} -`);
    p = pos + len;
  }
  if (p < size) lines.push(`0x${p.toString(16)} 0x${(size - p).toString(16)} +`);
  return `${lines.join('\n')}\n`;
}

function ddrescue(args: readonly string[]): void {
  const r = spawnSync('ddrescue', ['-q', ...args], { encoding: 'utf8' });
  if (r.error) throw new Error(`GNU ddrescue could not start (${r.error.message}): apt-get install -y gddrescue`);
  if (r.status !== 0) throw new Error(`ddrescue ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
}

function importChunk(args: readonly string[]): { stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [ASSEMBLER, 'import-ddrescue', ...args], { encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`ddferry-assembler import-ddrescue ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** `[pos, end)` of `path`, zeros past its end. */
function readRange(path: string, pos: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  const fd = openSync(path, 'r');
  try {
    for (let done = 0; done < size;) {
      const n = readSync(fd, buf, done, size - done, pos + done);
      if (n === 0) break;
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return buf;
}

/** The first `+` byte of `rows` where `image` differs from `source`, or undefined. */
function firstMismatch(image: string, source: string, rows: readonly Row[]): number | undefined {
  for (const [pos, size, status] of rows) {
    if (status !== '+') continue;
    for (let p = pos; p < pos + size; p += 8 * MIB) {
      const n = Math.min(8 * MIB, pos + size - p);
      const a = readRange(image, p, n);
      const b = readRange(source, p, n);
      if (!a.equals(b)) {
        for (let i = 0; i < n; ++i) if (a[i] !== b[i]) return p + i;
      }
    }
  }
  return undefined;
}

/** The packed form of a sparse chunk file: its domain `[pos, end)` from offset 0, cut at the file's end. */
function pack(sparse: string, packed: string, pos: number, end: number): void {
  const size = Math.max(0, Math.min(end, statSync(sparse).size) - pos);
  writeFileSync(packed, readRange(sparse, pos, size));
}

describe('import-ddrescue against GNU ddrescue 1.27 (system)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-import-ddrescue-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('imports every chunk of the manual recipe (sparse and packed): IMAGE.map equals common.map, the image equals the source on every + byte', function () {
    this.timeout(300_000);
    const size = 24 * MIB + 3 * 512;
    const source = join(dir, 'disk.bin');
    writeFileSync(source, sourceBytes(size, 5));
    const bad: [number, number][] = [[1 * MIB + 4096, 8192], [5 * MIB - 512, 1024], [8 * MIB - 4096, 12288], [15 * MIB + 77 * 512, 3 * 512], [size - 70 * 1024, 1024]];
    writeFileSync(join(dir, 'disk.testmap'), testMap(size, bad));
    const plan = spawnSync(process.execPath, [MAPTOOL, 'plan', String(size), '--chunk-size', '8MiB', join(dir, 'chunks')], { encoding: 'utf8' });
    expect(plan.status, plan.stderr).to.equal(0);
    const chunkMaps = readdirSync(join(dir, 'chunks')).filter((n) => /^chunk\d+\.map$/.test(n)).sort();
    expect(chunkMaps).to.have.length(4);
    const common = join(dir, 'common.map');
    const image = join(dir, 'image.raw');
    const packedImage = join(dir, 'packed.raw');
    const reference = join(dir, 'reference.raw');
    for (const [i, name] of chunkMaps.entries()) {
      const map = join(dir, 'chunks', name);
      const raw = join(dir, name.replace('.map', '.raw'));
      // chunk 1 without scraping leaves '/' in common.map; the others go to the end
      ddrescue([...(i === 1 ? ['-n'] : []), '-m', map, '-H', join(dir, 'disk.testmap'), source, raw, common]);
      importChunk([raw, '--domain', map, '--map', common, image]);
      const domain = rowsOf(map).find((r) => r[2] === '+')!;
      pack(raw, `${raw}.packed`, domain[0], domain[0] + domain[1]);
      importChunk([`${raw}.packed`, '--packed', '--domain', map, '--map', common, packedImage]);
      // what the recipe does today on PC_B
      ddrescue(['-m', map, raw, reference, `${reference}.map`]);
    }
    const commonRows = rowsOf(common);
    expect(commonRows.some((r) => r[2] === '-')).to.equal(true);
    expect(commonRows.some((r) => r[2] === '/')).to.equal(true);
    expect(rowsOf(`${image}.map`)).to.deep.equal(commonRows);
    expect(rowsOf(`${packedImage}.map`)).to.deep.equal(commonRows);
    expect(firstMismatch(image, source, commonRows)).to.equal(undefined);
    expect(firstMismatch(packedImage, source, commonRows)).to.equal(undefined);
    expect(firstMismatch(reference, image, commonRows)).to.equal(undefined);

    // a chunk twice: nothing written, nothing changed
    const before = readFileSync(image);
    const again = importChunk([join(dir, 'chunk0000.raw'), '--domain', join(dir, 'chunks', 'chunk0000.map'), '--map', common, image]);
    expect(again.stdout).to.match(/: 0 bytes written/);
    expect(readFileSync(image).equals(before)).to.equal(true);
    expect(rowsOf(`${image}.map`)).to.deep.equal(commonRows);
  });

  it('without --map takes the whole domain as rescued, warns, and then matches ddrescue -m on PC_B', function () {
    this.timeout(120_000);
    const size = 8 * MIB;
    const source = join(dir, 'disk.bin');
    writeFileSync(source, sourceBytes(size, 9));
    writeFileSync(join(dir, 'disk.testmap'), testMap(size, [[2 * MIB, 4096]]));
    expect(spawnSync(process.execPath, [MAPTOOL, 'plan', String(size), '--chunk-size', '4MiB', join(dir, 'chunks')]).status).to.equal(0);
    const map = join(dir, 'chunks', 'chunk0000.map');
    ddrescue(['-m', map, '-H', join(dir, 'disk.testmap'), source, join(dir, 'c.raw'), join(dir, 'common.map')]);
    const r = importChunk([join(dir, 'c.raw'), '--domain', map, join(dir, 'image.raw')]);
    expect(r.stderr).to.match(/warning: no --map/).and.match(/read as zeros/);
    ddrescue(['-m', map, join(dir, 'c.raw'), join(dir, 'reference.raw'), join(dir, 'reference.map')]);
    // ddrescue's map covers its input (the 4 MiB chunk file); IMAGE.map the source
    expect(rowsOf(join(dir, 'reference.map'))).to.deep.equal([[0, 4 * MIB, '+']]);
    expect(rowsOf(join(dir, 'image.raw.map'))).to.deep.equal([[0, 4 * MIB, '+'], [4 * MIB, 4 * MIB, '?']]);
    expect(readFileSync(join(dir, 'image.raw')).equals(readFileSync(join(dir, 'reference.raw')))).to.equal(true);
  });

  it('refuses a common.map of another size than IMAGE.map, showing both sizes, and leaves IMAGE.map as it was', function () {
    this.timeout(60_000);
    const size = 4 * MIB;
    writeFileSync(join(dir, 'disk.bin'), sourceBytes(size, 3));
    writeFileSync(join(dir, 'disk.testmap'), testMap(size, []));
    expect(spawnSync(process.execPath, [MAPTOOL, 'plan', String(size), '--chunk-size', '2MiB', join(dir, 'chunks')]).status).to.equal(0);
    const map = join(dir, 'chunks', 'chunk0000.map');
    ddrescue(['-m', map, '-H', join(dir, 'disk.testmap'), join(dir, 'disk.bin'), join(dir, 'c.raw'), join(dir, 'common.map')]);
    // an image of a 2x larger source, made by GNU ddrescue
    writeFileSync(join(dir, 'other.bin'), Buffer.alloc(2 * size));
    ddrescue(['-s', '4096', join(dir, 'other.bin'), join(dir, 'image.raw'), join(dir, 'image.raw.map')]);
    const mapBefore = readFileSync(join(dir, 'image.raw.map'));
    const r = spawnSync(process.execPath, [ASSEMBLER, 'import-ddrescue', join(dir, 'c.raw'), '--domain', map, '--map', join(dir, 'common.map'), join(dir, 'image.raw')], { encoding: 'utf8' });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.include('ERR_IMAGE_MAP_SIZE').and.include(`${size} bytes`).and.include(`${2 * size} bytes`);
    expect(readFileSync(join(dir, 'image.raw.map')).equals(mapBefore)).to.equal(true);
  });

  it('imports a chunk crossing 2^32 rescued by ddrescue from a sparse source', function () {
    this.timeout(300_000);
    const size = 2 ** 32 + 16 * MIB;
    const pos = 2 ** 32 - 8 * MIB;
    const source = join(dir, 'disk.bin');
    const fd = openSync(source, 'w');
    try {
      writeSync(fd, sourceBytes(16 * MIB, 11), 0, 16 * MIB, pos);
      writeSync(fd, Buffer.alloc(1), 0, 1, size - 1);
    } finally {
      closeSync(fd);
    }
    writeFileSync(join(dir, 'disk.testmap'), testMap(size, [[2 ** 32 - 4096, 8192], [2 ** 32 + 3 * MIB, 512]]));
    const map = join(dir, 'chunk.map');
    writeFileSync(map, formatChunkMap({ index: 1, pos, size: 16 * MIB }, size));
    const raw = join(dir, 'chunk.raw');
    ddrescue(['-m', map, '-H', join(dir, 'disk.testmap'), source, raw, join(dir, 'common.map')]);
    const image = join(dir, 'image.raw');
    importChunk([raw, '--domain', map, '--map', join(dir, 'common.map'), image]);
    const commonRows = rowsOf(join(dir, 'common.map'));
    expect(commonRows.filter((r) => r[2] === '-').map((r) => r[0])).to.deep.equal([2 ** 32 - 4096, 2 ** 32 + 3 * MIB]);
    expect(rowsOf(`${image}.map`)).to.deep.equal(commonRows);
    expect(firstMismatch(image, source, commonRows)).to.equal(undefined);
    expect(statSync(image).blocks * 512).to.be.below(64 * MIB);
    pack(raw, `${raw}.packed`, pos, pos + 16 * MIB);
    importChunk([`${raw}.packed`, '--packed', '--domain', map, '--map', join(dir, 'common.map'), join(dir, 'packed.raw')]);
    expect(rowsOf(join(dir, 'packed.raw.map'))).to.deep.equal(commonRows);
    expect(firstMismatch(join(dir, 'packed.raw'), source, commonRows)).to.equal(undefined);
  });
});
