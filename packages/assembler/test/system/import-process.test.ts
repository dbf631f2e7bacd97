/**
 * The real `ddferry-assembler import` process (the built bin): SIGTERM stops
 * with 143 and a receipt; kill -9 at spread moments, then a re-import: nothing
 * lost, the mapfile never claims bytes not in the image, every receipt on the
 * stick lists only durable pieces.
 */
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Piece } from '@ddferry/protocol';
import { parseReceipt, RECEIPT_NAME } from '@ddferry/protocol';
import { expect } from 'chai';

import { FINGERPRINT, KEYS, makePiece, PLUS, readImage, readStatuses, RESCUE_ID, SECRET, tempDir } from '../helpers.js';
import { makeRescueFolder, refOf, writeBundleFile } from '../stick-fixture.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '../../bin/ddferry-assembler.js');
const MIB = 1024 * 1024;
const SIZE = 48 * MIB;
const CHUNK = MIB;
const PIECE = MIB;

/** One piece per chunk of 1 MiB: rescued but for its last sector. */
function pieces(): Piece[] {
  const out: Piece[] = [];
  for (let seq = 1; seq <= SIZE / PIECE; ++seq) {
    const pos = (seq - 1) * PIECE;
    out.push(makePiece(seq, pos / CHUNK, [{ pos, size: PIECE - 512, status: '+' }, { pos: pos + PIECE - 512, size: 512, status: '-' }]));
  }
  return out;
}

function runImport(stick: string, image: string, token: string, killAfterMs?: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, 'import', stick, image, '--token-file', token], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  if (killAfterMs !== undefined) {
    // kill once the process has started merging (its first progress line), plus a delay
    let armed = false;
    child.stderr.on('data', () => {
      if (armed || !stderr.includes('[1/')) return;
      armed = true;
      setTimeout(() => child.kill(signal), killAfterMs);
    });
  }
  return new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig, stderr })));
}

describe('ddferry-assembler import (process)', function () {
  this.timeout(300_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  let stick: string;
  let folder: string;
  let token: string;
  const all = pieces();
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    token = join(dir, 'token');
    await writeFile(token, SECRET, { mode: 0o600 });
    stick = join(dir, 'stick');
    folder = await makeRescueFolder(stick, RESCUE_ID, { ...FINGERPRINT, size: SIZE }, CHUNK);
    for (const p of all) await writeBundleFile(folder, p);
  });
  after(async () => cleanup());

  async function check(image: string, complete: boolean): Promise<void> {
    const bytes = await readImage(image, SIZE);
    const model = new Uint8Array(SIZE);
    for (const p of all) model.set(p.data, p.extents[0]!.pos);
    const statuses = await readStatuses(`${image}.map`);
    for (let i = 0; i < SIZE; i += 512) {
      if (statuses[i] === PLUS && bytes[i] !== model[i]) throw new Error(`byte ${i} is + in IMAGE.map but not in the image`);
    }
    for (const name of await readdir(join(folder, 'receipts')).catch(() => [] as string[])) {
      // a kill -9 in a receipt's write leaves its temporary: PC_A reads receipt-*.json only, as here
      if (!RECEIPT_NAME.test(name)) continue;
      const r = parseReceipt(await readFile(join(folder, 'receipts', name), 'utf8'), KEYS, name);
      if (!r.writer.endsWith(`:${image}`)) continue; // another test's image
      for (const { seq, headerHash } of r.merged) {
        expect(headerHash).to.equal(refOf(all[seq - 1]!).headerHash);
        const pos = all[seq - 1]!.extents[0]!.pos;
        if (statuses[pos] !== PLUS) throw new Error(`${name} lists piece ${seq}, which IMAGE.map does not hold`);
      }
    }
    if (complete) {
      for (const p of all) {
        const pos = p.extents[0]!.pos;
        expect(Buffer.from(bytes.subarray(pos, pos + p.data.length)).equals(Buffer.from(p.data)), `piece ${p.seq}`).to.equal(true);
      }
    }
  }

  it('stops on SIGTERM with 143 and a receipt; a second import finishes with 0', async () => {
    const image = join(dir, 'term.img');
    const first = await runImport(stick, image, token, 0, 'SIGTERM');
    expect(first.code === 143 || first.code === 0, first.stderr).to.equal(true);
    expect(first.stderr).to.include('receipt:');
    await check(image, first.code === 0);
    const second = await runImport(stick, image, token);
    expect(second.code, second.stderr).to.equal(0);
    await check(image, true);
  });

  it('loses nothing to kill -9 at spread moments: the re-import completes the image', async () => {
    const image = join(dir, 'kill.img');
    for (const delay of [0, 5, 20, 60, 150, 400]) {
      const killed = await runImport(stick, image, token, delay);
      expect(killed.signal === 'SIGKILL' || killed.code === 0, killed.stderr).to.equal(true);
      await check(image, killed.code === 0);
    }
    const last = await runImport(stick, image, token);
    expect(last.code, last.stderr).to.equal(0);
    expect(last.stderr).to.match(/rescued \(/);
    await check(image, true);
  });
});
