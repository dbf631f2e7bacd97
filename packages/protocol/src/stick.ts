import { ProtocolError } from './errors.js';
import type { StickCode } from './errors.js';
import { isRescueId } from './identity.js';
import type { Fingerprint, RescueId } from './identity.js';
import { receiptMac, verifyReceiptMac } from './keys.js';
import type { RescueKeys } from './keys.js';
import { MAX_SEQ } from './limits.js';
import type { PieceRef } from './messages.js';
import { isHeaderHash } from './seal.js';
import { hexOf, parseHex64, xxh64 } from './xxh64.js';

/**
 * The stick layout: what the reader (PC_A) and the assembler (PC_B) leave for
 * each other on a USB stick. Paths are relative to the stick's mount point.
 *
 * | path | written by | holds |
 * |---|---|---|
 * | `ddferry/<rescue-id>/rescue.json` | reader | the rescue (id, fingerprint, plan) and the stick's id (`formatStickRescue`) |
 * | `ddferry/<rescue-id>/piece-000123.tar` | reader | a bundle of sealed pieces (`writeBundle`); named by its first piece's seq |
 * | `ddferry/<rescue-id>/.piece-000123.tar.tmp` | reader | a bundle being written (never read by the assembler) |
 * | `ddferry/<rescue-id>/receipts/receipt-*.json` | assembler | what it merged and what it refused (`formatReceipt`), MACed with the rescue's receipt key |
 *
 * Every file is written under a temporary name, fsynced and renamed, so a name
 * that matches is a whole file. Nothing here is trusted by the other side
 * before it is checked (S2): `rescue.json` carries the xxh64 of its body (it
 * holds nothing secret and decides nothing the image's binding does not check),
 * a receipt the HMAC-SHA256 of its body under the receipt key (a stick holder
 * without the token cannot write one), and each is parsed field by field.
 */

export const STICK_FOLDER = 'ddferry';
export const STICK_RESCUE_FILE = 'rescue.json';
export const STICK_RECEIPTS_FOLDER = 'receipts';
/** A bundle's name: `piece-` then at least six digits (the seq of its first piece), `.tar`. */
export const BUNDLE_NAME = /^piece-(\d{6,15})\.tar$/;
/** A receipt's name. */
export const RECEIPT_NAME = /^receipt-[0-9A-Za-z-]{1,80}\.json$/;

/** The bundle file name for a bundle whose first piece is `seq`. */
export function bundleFileName(seq: number): string {
  return `piece-${String(seq).padStart(6, '0')}.tar`;
}

/** The seq a bundle file name carries (1 to `MAX_SEQ`), or undefined for any other name. */
export function bundleSeqOf(name: string): number | undefined {
  const m = BUNDLE_NAME.exec(name);
  if (m === null) return undefined;
  const seq = Number(m[1]);
  return Number.isSafeInteger(seq) && seq >= 1 && seq <= MAX_SEQ ? seq : undefined;
}

/** The rescue's folder on a stick mounted at `root`, as path parts to join. */
export function stickRescueParts(rescueId: RescueId): readonly [string, string] {
  if (!isRescueId(rescueId)) throw new TypeError(`not a rescue id: ${rescueId}`);
  return [STICK_FOLDER, rescueId];
}

/** `rescue.json`: the rescue a stick folder belongs to, and the stick's own id. */
export interface StickRescue {
  readonly rescueId: RescueId;
  readonly fingerprint: Fingerprint;
  readonly sourceSize: number;
  readonly sectorSize: number;
  readonly chunkSize: number;
  /** A random id made when the reader first used this stick folder: pieces carried on another stick are not this stick's to miss. */
  readonly stickId: string;
}

/** One bundle the assembler refused. */
export interface ReceiptRejection {
  /** The bundle's file name in the rescue folder. */
  readonly bundle: string;
  /** Sequence numbers of the bundle's pieces whose headers authenticated before the refusal (for humans: the reader trusts its own ledger). */
  readonly seqs: readonly number[];
  readonly code: string;
  readonly reason: string;
}

/** A receipt: durable acknowledgement of merged pieces, and the bundles refused. */
export interface Receipt {
  readonly rescueId: RescueId;
  /**
   * The pieces of the folder's bundles that the image holds durably (merged by
   * this import or before), each named by seq and header hash, ascending by seq.
   */
  readonly merged: readonly PieceRef[];
  readonly rejected: readonly ReceiptRejection[];
  /** When the receipt was written (ISO 8601), for humans. */
  readonly writtenAt: string;
  /** Who wrote it (`host:IMAGE`), for humans. */
  readonly writer: string;
}

