import { isBlockStatus } from '@ddferry/mapfile';

import { ProtocolError } from './errors.js';
import type { BundleCode } from './errors.js';
import { isRescueId } from './identity.js';
import type { RescueId } from './identity.js';
import type { Limits } from './limits.js';
import type { Extent, StatusRange } from './messages.js';
import type { Piece } from './piece.js';
import { hexOf, parseHex64, xxh64 } from './xxh64.js';

/**
 * `manifest.json`, the first entry of a bundle (format version 1):
 *
 * ```json
 * {"format":"ddferry-bundle","version":1,"rescueId":"…","pieces":[
 *   {"seq":123,"chunk":7,"dataSize":8192,
 *    "extents":[{"pos":0,"size":8192,"xxh64":"16 hex digits"}],
 *    "delta":[{"pos":0,"size":8192,"status":"+"},{"pos":8192,"size":512,"status":"-"}]}],
 *  "manifestXxh64":"16 hex digits"}
 * ```
 *
 * `manifestXxh64` is the xxh64 of the UTF-8 text `JSON.stringify` gives for
 * the manifest without that field, keys in the order shown. A piece's data is
 * the entry `piece-000123.bin` (`pieceEntryName`).
 */

export const MANIFEST_NAME = 'manifest.json';
const FORMAT = 'ddferry-bundle';
const VERSION = 1;

/** A piece as the manifest describes it: everything but its data. */
export interface PieceDescription {
  readonly seq: number;
  readonly chunk: number;
  readonly dataSize: number;
  readonly extents: readonly Extent[];
  readonly delta: readonly StatusRange[];
}

/** What a manifest says. */
export interface BundleManifest {
  readonly rescueId: RescueId;
  readonly pieces: readonly PieceDescription[];
}

/** The entry holding the data of piece `seq`: `piece-000123.bin` (at least 6 digits). */
export function pieceEntryName(seq: number): string {
  return `piece-${String(seq).padStart(6, '0')}.bin`;
}

/** The manifest's text for these pieces (all of one rescue), with its checksum. */
export function formatManifest(rescueId: RescueId, pieces: readonly Piece[]): string {
  const body = {
    format: FORMAT,
    version: VERSION,
    rescueId,
    pieces: pieces.map((p) => ({
      seq: p.seq,
      chunk: p.chunk,
      dataSize: p.data.length,
      extents: p.extents.map((e) => ({ pos: e.pos, size: e.size, xxh64: hexOf(e.xxh64) })),
      delta: p.delta.map((d) => ({ pos: d.pos, size: d.size, status: d.status })),
    })),
  };
  const manifestXxh64 = hexOf(xxh64(Buffer.from(JSON.stringify(body), 'utf8')));
  return JSON.stringify({ ...body, manifestXxh64 });
}

type Json = Record<string, unknown>;

/** Reads a manifest, naming its file in errors. */
class ManifestReader {
  readonly file: string | undefined;
  constructor(file: string | undefined) {
    this.file = file;
  }

  fail(code: BundleCode, message: string, seq?: number): never {
    throw new ProtocolError(code, `${MANIFEST_NAME}: ${message}`, { file: this.file, seq });
  }

  object(v: unknown, keys: readonly string[], what: string): Json {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail('ERR_BUNDLE_BAD_MANIFEST', `${what} is not an object.`);
    const got = Object.keys(v);
    if (got.length !== keys.length || got.some((k) => !keys.includes(k))) {
      this.fail('ERR_BUNDLE_BAD_MANIFEST', `${what} has the fields ${got.slice(0, 10).join(', ')}, not ${keys.join(', ')}.`);
    }
    return v as Json;
  }

