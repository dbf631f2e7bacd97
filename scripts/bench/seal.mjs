// Seal and open speed of sealed pieces (packages/protocol/docs/seal.md), in this process:
// `sealPiece` and `openSealedPiece` over --mib MiB of data (default 512) cut in pieces of
// --piece MiB (default 8, the reader's default) and frames of 4 MiB, with the raw
// AES-256-GCM speed of the same frames and a memcpy for reference. Reports MB/s (1e6
// bytes) per round and the median; never fails on a time.
//
//   npx tsc -b && node scripts/bench/seal.mjs [--mib 512] [--piece 8] [--runs 5]
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

import { median, nowMs } from './lib.mjs';

const { deriveRescueKeys, makeExtent, openSealedPiece, sealPiece } = await import('../../packages/protocol/dist/index.js');

const { values } = parseArgs({ options: { mib: { type: 'string', default: '512' }, piece: { type: 'string', default: '8' }, runs: { type: 'string', default: '5' } } });
const MIB = 1 << 20;
const total = Number(values.mib) * MIB;
const pieceBytes = Number(values.piece) * MIB;
const runs = Number(values.runs);
const rescueId = '0f3c2a4e-9b1d-4c6e-8a7f-1234567890ab';
const keys = deriveRescueKeys('bench token', rescueId);
const plan = { rescueId, sourceSize: total, sectorSize: 512, chunks: [{ index: 0, pos: 0, size: total }] };

// one buffer of random data; the pieces are views of it, each with its extent's xxh64
const source = randomBytes(total);
const pieces = [];
for (let pos = 0, seq = 1; pos < total; pos += pieceBytes, ++seq) {
  const data = source.subarray(pos, Math.min(total, pos + pieceBytes));
  pieces.push({ rescueId, seq, chunk: 0, extents: [makeExtent(pos, data)], delta: [{ pos, size: data.length, status: '+' }], data });
}

const mbps = (bytes, ms) => bytes / 1e6 / (ms / 1000);
const rows = { seal: [], open: [], gcmSeal: [], gcmOpen: [], memcpy: [] };
for (let r = 0; r < runs; ++r) {
  let t = nowMs();
  const sealed = pieces.map((p) => sealPiece(p, keys));
  rows.seal.push(mbps(total, nowMs() - t));
  t = nowMs();
  for (const s of sealed) openSealedPiece(s, { keys, plan });
  rows.open.push(mbps(total, nowMs() - t));

  const key = randomBytes(32);
  const iv = randomBytes(12);
  const frames = [];
  t = nowMs();
  for (let at = 0; at < total; at += 4 * MIB) {
    const c = createCipheriv('aes-256-gcm', key, iv);
    const ct = c.update(source.subarray(at, at + 4 * MIB));
    c.final();
    frames.push([ct, c.getAuthTag()]);
  }
  rows.gcmSeal.push(mbps(total, nowMs() - t));
  t = nowMs();
  for (const [ct, tag] of frames) {
    const d = createDecipheriv('aes-256-gcm', key, iv);
    d.update(ct);
    d.setAuthTag(tag);
    d.final();
  }
  rows.gcmOpen.push(mbps(total, nowMs() - t));
  const dst = Buffer.allocUnsafe(pieceBytes);
  t = nowMs();
  for (let at = 0; at < total; at += pieceBytes) source.copy(dst, 0, at, Math.min(total, at + pieceBytes));
  rows.memcpy.push(mbps(total, nowMs() - t));
}

console.log(`seal/open of ${values.mib} MiB in pieces of ${values.piece} MiB (frames of 4 MiB), ${runs} rounds, Node ${process.version}`);
console.log('| what | MB/s per round | median MB/s |');
console.log('|---|---|---|');
const label = { seal: 'sealPiece', open: 'openSealedPiece (xxh64 check included)', gcmSeal: 'raw AES-256-GCM encrypt, 4 MiB frames', gcmOpen: 'raw AES-256-GCM decrypt, 4 MiB frames', memcpy: 'memcpy (Buffer.copy)' };
for (const [k, v] of Object.entries(rows)) console.log(`| ${label[k]} | ${v.map((x) => x.toFixed(0)).join(', ')} | ${median(v).toFixed(0)} |`);