const RESCUE_FORMAT = 'ddferry-stick-rescue';
const RECEIPT_FORMAT = 'ddferry-receipt';
const VERSION = 1;
/** Receipts name pieces by header hash and are MACed since version 2. */
const RECEIPT_VERSION = 2;
/** Most rejections and merged ranges one receipt may hold. */
export const MAX_RECEIPT_ENTRIES = 1_048_576;
/** Largest stick JSON file read. */
export const MAX_STICK_FILE_BYTES = 64 << 20;
const MAX_TEXT = 4096;

function withChecksum(body: Record<string, unknown>, field: string): string {
  const sum = hexOf(xxh64(Buffer.from(JSON.stringify(body), 'utf8')));
  return `${JSON.stringify({ ...body, [field]: sum })}\n`;
}

/** The text of `rescue.json`. */
export function formatStickRescue(r: StickRescue): string {
  const f = r.fingerprint;
  return withChecksum({
    format: RESCUE_FORMAT, version: VERSION, rescueId: r.rescueId,
    fingerprint: { size: f.size, logicalSectorSize: f.logicalSectorSize, physicalSectorSize: f.physicalSectorSize, model: f.model, serial: f.serial, wwn: f.wwn, kind: f.kind },
    sourceSize: r.sourceSize, sectorSize: r.sectorSize, chunkSize: r.chunkSize, stickId: r.stickId,
  }, 'xxh64');
}

/**
 * How much room a receipt takes on a stick, so the reader can keep it free
 * (a stick filled to its last byte could never be given a receipt, and its
 * pieces never freed). `formatReceipt` keeps every receipt within
 * `maxReceiptBytes(bundles)` for a folder of `bundles` one-piece bundles:
 *
 * | part | at most |
 * |---|---|
 * | fixed: format, version, rescue id, `writtenAt` (40 characters kept), `writer` (`RECEIPT_TEXT_BYTES` kept), mac | `RECEIPT_BASE_BYTES` |
 * | a merged piece: `[seq, "32 hex"],` | 52 bytes |
 * | a rejection: its bundle name (25), 4 seqs, its code (64 kept), its reason (`RECEIPT_TEXT_BYTES` kept) | 710 bytes |
 * | per bundle (one piece, merged or refused or both) | `RECEIPT_BYTES_PER_BUNDLE` |
 */
export const RECEIPT_BASE_BYTES = 1024;
export const RECEIPT_BYTES_PER_BUNDLE = 1024;
/** The most JSON bytes a receipt keeps of its `writer` and of each rejection's `reason`. */
export const RECEIPT_TEXT_BYTES = 512;
/** Seqs a rejection keeps (they are for people: the reader trusts its own ledger). */
const RECEIPT_REJECTION_SEQS = 4;

/** The most bytes `formatReceipt` writes for a folder of `bundles` bundles of one piece each. */
export function maxReceiptBytes(bundles: number): number {
  return RECEIPT_BASE_BYTES + Math.max(0, bundles) * RECEIPT_BYTES_PER_BUNDLE;
}

/** `text`, cut (with `…`) so that its JSON form takes at most `maxBytes` bytes of UTF-8. */
export function fitJsonText(text: string, maxBytes: number): string {
  const size = (t: string): number => Buffer.byteLength(JSON.stringify(t), 'utf8');
  if (size(text) <= maxBytes) return text;
  const chars = [...text];
  let lo = 0;
  let hi = chars.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (size(`${chars.slice(0, mid).join('')}…`) <= maxBytes) lo = mid;
    else hi = mid - 1;
  }
  return `${chars.slice(0, lo).join('')}…`;
}

/**
 * The text of a receipt: its JSON body, keys in the order shown in the
 * README, with `mac` = `receiptMac(keys, JSON.stringify(body))` added last.
 * Texts are shortened to keep within `maxReceiptBytes` (see there).
 * @throws TypeError for keys of another rescue (a bug).
 */