  count(v: unknown, what: string): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail('ERR_BUNDLE_BAD_MANIFEST', `${what} is not an integer from 0 to 2^53-1.`);
    return v;
  }

  array(v: unknown, max: number, what: string): readonly unknown[] {
    if (!Array.isArray(v)) this.fail('ERR_BUNDLE_BAD_MANIFEST', `${what} is not a list.`);
    if (v.length > max) this.fail('ERR_BUNDLE_BAD_MANIFEST', `${what} has ${v.length} elements; at most ${max} are accepted.`);
    return v;
  }

  range(v: Json, what: string): { pos: number; size: number } {
    const pos = this.count(v.pos, `${what}.pos`);
    const size = this.count(v.size, `${what}.size`);
    if (!Number.isSafeInteger(pos + size)) this.fail('ERR_BUNDLE_BAD_MANIFEST', `${what} ends above 2^53-1.`);
    return { pos, size };
  }

  piece(v: unknown, limits: Limits): PieceDescription {
    const p = this.object(v, ['seq', 'chunk', 'dataSize', 'extents', 'delta'], 'a piece');
    const seq = this.count(p.seq, 'piece.seq');
    if (seq === 0) this.fail('ERR_BUNDLE_BAD_MANIFEST', 'a piece has sequence number 0; they start at 1.');
    const chunk = this.count(p.chunk, 'piece.chunk');
    const dataSize = this.count(p.dataSize, 'piece.dataSize');
    if (dataSize > limits.maxPieceBytes) this.fail('ERR_BUNDLE_ENTRY_TOO_LARGE', `the piece has ${dataSize} bytes; at most ${limits.maxPieceBytes} are accepted.`, seq);
    const extents = this.array(p.extents, limits.maxExtentsPerPiece, 'piece.extents').map((x): Extent => {
      const e = this.object(x, ['pos', 'size', 'xxh64'], 'an extent');
      const h = typeof e.xxh64 === 'string' ? parseHex64(e.xxh64) : undefined;
      if (h === undefined) this.fail('ERR_BUNDLE_BAD_MANIFEST', 'an extent\'s xxh64 is not 16 lowercase hex digits.', seq);
      return { ...this.range(e, 'extent'), xxh64: h };
    });
    const delta = this.array(p.delta, limits.maxDeltaRanges, 'piece.delta').map((x): StatusRange => {
      const d = this.object(x, ['pos', 'size', 'status'], 'a delta range');
      if (typeof d.status !== 'string' || !isBlockStatus(d.status)) this.fail('ERR_BUNDLE_BAD_MANIFEST', 'a delta range\'s status is not one of ? * / - +.', seq);
      return { ...this.range(d, 'delta range'), status: d.status };
    });
    const sum = extents.reduce((s, e) => s + e.size, 0);
    if (sum !== dataSize) this.fail('ERR_BUNDLE_BAD_MANIFEST', `the extents hold ${sum} bytes but dataSize is ${dataSize}.`, seq);
    return { seq, chunk, dataSize, extents, delta };
  }
}

/**
 * Parse and check a manifest: its checksum first, then every field, count and
 * size against `limits`; sequence numbers unique.
 * @throws ProtocolError `ERR_BUNDLE_BAD_MANIFEST`, `ERR_BUNDLE_MANIFEST_CHECKSUM`,
 *   `ERR_BUNDLE_ENTRY_TOO_LARGE`.
 */
export function parseManifest(text: string, limits: Limits, file?: string): BundleManifest {
  const r: ManifestReader = new ManifestReader(file);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ProtocolError('ERR_BUNDLE_BAD_MANIFEST', `${MANIFEST_NAME} is not JSON (${err instanceof Error ? err.message : String(err)}).`, { file, cause: err });
  }
  const m = r.object(parsed, ['format', 'version', 'rescueId', 'pieces', 'manifestXxh64'], 'the manifest');
  const { manifestXxh64, ...body } = m;
  const expected = typeof manifestXxh64 === 'string' ? parseHex64(manifestXxh64) : undefined;
  if (expected === undefined) r.fail('ERR_BUNDLE_BAD_MANIFEST', 'manifestXxh64 is not 16 lowercase hex digits.');
  const actual = xxh64(Buffer.from(JSON.stringify(body), 'utf8'));
  if (actual !== expected) r.fail('ERR_BUNDLE_MANIFEST_CHECKSUM', `the manifest has xxh64 ${hexOf(actual)}, not ${hexOf(expected)} as it says.`);
  if (m.format !== FORMAT || m.version !== VERSION) r.fail('ERR_BUNDLE_BAD_MANIFEST', `the format is ${JSON.stringify(m.format)} version ${JSON.stringify(m.version)}, not ${FORMAT} version ${VERSION}.`);
  if (typeof m.rescueId !== 'string' || !isRescueId(m.rescueId)) r.fail('ERR_BUNDLE_BAD_MANIFEST', 'rescueId is not a rescue id.');
  const pieces = r.array(m.pieces, limits.maxPiecesPerBundle, 'pieces').map((p) => r.piece(p, limits));
  if (pieces.length === 0) r.fail('ERR_BUNDLE_BAD_MANIFEST', 'the manifest lists no piece.');
  const seqs = new Set<number>();
  for (const p of pieces) {
    if (seqs.has(p.seq)) r.fail('ERR_BUNDLE_BAD_MANIFEST', `sequence number ${p.seq} appears twice.`, p.seq);
    seqs.add(p.seq);
  }
  return { rescueId: m.rescueId, pieces };
}
