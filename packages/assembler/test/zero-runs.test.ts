import { readFile, stat, writeFile } from 'node:fs/promises';

import { planChunks } from '@ddferry/mapfile';
import type { OpenedPiece, Piece } from '@ddferry/protocol';
import { makeExtent, openSealedPiece, sealPiece } from '@ddferry/protocol';
import { expect } from 'chai';

import { Image } from '../src/image.js';
import { mergePieces } from '../src/merge.js';
import { bytesOf, FINGERPRINT, KEYS, RESCUE_ID, SECTOR_SIZE, useTempImage } from './helpers.js';

const MIB = 1 << 20;
const SIZE = 16 * MIB;
const CHUNK = 8 * MIB;
const CHUNKS = planChunks({ sourceSize: SIZE, sectorSize: SECTOR_SIZE, chunkSize: CHUNK });
const PLAN = { rescueId: RESCUE_ID, sourceSize: SIZE, sectorSize: SECTOR_SIZE, chunks: CHUNKS };

/** Text-like bytes: they travel compressed. */
function textOf(size: number): Uint8Array {
  return Buffer.from('usr/lib/x86_64-linux-gnu/libc.so.6 GLIBC_2.34 '.repeat(Math.ceil(size / 46)).slice(0, size));
}

/** `data` at `pos` as a reader seals it, opened as the assembler opens it. */
function carried(seq: number, pos: number, data: Uint8Array): OpenedPiece {
  const chunk = Math.floor(pos / CHUNK);
  const piece: Piece = { rescueId: RESCUE_ID, seq, chunk, extents: [makeExtent(pos, data)], delta: [{ pos, size: data.length, status: '+' }], data };
  return openSealedPiece(sealPiece(piece, KEYS), { keys: KEYS, plan: PLAN });
}

/** Bytes of the file the file system has allocated. */
async function allocated(path: string): Promise<number> {
  return (await stat(path)).blocks * 512;
}

describe('zero runs', () => {
  const t = useTempImage();

  async function bound(): Promise<Image> {
    const image = await Image.open(t.path);
    await image.bind({ rescueId: RESCUE_ID, fingerprint: { ...FINGERPRINT, size: SIZE }, chunkSize: CHUNK, sectorSize: SECTOR_SIZE });
    return image;
  }

  // frame 0 (4 MiB): random, text, zeros: compressed; frame 1 (4 MiB): zeros, a zero run
  const data = Buffer.concat([bytesOf(MIB, 3), textOf(MIB), new Uint8Array(6 * MIB)]);

  it('leaves a zero run as a hole in a fresh image, extends the file over a zero run at its end, byte-exact', async () => {
    const piece = carried(1, 0, data);
    expect(piece.zeroRuns).to.deep.equal([{ pos: 4 * MIB, size: 4 * MIB }]);
    const tail = carried(2, CHUNK, new Uint8Array(CHUNK));
    expect(tail.zeroRuns).to.deep.equal([{ pos: 0, size: CHUNK }]);
    const image = await bound();
    try {
      await mergePieces(image, [piece, tail]);
      expect(image.zeroFigures).to.deep.equal({ kept: 4 * MIB + CHUNK, written: 0 });
    } finally {
      await image.close();
    }
    const bytes = await readFile(t.path);
    expect(bytes.length).to.equal(SIZE);
    expect(bytes.subarray(0, CHUNK).equals(data)).to.equal(true);
    expect(bytes.subarray(CHUNK).equals(Buffer.alloc(CHUNK))).to.equal(true);
    // the 4 MiB and 8 MiB zero runs are holes: at most the 4 MiB of the first frames (text, zeros, random) is allocated
    expect(await allocated(t.path)).to.be.at.most(4 * MIB + 64 * 1024);
    expect(await readFile(`${t.path}.map`, 'utf8')).to.match(/^0x00000000 +0x01000000 +\+$/m);
  });

  it('writes real zeros where the image holds old bytes, byte-exact', async () => {
    await writeFile(t.path, Buffer.alloc(SIZE, 0xaa));
    const image = await bound();
    try {
      await mergePieces(image, [carried(1, 0, data), carried(2, CHUNK, new Uint8Array(CHUNK))]);
      expect(image.zeroFigures).to.deep.equal({ kept: 0, written: 4 * MIB + CHUNK });
    } finally {
      await image.close();
    }
    const bytes = await readFile(t.path);
    expect(bytes.subarray(0, CHUNK).equals(data)).to.equal(true);
    expect(bytes.subarray(CHUNK).equals(Buffer.alloc(CHUNK))).to.equal(true);
  });

  it('writes zeros only over the old bytes it finds, and never over rescued (+) data (A3)', async () => {
    // old bytes in part of the zero run (4 to 8 MiB), rescued data inside it, the file ending inside it
    await writeFile(t.path, Buffer.concat([Buffer.alloc(5 * MIB), Buffer.alloc(MIB, 0x55)]));
    const image = await bound();
    const first = bytesOf(MIB, 9);
    try {
      await mergePieces(image, [carried(1, 6 * MIB, first)]);
      await mergePieces(image, [carried(2, 0, data)]);
      expect(image.zeroFigures).to.deep.equal({ kept: 2 * MIB, written: MIB });
    } finally {
      await image.close();
    }
    const bytes = await readFile(t.path);
    expect(bytes.subarray(6 * MIB, 7 * MIB).equals(first), 'rescued bytes kept').to.equal(true);
    expect(bytes.length).to.equal(CHUNK);
    expect(bytes.subarray(0, 6 * MIB).equals(data.subarray(0, 6 * MIB))).to.equal(true);
    expect(bytes.subarray(7 * MIB).equals(data.subarray(7 * MIB))).to.equal(true);
  });
});