export function formatReceipt(r: Receipt, keys: RescueKeys): string {
  if (keys.rescueId !== r.rescueId) throw new TypeError(`keys of rescue ${keys.rescueId} cannot sign a receipt of rescue ${r.rescueId}`);
  const body = {
    format: RECEIPT_FORMAT, version: RECEIPT_VERSION, rescueId: r.rescueId,
    merged: r.merged.map((p) => [p.seq, p.headerHash]),
    rejected: r.rejected.map((x) => ({
      bundle: x.bundle, seqs: x.seqs.slice(0, RECEIPT_REJECTION_SEQS), code: fitJsonText(x.code, 66), reason: fitJsonText(x.reason, RECEIPT_TEXT_BYTES),
    })),
    writtenAt: fitJsonText(r.writtenAt, 42), writer: fitJsonText(r.writer, RECEIPT_TEXT_BYTES),
  };
  return `${JSON.stringify({ ...body, mac: receiptMac(keys, JSON.stringify(body)) })}\n`;
}

type Json = Record<string, unknown>;

class StickReader {
  readonly code: StickCode;
  readonly file: string | undefined;
  constructor(code: StickCode, file: string | undefined) {
    this.code = code;
    this.file = file;
  }

  fail(message: string): never {
    throw new ProtocolError(this.code, message, { file: this.file });
  }

  object(v: unknown, keys: readonly string[], what: string): Json {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(`${what} is not an object.`);
    const got = Object.keys(v);
    if (got.length !== keys.length || got.some((k) => !keys.includes(k))) this.fail(`${what} has the fields ${got.slice(0, 12).join(', ')}, not ${keys.join(', ')}.`);
    return v as Json;
  }

  count(v: unknown, what: string, min = 0): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) this.fail(`${what} is not an integer from ${min} to 2^53-1.`);
    return v;
  }

  text(v: unknown, what: string): string {
    if (typeof v !== 'string' || v.length > MAX_TEXT) this.fail(`${what} is not a text of at most ${MAX_TEXT} characters.`);
    return v;
  }

  array(v: unknown, what: string): readonly unknown[] {
    if (!Array.isArray(v)) this.fail(`${what} is not a list.`);
    if (v.length > MAX_RECEIPT_ENTRIES) this.fail(`${what} has ${v.length} elements; at most ${MAX_RECEIPT_ENTRIES} are accepted.`);
    return v;
  }

  /** Parse as JSON, at most `MAX_STICK_FILE_BYTES`. */
  parse(text: string): unknown {
    if (text.length > MAX_STICK_FILE_BYTES) this.fail(`the file has more than ${MAX_STICK_FILE_BYTES} characters.`);
    try {
      return JSON.parse(text);
    } catch (err) {
      return this.fail(`not JSON (${err instanceof Error ? err.message : String(err)}).`);
    }
  }

  /** Parse, check the checksum field, the format and the version; returns the body. */
  open(text: string, keys: readonly string[], format: string): Json {
    const m = this.object(this.parse(text), [...keys, 'xxh64'], 'the file');
    const { xxh64: sum, ...body } = m;
    const expected = typeof sum === 'string' ? parseHex64(sum) : undefined;
    if (expected === undefined) this.fail('xxh64 is not 16 lowercase hex digits.');
    const actual = xxh64(Buffer.from(JSON.stringify(body), 'utf8'));
    if (actual !== expected) this.fail(`the file has xxh64 ${hexOf(actual)}, not ${hexOf(expected)} as it says: it is damaged.`);
    if (m.format !== format || m.version !== VERSION) this.fail(`the format is ${JSON.stringify(m.format)} version ${JSON.stringify(m.version)}, not ${format} version ${VERSION}.`);
    if (typeof m.rescueId !== 'string' || !isRescueId(m.rescueId)) this.fail('rescueId is not a rescue id.');
    return m;
  }
}

/**
 * Parse and check `rescue.json` from a stick.
 * @throws ProtocolError `ERR_STICK_BAD_RESCUE_FILE` naming `file`.
 */
