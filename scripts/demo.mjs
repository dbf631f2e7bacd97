#!/usr/bin/env node
// npm run demo: what ddferry can do today, on a simulated failing disk, with no flags.
// It plans the chunks of a 256 MiB disk for a 64 MiB FAT32 stick, writes a simulated
// rescue map (bad areas, some across chunk borders) and shows it through ddferry-map.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { run } from '../packages/mapfile/dist/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ddferry-demo-'));
const io = {
  stdout: (c) => process.stdout.write(c),
  stderr: (t) => process.stderr.write(t),
  readStdin: async () => new Uint8Array(0),
  stdinIsTTY: false,
  stdoutIsTTY: false,
  cwd: dir,
};
const MiB = 1024 * 1024;
const size = 256 * MiB;
try {
  console.log(`Simulated failing disk: ${size} bytes, in ${dir}\n`);
  console.log('$ ddferry-map plan 256MiB --medium-size 64MiB --fs fat32 chunks');
  let status = await run(['plan', '256MiB', '--medium-size', '64MiB', '--fs', 'fat32', 'chunks'], io);
  if (status !== 0) throw new Error(`plan exited with ${status}`);
  // a rescue in progress: bad areas, one across the border of chunks 0 and 1
  const chunk = 63 * MiB;
  const bad = [[10 * MiB, 4096], [chunk - 8192, 16384], [100 * MiB, 512 * 1024], [200 * MiB + 512, 1536]];
  const lines = ['# simulated rescue map', `0x${(220 * MiB).toString(16)}     ?               2`];
  let pos = 0;
  for (const [p, s] of bad) {
    lines.push(`0x${pos.toString(16)}  0x${(p - pos).toString(16)}  +`, `0x${p.toString(16)}  0x${s.toString(16)}  -`);
    pos = p + s;
  }
  lines.push(`0x${pos.toString(16)}  0x${(220 * MiB - pos).toString(16)}  +`, `0x${(220 * MiB).toString(16)}  0x${(size - 220 * MiB).toString(16)}  ?`);
  writeFileSync(join(dir, 'common.map'), `${lines.join('\n')}\n`);
  console.log('\n$ ddferry-map show common.map');
  status = await run(['show', 'common.map'], io);
  console.log('\n$ ddferry-map ddrescuelog -t -m chunks/chunk0001.map common.map   # chunk 1 only');
  status ||= await run(['ddrescuelog', '-t', '-m', 'chunks/chunk0001.map', 'common.map'], io);
  console.log('\n$ ddferry-map ddrescuelog -l- -b4096 common.map | head -3   # bad 4 KiB blocks, badblocks format');
  const listed = [];
  status ||= await run(['ddrescuelog', '-l-', '-b4096', 'common.map'], { ...io, stdout: (c) => listed.push(String(c)) });
  console.log(listed.join('').split('\n').slice(0, 3).join('\n'));
  if (status !== 0) throw new Error(`a step exited with ${status}`);
  console.log('\nDemo finished: the mapfile layer works. The reader and assembler are not built yet.');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
