/**
 * Sticks for import tests: a rescue folder with `rescue.json` and bundles made
 * by `writeBundle`, and the tar surgery that damages them.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Fingerprint, Piece, Receipt } from '@ddferry/protocol';
import { bundleFileName, formatManifest, formatStickRescue, parseReceipt, writeBundle } from '@ddferry/protocol';

import { CHUNK_SIZE, FINGERPRINT, makePiece, RESCUE_ID, SECTOR_SIZE, SOURCE_SIZE } from './helpers.js';

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

/** The bytes of a bundle of `pieces`. */
export async function bundleBytes(pieces: Piece | readonly Piece[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  const { Writable } = await import('node:stream');
  await writeBundle(pieces, new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  }));
  return Buffer.concat(parts);
}

/** Write a bundle under its own name (or `name`); returns its path. */
export async function writeBundleFile(folder: string, pieces: Piece | readonly Piece[], name?: string): Promise<string> {
  const list = Array.isArray(pieces) ? pieces as readonly Piece[] : [pieces as Piece];
  const path = join(folder, name ?? bundleFileName(list[0]!.seq));
  await writeBundle(list, createWriteStream(path));
  return path;
}

const TAR = 512;
const padded = (n: number): number => Math.ceil(n / TAR) * TAR;

/** Where the header and the data of a one-piece bundle's piece entry start. */
export function pieceEntryOffsets(piece: Piece): { header: number; data: number } {
  const manifest = Buffer.byteLength(formatManifest(piece.rescueId, [piece]), 'utf8');
  const header = TAR + padded(manifest);
  return { header, data: header + TAR };
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
    out.push({ name, receipt: parseReceipt(await readFile(file, 'utf8'), file) });
  }
  return out;
}