export function parseStickRescue(text: string, file?: string): StickRescue {
  const r = new StickReader('ERR_STICK_BAD_RESCUE_FILE', file);
  const m = r.open(text, ['format', 'version', 'rescueId', 'fingerprint', 'sourceSize', 'sectorSize', 'chunkSize', 'stickId'], RESCUE_FORMAT);
  const f = r.object(m.fingerprint, ['size', 'logicalSectorSize', 'physicalSectorSize', 'model', 'serial', 'wwn', 'kind'], 'fingerprint');
  const fingerprint: Fingerprint = {
    size: r.count(f.size, 'fingerprint.size'),
    logicalSectorSize: r.count(f.logicalSectorSize, 'fingerprint.logicalSectorSize'),
    physicalSectorSize: r.count(f.physicalSectorSize, 'fingerprint.physicalSectorSize'),
    model: r.text(f.model, 'fingerprint.model'),
    serial: r.text(f.serial, 'fingerprint.serial'),
    wwn: r.text(f.wwn, 'fingerprint.wwn'),
    kind: r.text(f.kind, 'fingerprint.kind'),
  };
  const sourceSize = r.count(m.sourceSize, 'sourceSize', 1);
  const sectorSize = r.count(m.sectorSize, 'sectorSize', 1);
  const chunkSize = r.count(m.chunkSize, 'chunkSize', 1);
  if (chunkSize % sectorSize !== 0) r.fail(`chunkSize ${chunkSize} is not a multiple of sectorSize ${sectorSize}.`);
  if (fingerprint.size !== sourceSize) r.fail(`fingerprint.size ${fingerprint.size} differs from sourceSize ${sourceSize}.`);
  const stickId = r.text(m.stickId, 'stickId');
  if (!/^[0-9a-f]{8,64}$/.test(stickId)) r.fail('stickId is not 8 to 64 lowercase hex digits.');
  return { rescueId: m.rescueId as RescueId, fingerprint, sourceSize, sectorSize, chunkSize, stickId };
}

/**
 * Parse and check a receipt from a stick: its rescue, then its MAC with the
 * rescue's receipt key (nothing else of it is looked at before), then every
 * field: merged pieces ascending by seq with header hashes, rejections of plain
 * file names, every field of its type and size.
 * @throws ProtocolError `ERR_STICK_RECEIPT_MAC` (written without this rescue's
 *   token, or altered), `ERR_STICK_BAD_RECEIPT` (damaged, another rescue, an
 *   older format), naming `file`.
 */
export function parseReceipt(text: string, keys: RescueKeys, file?: string): Receipt {
  const r = new StickReader('ERR_STICK_BAD_RECEIPT', file);
  const m = r.object(r.parse(text), ['format', 'version', 'rescueId', 'merged', 'rejected', 'writtenAt', 'writer', 'mac'], 'the receipt');
  if (m.format !== RECEIPT_FORMAT || m.version !== RECEIPT_VERSION) r.fail(`the format is ${JSON.stringify(m.format)} version ${JSON.stringify(m.version)}, not ${RECEIPT_FORMAT} version ${RECEIPT_VERSION}.`);
  if (m.rescueId !== keys.rescueId) r.fail(`the receipt is for rescue ${String(m.rescueId).slice(0, 64)}, not for ${keys.rescueId}.`);
  const { mac, ...body } = m;
  if (typeof mac !== 'string' || !verifyReceiptMac(keys, JSON.stringify(body), mac)) {
    throw new ProtocolError('ERR_STICK_RECEIPT_MAC', 'The receipt\'s mac does not verify with this rescue\'s receipt key.', { file });
  }
  let last = 0;
  const merged = r.array(m.merged, 'merged').map((x): PieceRef => {
    if (!Array.isArray(x) || x.length !== 2) r.fail('merged holds something else than [seq, headerHash] pairs.');
    const pair = x as unknown[];
    const seq = r.count(pair[0], 'merged seq', 1);
    if (seq > MAX_SEQ || seq <= last) r.fail(`merged seq ${seq} is not ascending, or above 2^40.`);
    last = seq;
    if (typeof pair[1] !== 'string' || !isHeaderHash(pair[1])) r.fail(`merged piece ${seq} has a header hash that is not 32 lowercase hex digits.`);
    return { seq, headerHash: pair[1] as string };
  });
  const rejected = r.array(m.rejected, 'rejected').map((x): ReceiptRejection => {
    const o = r.object(x, ['bundle', 'seqs', 'code', 'reason'], 'a rejection');
    const bundle = r.text(o.bundle, 'rejection.bundle');
    if (bundle.includes('/') || bundle.includes('\\') || bundle === '..' || bundle.includes('\0')) r.fail(`rejection.bundle "${bundle.slice(0, 80)}" is not a plain file name.`);
    const seqs = r.array(o.seqs, 'rejection.seqs').map((s) => r.count(s, 'rejection seq', 1));
    return { bundle, seqs, code: r.text(o.code, 'rejection.code'), reason: r.text(o.reason, 'rejection.reason') };
  });
  return { rescueId: keys.rescueId, merged, rejected, writtenAt: r.text(m.writtenAt, 'writtenAt'), writer: r.text(m.writer, 'writer') };
}
