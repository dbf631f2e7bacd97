// One of the mapfile bench's in-process operations, run by mapfile.mjs in a child process of its
// own, so that its peak RSS is the operation's. It imports only what it measures: the package's
// index and io modules, and node:fs for the plain write. Prints one JSON line on stdout.
//
// Usage: node scripts/bench/mapfile-child.mjs OP FILE OUT SEED CHANGES
//   OP: load | load+save | save | save-atomic | session
import { closeSync, openSync, writeSync } from 'node:fs';

import { makeRng } from './rng.mjs';

const STATUSES = ['?', '*', '/', '-', '+'];
const SECTOR = 512;
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

const [op, file, out, seedText, changesText] = process.argv.slice(2);
const lib = await import(new URL('../../packages/mapfile/dist/index.js', import.meta.url).href);
const io = await import(new URL('../../packages/mapfile/dist/io.js', import.meta.url).href);
const phases = {};
const result = { op, phases };

// load: read and parse (streamed, 64 KiB at a time), then build the status map
let t = nowMs();
const parsed = await io.readMapfile(file);
phases.parse = nowMs() - t;
t = nowMs();
const map = new lib.StatusMap(parsed.blocks);
phases.build = nowMs() - t;
phases.load = phases.parse + phases.build;
const { currentPos, currentStatus, currentPass } = parsed;
result.blocks = map.length;

if (op === 'session') {
  const rng = makeRng(Number(seedText) ^ 0x5eed);
  const domain = lib.Domain.fromOptions(0, -1);
  const ext = map.extent();
  const n = Number(changesText);
  let badAreaDelta = 0;
  t = nowMs();
  for (let i = 0; i < n; ++i) {
    const sb = map.sblockAt(ext.pos + rng.below(ext.size));
    const sectors = Math.floor(sb.size / SECTOR);
    let chunk;
    if (sectors > 1) {
      const a = rng.below(sectors);
      const b = a + 1 + rng.below(sectors - a);
      const pos = sb.pos + a * SECTOR;
      chunk = { pos, size: Math.min(sb.pos + b * SECTOR, sb.pos + sb.size) - pos };
    } else {
      chunk = { pos: sb.pos, size: sb.size };
    }
    badAreaDelta += map.changeChunkStatus(chunk, STATUSES[rng.u32() % 5], domain);
  }
  phases.changes = nowMs() - t;
  result.changes = n;
  result.badAreaDelta = badAreaDelta;
  result.blocksAfter = map.length;
}

if (op !== 'load') {
  const stamp = lib.formatTimestamp(new Date());
  // format and write are interleaved: 64 KiB pieces of text from one reused buffer
  const pieces = lib.formatMapfileChunks(
    { currentPos, currentStatus, currentPass, blocks: map },
    { program: 'ddrescue', commandLine: 'ddferry-bench mapfile', startTime: stamp, currentTime: stamp },
  );
  t = nowMs();
  let bytes = 0;
  const counted = function* () {
    for (const piece of pieces) {
      bytes += piece.length;
      yield piece;
    }
  };
  if (op === 'save-atomic') {
    await io.saveMapfile(out, counted());
  } else {
    // a plain write, as ddrescuelog writes to stdout
    const fd = openSync(out, 'w');
    try {
      for (const piece of counted()) for (let done = 0; done < piece.length;) done += writeSync(fd, piece, done);
    } finally {
      closeSync(fd);
    }
  }
  phases.save = nowMs() - t;
  result.bytesWritten = bytes;
}
if (op === 'load+save') phases.loadSave = phases.load + phases.save;
result.maxRssKiB = process.resourceUsage().maxRSS;
process.stdout.write(`${JSON.stringify(result)}\n`);
