import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { BlockStatus, Chunk } from '@ddferry/mapfile';
import { parseMapfile, planChunks, processedState } from '@ddferry/mapfile';
import type { Extent, Fingerprint, HelloMessage, OpenedPiece, Piece, RescueKeys, SealedPiece, StatusRange } from '@ddferry/protocol';
import { deriveRescueKeys, makeExtent, makeNonce, PROTOCOL_VERSION, sealPiece } from '@ddferry/protocol';

import type { Log } from '../src/connection.js';

export const RESCUE_ID = '0f3c2a4e-9b1d-4c6e-8a7f-1234567890ab';
export const OTHER_RESCUE_ID = '7d2e9f10-3a4b-4c5d-9e6f-abcdefabcdef';
/** The tests' shared token, and the test rescue's keys. */
export const SECRET = 'a token of the assembler tests, 32 bytes or more';
export const KEYS: RescueKeys = deriveRescueKeys(SECRET, RESCUE_ID);

/** `piece` sealed with the keys of its rescue under `secret` (as a reader does). */
export function seal(piece: Piece, secret = SECRET): SealedPiece {
  return sealPiece(piece, secret === SECRET && piece.rescueId === RESCUE_ID ? KEYS : deriveRescueKeys(secret, piece.rescueId));
}

/**
 * A header hash standing for a piece's content in tests that merge without
 * sealing: the same piece, the same hash; another piece, another hash.
 */
export function contentHash(piece: Piece): string {
  const h = createHash('sha256').update(JSON.stringify([piece.rescueId, piece.seq, piece.chunk, piece.delta, piece.extents.map((e) => [e.pos, e.size, e.xxh64.toString()])]));
  return h.update(piece.data).digest('hex').slice(0, 32);
}
export const CHUNK_SIZE = 4096;
export const SECTOR_SIZE = 512;
/** Four chunks; the last one is 1000 bytes. */
export const SOURCE_SIZE = 3 * CHUNK_SIZE + 1000;
export const CHUNKS: readonly Chunk[] = planChunks({ sourceSize: SOURCE_SIZE, sectorSize: SECTOR_SIZE, chunkSize: CHUNK_SIZE });

export const FINGERPRINT: Fingerprint = {
  size: SOURCE_SIZE, logicalSectorSize: 512, physicalSectorSize: 4096, model: 'FAILING DISK 9000', serial: 'SER-111', wwn: '', kind: 'block',
};
export const OTHER_FINGERPRINT: Fingerprint = { ...FINGERPRINT, model: 'OTHER DISK', serial: 'SER-222' };

export function bindRequest(rescueId = RESCUE_ID, fingerprint = FINGERPRINT): { rescueId: string; fingerprint: Fingerprint; chunkSize: number; sectorSize: number } {
  return { rescueId, fingerprint, chunkSize: CHUNK_SIZE, sectorSize: SECTOR_SIZE };
}

export function hello(rescueId = RESCUE_ID, fingerprint = FINGERPRINT): HelloMessage {
  return {
    type: 'hello', protocolVersion: PROTOCOL_VERSION, rescueId, fingerprint, clientNonce: makeNonce(), readerName: 'test-reader',
    chunkSize: CHUNK_SIZE, sectorSize: SECTOR_SIZE,
  };
}

/** Deterministic pseudo-random bytes. */
export function bytesOf(size: number, seed: number): Uint8Array {
  const b = new Uint8Array(size);
  let x = (seed * 2654435761 + 1) % 2147483648;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    b[i] = (x >>> 16) & 0xff;
  }
  return b;
}

/** A range of a piece: `+` ranges carry `data` (made from `seed` when not given). */
export interface Step {
  readonly pos: number;
  readonly size: number;
  readonly status: BlockStatus;
  readonly data?: Uint8Array;
}

/**
 * A piece of `chunk` from sorted, disjoint steps; `seed` makes the data of `+` steps. As
 * if opened: its header hash is `contentHash` (a sealed piece's would be its seal's).
 */
export function makePiece(seq: number, chunk: number, steps: readonly Step[], seed = seq, rescueId = RESCUE_ID): OpenedPiece {
  const extents: Extent[] = [];
  const delta: StatusRange[] = [];
  const datas: Uint8Array[] = [];
  for (const s of steps) {
    delta.push({ pos: s.pos, size: s.size, status: s.status });
    if (s.status === '+') {
      const data = s.data ?? bytesOf(s.size, s.pos * 7 + seed);
      extents.push(makeExtent(s.pos, data));
      datas.push(data);
    }
  }
  const piece: Piece = { rescueId, seq, chunk, extents, delta, data: Buffer.concat(datas) };
  return { ...piece, headerHash: contentHash(piece) };
}

/** A fresh temporary folder, removed by `cleanup`. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ddferry-assembler-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * A fresh temporary folder for each test of the calling `describe`, with an image path
 * `disk.img` in it (not created), removed after each test.
 */
export function useTempImage(): { readonly dir: string; readonly path: string } {
  const t = { dir: '', path: '' };
  let cleanup: (() => Promise<void>) | undefined;
  beforeEach(async () => {
    const d = await tempDir();
    cleanup = d.cleanup;
    t.dir = d.dir;
    t.path = `${d.dir}/disk.img`;
  });
  afterEach(async () => cleanup?.());
  return t;
}

/** The image's bytes, padded with zeros (holes) to `size`. */
export async function readImage(path: string, size = SOURCE_SIZE): Promise<Uint8Array> {
  const buf = await readFile(path);
  const out = new Uint8Array(Math.max(size, buf.length));
  out.set(buf);
  return out;
}

/** The statuses of a mapfile, one code (0 `?` … 4 `+`) per byte. */
export async function readStatuses(mapPath: string): Promise<Uint8Array> {
  const m = parseMapfile(await readFile(mapPath), { file: mapPath });
  const out = new Uint8Array(m.blocks.extent().size);
  m.blocks.forEachBlock((pos, end, code) => out.fill(code, pos, end));
  return out;
}

export const PLUS = processedState('+');

/** Hold the image's merges until `release` is called; `held` settles after. */
export function hold(image: { exclusive(fn: () => Promise<void>): Promise<void> }): { release: () => void; held: Promise<void> } {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  return { release, held: image.exclusive(() => gate) };
}

/** A server's log, kept: each line prefixed by its level. */
export interface Logged {
  readonly lines: string[];
  readonly log: Log;
}

export function logger(): Logged {
  const lines: string[] = [];
  return { lines, log: { info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) } };
}
