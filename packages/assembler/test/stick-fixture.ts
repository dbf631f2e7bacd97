/**
 * Sticks for import tests: a rescue folder with `rescue.json` and bundles of
 * sealed pieces made by `writeBundle`, and the tar surgery that damages them.
 * A piece is sealed once per token (`sealOnce`), so writing it again writes the
 * same sealed piece, with the same header hash.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Fingerprint, Piece, PieceRef, Receipt, SealedPiece } from '@ddferry/protocol';
import { bundleFileName, formatStickRescue, parseReceipt, writeBundle } from '@ddferry/protocol';

import { CHUNK_SIZE, FINGERPRINT, KEYS, makePiece, RESCUE_ID, seal, SECRET, SECTOR_SIZE, SOURCE_SIZE } from './helpers.js';

export const STICK_ID = '0123456789abcdef';

/** `DIR/ddferry/<id>` with its `rescue.json`. */
export async function makeRescueFolder(dir: string, rescueId = RESCUE_ID, fingerprint: Fingerprint = FINGERPRINT, chunkSize = CHUNK_SIZE): Promise<string> {
  const folder = join(dir, 'ddferry', rescueId);
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, 'rescue.json'), formatStickRescue({
    rescueId, fingerprint, sourceSize: fingerprint.size, sectorSize: SECTOR_SIZE, chunkSize, stickId: STICK_ID,
  }));
  return folder;
}

const sealedOnce = new WeakMap<Piece, Map<string, SealedPiece>>();

/** `piece` sealed with `secret` (the tests' token by default), the same sealed piece every time. */
export function sealOnce(piece: Piece, secret = SECRET): SealedPiece {
  const bySecret = sealedOnce.get(piece) ?? new Map<string, SealedPiece>();
  sealedOnce.set(piece, bySecret);
  let s = bySecret.get(secret);
  if (s === undefined) {
    s = seal(piece, secret);
    bySecret.set(secret, s);
  }
  return s;
}

/** How a receipt names `piece` once merged: its seq and the header hash of `sealOnce(piece)`. */
export function refOf(piece: Piece): PieceRef {
  return { seq: piece.seq, headerHash: sealOnce(piece).headerHash };
}

function listOf(pieces: Piece | readonly Piece[]): readonly Piece[] {
  return Array.isArray(pieces) ? pieces as readonly Piece[] : [pieces as Piece];
}

/** The bytes of a bundle of `pieces`, sealed with `secret`. */
export async function bundleBytes(pieces: Piece | readonly Piece[], secret = SECRET): Promise<Buffer> {
  const parts: Buffer[] = [];
  const { Writable } = await import('node:stream');
  await writeBundle(listOf(pieces).map((p) => sealOnce(p, secret)), new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  }));
  return Buffer.concat(parts);
}

/** Write a bundle of `pieces` sealed with `secret` under its own name (or `name`); returns its path. */
export async function writeBundleFile(folder: string, pieces: Piece | readonly Piece[], name?: string, secret = SECRET): Promise<string> {
  const list = listOf(pieces);
  const path = join(folder, name ?? bundleFileName(list[0]!.seq));
  await writeBundle(list.map((p) => sealOnce(p, secret)), createWriteStream(path));
  return path;
}

const TAR = 512;
const padded = (n: number): number => Math.ceil(n / TAR) * TAR;

/**
 * Where, in a one-piece bundle of `sealOnce(piece)`, its sealed header's bytes
 * start (`sealedHeader`), and the tar header (`header`) and the bytes (`data`)
 * of its first frame entry.
 */
export function pieceEntryOffsets(piece: Piece): { sealedHeader: number; header: number; data: number } {
  const header = TAR + padded(sealOnce(piece).header.length);
  return { sealedHeader: TAR, header, data: header + TAR };
}

/** Rewrite fields of the tar header at `at` and its checksum. */
export function patchHeader(tar: Buffer, at: number, fields: { name?: string; type?: string; linkname?: string }): void {
  const h = tar.subarray(at, at + TAR);
  if (fields.name !== undefined) {
    h.fill(0, 0, 100);
    h.write(fields.name, 0, 'utf8');
  }
  if (fields.type !== undefined) h.write(fields.type, 156, 'latin1');
  if (fields.linkname !== undefined) {
    h.fill(0, 157, 257);
    h.write(fields.linkname, 157, 'utf8');
  }
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}

/**
 * The test rescue's four pieces, one per chunk: chunk 0 has a bad sector
 * between two rescued runs, chunk 3 is the 1000-byte tail.
 */
export function fourPieces(rescueId = RESCUE_ID): Piece[] {
  return [
    makePiece(1, 0, [{ pos: 0, size: 2048, status: '+' }, { pos: 2048, size: 512, status: '-' }, { pos: 2560, size: 1536, status: '+' }], 1, rescueId),
    makePiece(2, 1, [{ pos: CHUNK_SIZE, size: CHUNK_SIZE, status: '+' }], 2, rescueId),
    makePiece(3, 2, [{ pos: 2 * CHUNK_SIZE, size: 1024, status: '+' }, { pos: 2 * CHUNK_SIZE + 1024, size: 3072, status: '*' }], 3, rescueId),
    makePiece(4, 3, [{ pos: 3 * CHUNK_SIZE, size: 1000, status: '+' }], 4, rescueId),
  ];
}

/** The bytes an image holds once `pieces` are merged (zeros elsewhere). */
export function expectedImage(pieces: readonly Piece[]): Uint8Array {
  const out = new Uint8Array(SOURCE_SIZE);
  for (const p of pieces) {
    let at = 0;
    for (const e of p.extents) {
      out.set(p.data.subarray(at, at + e.size), e.pos);
      at += e.size;
    }
  }
  return out;
}

/** The receipts of a rescue folder, oldest first. */
export async function readReceipts(folder: string): Promise<{ name: string; receipt: Receipt }[]> {
  let names: string[];
  try {
    names = await readdir(join(folder, 'receipts'));
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return [];
    throw err;
  }
  const out: { name: string; receipt: Receipt }[] = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    const file = join(folder, 'receipts', name);
    out.push({ name, receipt: parseReceipt(await readFile(file, 'utf8'), KEYS, file) });
  }
  return out;
}
