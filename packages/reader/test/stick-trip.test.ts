/**
 * `rescue JOBDIR --to DIR` in process, trip after trip, with a stick of a simulated
 * capacity (the free-space function is injected) and a small PC_B written here: it
 * reads each bundle with readBundle against the plan, merges it into an image buffer and
 * an image map (statuses forward-only), and writes receipts with formatReceipt. At the
 * end the image map equals common.map and the image equals the source on every `+`.
 * Faults between trips: a flipped byte, a lost bundle, a renamed bundle, ENOSPC in the
 * middle of a bundle, a damaged receipt; refusals: a folder of another rescue, no folder.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type BlockStatus, Domain, SblockVector, StatusMap, parseMapfile, planChunks } from '@ddferry/mapfile';
import {
  BUNDLE_NAME, type OpenedPiece, type PiecePlan, type RescueId, type RescueKeys, bundleFileName, deriveRescueKeys, formatReceipt, formatStickRescue,
  makeRescueId, readBundle,
} from '@ddferry/protocol';

import { writeFileDurably } from '../src/durable-file.js';
import { openJobFolder } from '../src/job/job-folder.js';
import { readJob } from '../src/job/job.js';
import { readJobToken } from '../src/job/token.js';
import { planJob } from '../src/job/plan-job.js';
import type { StickSpace } from '../src/stick/space.js';
import type { SlowRange } from '../src/source/blocking-source.js';
import { EXIT_STICK_FULL } from '../src/stick/trip.js';
import { BUNDLE_WRITER, type StickWriter } from '../src/stick/writer.js';
import { stickTripInProcess } from './helpers/in-process.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const RANK: Record<string, number> = { '?': 0, '*': 1, '/': 2, '-': 3, '+': 4 };

function makeSource(size: number): Buffer {
  const buf = Buffer.alloc(size);
  for (let p = 0; p + 8 <= size; p += 8) buf.writeBigUInt64LE(BigInt(p) * 2654435761n + 7n, p);
  return buf;
}

function testMap(size: number, bad: ReadonlyArray<readonly [number, number]>): string {
  const lines = ['0 + 1'];
  let p = 0;
  for (const [pos, len] of bad) {
    if (pos > p) lines.push(`${p} ${pos - p} +`);
    lines.push(`${pos} ${len} -`);
    p = pos + len;
  }
  if (p < size) lines.push(`${p} ${size - p} +`);
  return `${lines.join('\n')}\n`;
}

type Blocks = Array<[number, number, string]>;

function blocksOfMap(text: string): Blocks {
  const m = parseMapfile(Buffer.from(text, 'latin1'));
  const out: Blocks = [];
  m.blocks.compact().forEachBlock((pos, end) => {
    const st = m.blocks.status(m.blocks.findIndex(pos));
    const last = out[out.length - 1];
    if (last && last[2] === st && last[0] + last[1] === pos) last[1] += end - pos;
    else out.push([pos, end - pos, st]);
  });
  return out;
}

function blocksOf(map: StatusMap): Blocks {
  const out: Blocks = [];
  map.forEachBlock((pos, end) => {
    const st = map.sblockAt(pos)!.status;
    const last = out[out.length - 1];
    if (last && last[2] === st && last[0] + last[1] === pos) last[1] += end - pos;
    else out.push([pos, end - pos, st]);
  });
  return out;
}

/** A little PC_B: image bytes, image map, merged pieces (seq → header hash); `import` writes a receipt as the assembler does. */
class FakeAssembler {
  readonly data: Buffer;
  readonly map: StatusMap;
  readonly merged = new Map<number, string>();
  /** The image map's status line: the newest piece's, as the assembler takes it. */
  line = '?';
  secret = '';
  readonly domain: Domain;
  #n = 0;
  constructor(size: number) {
    this.data = Buffer.alloc(size);
    this.map = new StatusMap(SblockVector.from([{ pos: 0, size, status: '?' }]));
    this.domain = Domain.fromOptions(0, size);
  }

  #raise(pos: number, size: number, st: BlockStatus): void {
    let p = pos;
    while (p < pos + size) {
      const b = this.map.sblockAt(p)!;
      const end = Math.min(b.pos + b.size, pos + size);
      if (RANK[st]! > RANK[b.status]!) this.map.changeChunkStatus({ pos: p, size: end - p }, st, this.domain);
      p = end;
    }
  }

  async import(folder: string, plan: PiecePlan): Promise<{ merged: number; rejected: string[] }> {
    const keys: RescueKeys = deriveRescueKeys(this.secret, plan.rescueId!);
    const rejected: Array<{ bundle: string; seqs: number[]; code: string; reason: string }> = [];
    const named = new Map<number, string>();
    let merged = 0;
    for (const name of readdirSync(folder).filter((n) => BUNDLE_NAME.test(n)).sort()) {
      const file = join(folder, name);
      const pieces: OpenedPiece[] = [];
      try {
        for await (const p of readBundle(createReadStream(file), { file, plan, keys })) pieces.push(p);
        if (pieces[0] === undefined || bundleFileName(pieces[0].seq) !== name) throw Object.assign(new Error('the name differs from the first piece'), { code: 'ERR_STICK_BUNDLE_NAME' });
      } catch (err) {
        rejected.push({ bundle: name, seqs: [], code: (err as { code?: string }).code ?? 'ERR', reason: (err as Error).message.slice(0, 200) });
        continue;
      }
      for (const p of pieces) {
        const held = this.merged.get(p.seq);
        if (held !== undefined && held !== p.headerHash) throw new Error(`piece ${p.seq}: another piece holds its seq`);
        named.set(p.seq, p.headerHash);
        if (held !== undefined) continue;
        let at = 0;
        for (const e of p.extents) {
          this.data.set(p.data.subarray(at, at + e.size), e.pos);
          at += e.size;
        }
        for (const d of p.delta) this.#raise(d.pos, d.size, d.status);
        if (p.mapState !== undefined && p.seq >= Math.max(0, ...this.merged.keys())) this.line = p.mapState.currentStatus;
        this.merged.set(p.seq, p.headerHash);
        ++merged;
      }
    }
    const refs = [...named].sort((x, y) => x[0] - y[0]).map(([seq, headerHash]) => ({ seq, headerHash }));
    mkdirSync(join(folder, 'receipts'), { recursive: true });
    writeFileSync(join(folder, 'receipts', `receipt-test-${++this.#n}.json`), formatReceipt({ rescueId: plan.rescueId as RescueId, merged: refs, rejected, writtenAt: new Date().toISOString(), writer: 'test:image' }, keys));
    return { merged, rejected: rejected.map((r) => r.bundle) };
  }
}

function usedBytes(dir: string): number {
  let n = 0;
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    n += d.isDirectory() ? 4096 + usedBytes(p) : Math.ceil(statSync(p).size / 4096) * 4096;
  }
  return n;
}

interface World {
  dir: string;
  job: string;
  stick: string;
  source: Buffer;
  plan: PiecePlan;
  pcb: FakeAssembler;
  lines: string[];
  capacity: number;
  folder: string;
  trip(extra?: { writer?: StickWriter; format?: 'bundles'; to?: string; forgetStick?: string; args?: readonly string[]; signal?: AbortSignal }): Promise<number>;
  commonMap(): Blocks;
  check(): void;
}

async function makeWorld(o: { size: number; chunkSize: number; bad: ReadonlyArray<readonly [number, number]>; capacity: number; slow?: readonly SlowRange[] }): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'ddferry-stick-'));
  const source = makeSource(o.size);
  writeFileSync(join(dir, 'disk.bin'), source);
  writeFileSync(join(dir, 'disk.testmap'), testMap(o.size, o.bad));
  const jobDir = join(dir, 'job');
  await planJob({ source: join(dir, 'disk.bin'), jobDir, chunkSize: o.chunkSize, testMode: join(dir, 'disk.testmap'), commandLine: 'test plan', ...(o.slow === undefined ? {} : { testSlowReads: o.slow }) });
  const job = await readJob(jobDir);
  const stick = join(dir, 'stick');
  mkdirSync(stick);
  const plan: PiecePlan = { rescueId: job.rescueId, sourceSize: o.size, sectorSize: 512, chunks: planChunks({ sourceSize: o.size, sectorSize: 512, chunkSize: o.chunkSize }) };
  const pcb = new FakeAssembler(o.size);
  pcb.secret = (await readJobToken(jobDir))!.secret;
  const w: World = {
    dir, job: jobDir, stick, source, plan, pcb, lines: [], capacity: o.capacity,
    folder: join(stick, 'ddferry', job.rescueId),
    async trip(extra = {}) {
      const statStick = async (d: string): Promise<StickSpace> => ({ free: Math.max(0, w.capacity - usedBytes(w.stick)), blockSize: 4096, total: w.capacity, ...(d ? {} : {}) });
      return stickTripInProcess(jobDir, extra.to ?? stick, w.lines, {
        statStick, ...(extra.writer ? { writer: extra.writer } : {}), ...(extra.forgetStick ? { forgetStick: extra.forgetStick } : {}), ...(extra.args ? { args: extra.args } : {}), ...(extra.signal ? { signal: extra.signal } : {}),
      });
    },
    commonMap: () => blocksOfMap(readFileSync(join(jobDir, 'common.map'), 'latin1')),
    check() {
      const common = w.commonMap();
      expect(blocksOf(w.pcb.map)).to.deep.equal(common);
      // GNU's ending: common.map's status line is + (finished), and the image map's too, bad areas or not
      expect(parseMapfile(readFileSync(join(jobDir, 'common.map'))).currentStatus).to.equal('+');
      expect(w.pcb.line, 'the image map\'s status line').to.equal('+');
      for (const [pos, size, st] of common) {
        if (st === '+') expect(w.pcb.data.subarray(pos, pos + size).equals(source.subarray(pos, pos + size)), `image at ${pos}`).to.equal(true);
      }
      expect(readdirSync(join(jobDir, 'ledger'))).to.deep.equal([]);
    },
  };
  return w;
}

/** Trips until the reader says the rescue is complete; `between` runs after each reader run, before the import. */
async function loop(w: World, between: (trip: number) => void = () => undefined, max = 40, args?: (trip: number) => readonly string[]): Promise<number[]> {
  const codes: number[] = [];
  for (let trip = 1; trip <= max; ++trip) {
    const before = w.lines.length;
    const code = await w.trip(args === undefined ? {} : { args: args(trip) });
    codes.push(code);
    if (code === 0 && w.lines.slice(before).some((l) => l.includes('The rescue is complete'))) return codes;
    expect(code, w.lines.slice(before).join('')).to.be.oneOf([0, EXIT_STICK_FULL]);
    between(trip);
    await w.pcb.import(w.folder, w.plan);
  }
  throw new Error(`not complete after ${max} trips:\n${w.lines.slice(-6).join('')}`);
}

describe('rescue --to DIR (stick trips)', function () {
  this.timeout(120_000);
  let w: World;
  afterEach(() => rmSync(w.dir, { recursive: true, force: true }));

  it('fills a small stick trip after trip (exit 4), and ends with the image map equal to common.map', async () => {
    w = await makeWorld({ size: 24 * MIB, chunkSize: 4 * MIB, bad: [[3 * MIB, 8 * KIB], [8 * MIB - 4 * KIB, 12 * KIB], [15 * MIB, 64 * KIB]], capacity: 7 * MIB });
    const codes = await loop(w);
    expect(codes.filter((c) => c === EXIT_STICK_FULL).length).to.be.at.least(3);
    expect(codes[codes.length - 1]).to.equal(0);
    const full = w.lines.find((l) => l.includes('is full'))!;
    expect(full).to.match(new RegExp(`^ddferry-reader: The stick ${w.stick} is full: \\d+ piece\\(s\\) \\([\\d.]+ [kM]B\\) wait in ${w.folder}\\.( \\d+ more piece\\(s\\) read on this trip wait in [^ ]+ for the next stick trip\\.)? Carry it to PC_B and run:\n`
      + `   ddferry-assembler import STICK IMAGE --token-file TOKEN     \\(on PC_B; STICK: where the stick is mounted there, IMAGE: the image file there, TOKEN: PC_B's copy of ${join(w.job, 'token')} from here\\)\nthen bring it back and run the same command again here\\.\n$`));
    // what runs on PC_B names no path of PC_A (nor /path/to/...): the stick and the image by what they are there
    for (const l of w.lines.filter((x) => x.includes('ddferry-assembler'))) expect(l).to.not.include(`import ${w.stick}`).and.not.include('/path/to');
    // a full stick is no interruption: GNU ddrescue's 'Interrupted by user' is for signals only
    expect(w.lines.join('')).to.not.include('Interrupted by user');
    expect(w.lines.some((l) => /^ddferry-reader: stick .*: merged \d+ piece\(s\), reclaimed 0, freed [\d.]+ [kM]B; 0 piece\(s\) still wait for an import\.\n$/.test(l))).to.equal(true);
    w.check();
    // never more on the stick than its capacity minus the margin (2 MiB)
    expect(w.capacity - usedBytes(w.stick)).to.be.at.least(0);
  });

  it('reads again what PC_B refused or what vanished, without reading bad areas twice', async () => {
    w = await makeWorld({ size: 16 * MIB, chunkSize: 2 * MIB, bad: [[MIB, 4 * KIB], [5 * MIB, 512], [9 * MIB - 512, 1024]], capacity: 64 * MIB });
    let damaged = false;
    const codes = await loop(w, () => {
      if (damaged) return;
      damaged = true;
      const names = readdirSync(w.folder).filter((n) => BUNDLE_NAME.test(n)).sort();
      expect(names.length).to.be.at.least(5);
      // a flipped data byte, a flipped manifest byte, a lost bundle, a renamed bundle
      const flip = (name: string, at: (size: number) => number): void => {
        const f = join(w.folder, name);
        const b = readFileSync(f);
        b[at(b.length)]! ^= 0x40;
        writeFileSync(f, b);
      };
      flip(names[0]!, (n) => n - 2048);
      flip(names[1]!, () => 600);
      rmSync(join(w.folder, names[2]!));
      renameSync(join(w.folder, names[3]!), join(w.folder, 'piece-999999.tar'));
    });
    expect(codes[0]).to.equal(0);
    const summary = w.lines.find((l) => l.includes('reclaimed 4'))!;
    // flipped data and manifest: refused by PC_B; lost and renamed: missing from the stick
    expect(summary, w.lines.join('')).to.match(/reclaimed 4 \(1 rejected ERR_\w+, 1 rejected ERR_\w+, 2 missing; [\d.]+ [kM]B to read again\)/);
    // the renamed bundle is gone from the stick, refused and in no ledger entry
    expect(readdirSync(w.folder)).to.not.include('piece-999999.tar');
    w.check();
  });

  it('stops cleanly on ENOSPC in the middle of a bundle: no partial file, the piece kept in the local spool, nothing read twice', async () => {
    w = await makeWorld({ size: 12 * MIB, chunkSize: MIB, bad: [[2 * MIB + 512, 512]], capacity: 256 * MIB });
    let writes = 0;
    let mapAtFailure: Blocks = [];
    const failing: StickWriter = {
      ...BUNDLE_WRITER,
      names: BUNDLE_WRITER.names!.bind(BUNDLE_WRITER),
      estimate: BUNDLE_WRITER.estimate.bind(BUNDLE_WRITER),
      async write(piece, folder, sealed) {
        if (++writes === 4) {
          // half a bundle, then the stick is full
          const bytes = await writeFileDurably(folder, bundleFileName(piece.seq), async (out) => {
            await new Promise<void>((res) => out.write(Buffer.alloc(1000), () => res()));
            expect(readdirSync(folder)).to.include(`.${bundleFileName(piece.seq)}.tmp`);
            throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
          });
          expect.fail(`wrote ${bytes}`);
        }
        return BUNDLE_WRITER.write(piece, folder, sealed);
      },
    };
    const code = await w.trip({ writer: failing });
    expect(code).to.equal(EXIT_STICK_FULL);
    expect(w.lines.join('')).to.contain('ERR_STICK_FULL').and.contain('is full');
    const names = readdirSync(w.folder);
    expect(names.filter((n) => n.endsWith('.tmp'))).to.deep.equal([]);
    const bundles = names.filter((n) => BUNDLE_NAME.test(n));
    expect(bundles).to.have.length(3);
    // common.map says + only for what the three bundles and the local spool hold (R1)
    mapAtFailure = w.commonMap();
    const held = new Set<number>();
    const spooled = readdirSync(join(w.job, 'spool')).filter((n) => BUNDLE_NAME.test(n)).map((n) => join(w.job, 'spool', n));
    expect(spooled.length, 'the piece the stick could not take is kept in the local spool').to.be.at.least(1);
    const keys = deriveRescueKeys(w.pcb.secret, w.plan.rescueId!);
    for (const b of [...bundles.map((n) => join(w.folder, n)), ...spooled]) for await (const p of readBundle(createReadStream(b), { plan: w.plan, keys })) for (const e of p.extents) for (let x = e.pos; x < e.pos + e.size; x += 512) held.add(x);
    for (const [pos, size, st] of mapAtFailure) if (st === '+') for (let x = pos; x < pos + size; x += 512) expect(held.has(x), `+ at ${x} is durable`).to.equal(true);
    // only the three pieces on the stick have ledger entries: the failed one is on no stick
    expect(readdirSync(join(w.job, 'ledger')).filter((n) => n.endsWith('.json'))).to.have.length(3);
    expect(w.lines.join('')).to.match(/\d+ more piece\(s\) read on this trip wait in .*spool for the next stick trip/);
    await w.pcb.import(w.folder, w.plan);
    const before = w.lines.length;
    await loop(w);
    expect(w.lines.slice(before).join('')).to.contain('moved').and.not.contain('to read again');
    w.check();
  });

  it('moves pieces a LAN run left in the local spool onto the stick', async () => {
    w = await makeWorld({ size: 4 * MIB, chunkSize: MIB, bad: [], capacity: 64 * MIB });
    const opened = await openJobFolder(w.job, { secret: w.pcb.secret, spoolBytes: 64 * MIB, hardbs: 512, commandLine: 'test', saveInterval: -1, syncInterval: 300 });
    const data = w.source.subarray(0, 64 * KIB);
    const { makeExtent } = await import('@ddferry/protocol');
    const spooled = await opened.spool.put({ rescueId: opened.job.rescueId as RescueId, seq: opened.seq.next(), chunk: 0, extents: [makeExtent(0, data)], delta: [{ pos: 0, size: 64 * KIB, status: '+' }], data });
    // common.map says + for it, as a LAN run leaves it
    const mapText = readFileSync(join(w.job, 'common.map'), 'latin1').replace('0x00000000  0x00400000  ?', '0x00000000  0x00010000  +\n0x00010000  0x003F0000  ?');
    expect(mapText).to.contain('0x00010000  0x003F0000  ?');
    writeFileSync(join(w.job, 'common.map'), mapText);
    const code = await w.trip();
    expect(code).to.equal(0);
    expect(w.lines.join('')).to.contain('moved 1 piece(s)');
    expect(readdirSync(join(w.job, 'spool'))).to.deep.equal([]);
    expect(readdirSync(w.folder)).to.include('piece-000001.tar');
    // carried as it was sealed: the LAN may have sent it already (its receipt lost), and the image knows it by this hash
    const { readSealedBundle } = await import('@ddferry/protocol');
    const carried: string[] = [];
    for await (const p of readSealedBundle(createReadStream(join(w.folder, 'piece-000001.tar')))) carried.push(p.headerHash);
    expect(carried).to.deep.equal([spooled.headerHash]);
    await loop(w);
    w.check();
  });

  it('reads again, with --forget-stick, what a lost stick carried; until then it reports the pieces on it', async () => {
    w = await makeWorld({ size: 6 * MIB, chunkSize: MIB, bad: [[2 * MIB, 1024]], capacity: 64 * MIB });
    expect(await w.trip()).to.equal(0);
    const lost = JSON.parse(readFileSync(join(w.folder, 'rescue.json'), 'utf8')).stickId as string;
    const other = join(w.dir, 'stick-b');
    mkdirSync(other);
    const folderB = join(other, 'ddferry', w.plan.rescueId!);
    expect(await w.trip({ to: other })).to.equal(0);
    const carried = readdirSync(join(w.job, 'ledger')).length;
    expect(carried).to.be.at.least(6);
    expect(w.lines.join('')).to.contain(`${carried} piece(s) are on stick ${lost}: import it on PC_B`).and.contain(`--forget-stick ${lost}`);
    expect(readdirSync(folderB).filter((n) => BUNDLE_NAME.test(n))).to.deep.equal([]);
    expect(await w.trip({ to: other, forgetStick: lost })).to.equal(0);
    expect(w.lines.join(''), w.lines.join('')).to.contain(`reclaimed ${carried} (${carried} forgotten; 6290 kB to read again)`);
    await w.pcb.import(folderB, w.plan);
    const before = w.lines.length;
    expect(await w.trip({ to: other })).to.equal(0);
    expect(w.lines.slice(before).join('')).to.contain('The rescue is complete');
    w.check();
  });

  it('warns about a damaged receipt and keeps the pieces it would have freed', async () => {
    w = await makeWorld({ size: 2 * MIB, chunkSize: MIB, bad: [], capacity: 64 * MIB });
    expect(await w.trip()).to.equal(0);
    await w.pcb.import(w.folder, w.plan);
    const r = readdirSync(join(w.folder, 'receipts'))[0]!;
    writeFileSync(join(w.folder, 'receipts', r), readFileSync(join(w.folder, 'receipts', r), 'utf8').replace('"merged":[[1,', '"merged":[[2,'));
    expect(await w.trip()).to.equal(0);
    const text = w.lines.join('');
    expect(text, text).to.contain('ERR_STICK_RECEIPT_MAC').and.contain(r);
    expect(text).to.contain('merged 0 piece(s)');
    await w.pcb.import(w.folder, w.plan);
    expect(await w.trip()).to.equal(0);
    expect(w.lines.join('')).to.contain('The rescue is complete');
    w.check();
  });

  it('changes nothing for bundle names and receipts naming seq 2^53-1 or above 2^40: no state change, no read twice, the trips go on', async () => {
    w = await makeWorld({ size: 12 * MIB, chunkSize: 2 * MIB, bad: [[5 * MIB, 4 * KIB]], capacity: 7 * MIB });
    const readLogs: string[] = [];
    const reads = (): string[] => {
      const log = join(w.dir, `reads-${readLogs.length + 1}.log`);
      readLogs.push(log);
      return ['-q', `--log-reads=${log}`];
    };
    const seqFile = join(w.job, 'seq.json');
    const state = (): string => JSON.stringify([existsSync(seqFile) ? readFileSync(seqFile, 'utf8') : '', readFileSync(join(w.job, 'common.map'), 'latin1').replace(/^# .*\n/gm, ''), readdirSync(join(w.job, 'ledger')).sort(), readdirSync(w.folder).sort()]);
    expect(await w.trip({ args: reads() })).to.equal(EXIT_STICK_FULL);
    // someone without the token: files named after the largest seqs, and receipts naming 2^40 and 2^53-1
    writeFileSync(join(w.folder, 'piece-9007199254740991.tar'), randomBytes(16 * KIB));
    writeFileSync(join(w.folder, 'piece-1099511627777.tar'), randomBytes(16 * KIB));
    writeFileSync(join(w.folder, 'piece-999999999999999.tar'), randomBytes(16 * KIB));
    mkdirSync(join(w.folder, 'receipts'), { recursive: true });
    const otherKeys = deriveRescueKeys('not the token of this rescue at all', w.plan.rescueId!);
    const forged = formatReceipt({
      rescueId: w.plan.rescueId as RescueId, merged: [{ seq: 2 ** 40, headerHash: 'f'.repeat(32) }], rejected: [{ bundle: 'piece-000001.tar', seqs: [], code: 'ERR_X', reason: 'forged' }],
      writtenAt: '2026-01-01T00:00:00Z', writer: 'forger',
    }, otherKeys);
    writeFileSync(join(w.folder, 'receipts', 'receipt-forged-1.json'), forged);
    writeFileSync(join(w.folder, 'receipts', 'receipt-forged-2.json'), forged.replace('1099511627776', '9007199254740991'));
    // a trip with only those on the stick: nothing freed, nothing reclaimed, nothing read, the counter as it was
    const before = state();
    const at = w.lines.length;
    expect(await w.trip({ args: reads() })).to.equal(EXIT_STICK_FULL);
    expect(state()).to.equal(before);
    expect(w.lines.slice(at).join('')).to.contain('ERR_STICK_RECEIPT_MAC').and.contain('merged 0 piece(s), reclaimed 0');
    // then the trips go on to the end
    await w.pcb.import(w.folder, w.plan);
    const codes = await loop(w, () => undefined, 40, () => reads());
    expect(codes[codes.length - 1]).to.equal(0);
    expect(w.lines.join('')).to.not.match(/reclaimed [1-9]/);
    expect(existsSync(seqFile) ? JSON.parse(readFileSync(seqFile, 'utf8')).lastSeq : 0).to.be.below(1000);
    // no good byte was read twice across all trips, and every one was read
    const good: Array<[number, number]> = [];
    for (const f of readLogs) {
      if (!existsSync(f)) continue;
      for (const line of readFileSync(f, 'latin1').split('\n')) {
        const m = /^0x([0-9A-F]+)\t(\d+)\t(\d+)\t/.exec(line);
        if (m && Number(m[3]) > 0) good.push([parseInt(m[1]!, 16), Number(m[3])]);
      }
    }
    good.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < good.length; ++i) expect(good[i]![0], `read at ${good[i]![0]} overlaps the one at ${good[i - 1]![0]}`).to.be.at.least(good[i - 1]![0] + good[i - 1]![1]);
    expect(good.reduce((n, g) => n + g[1], 0)).to.equal(12 * MIB - 4 * KIB);
    w.check();
  });

  it('removes the temporary of a receipt whose write was cut on PC_B, and nothing else of the receipts folder', async () => {
    w = await makeWorld({ size: 4 * MIB, chunkSize: 2 * MIB, bad: [], capacity: 64 * MIB });
    expect(await w.trip()).to.equal(0);
    await w.pcb.import(w.folder, w.plan);
    const receipts = join(w.folder, 'receipts');
    writeFileSync(join(receipts, '.receipt-20261207T134336Z-ffa226.json.27968.6e8b5.tmp'), '{"format":');
    writeFileSync(join(receipts, 'notes.txt'), 'mine');
    await loop(w);
    expect(readdirSync(receipts).filter((n) => n.endsWith('.tmp'))).to.deep.equal([]);
    expect(existsSync(join(receipts, 'notes.txt'))).to.equal(true);
    w.check();
  });

  it('says \'Interrupted by user\' for a signal only, and still ends with the status line + after it', async () => {
    // a read that blocks 2 s: the signal comes while the trip runs, however fast the machine; the
    // reading process, abandoned in that read, sends what it read once the read returns: that run
    // has ended and must not store it (it did, under seqs the next trip gave again: ERR_PIECE_SEQ_CONFLICT)
    w = await makeWorld({ size: 8 * MIB, chunkSize: 2 * MIB, bad: [[MIB, 4 * KIB]], capacity: 64 * MIB, slow: [{ pos: 3 * MIB, size: 64 * KIB, seconds: 2 }] });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const code = await w.trip({ signal: ac.signal });
    expect(code).to.equal(1);
    expect(w.lines.join('')).to.contain('Interrupted by user');
    const before = w.lines.length;
    await w.pcb.import(w.folder, w.plan);
    await loop(w);
    expect(w.lines.slice(before).join('')).to.not.contain('Interrupted by user');
    w.check();
  });

  it('refuses a stick folder of another rescue with both identities, and a --to that is no folder', async () => {
    w = await makeWorld({ size: MIB, chunkSize: MIB, bad: [], capacity: 64 * MIB });
    const job = await readJob(w.job);
    mkdirSync(w.folder, { recursive: true });
    writeFileSync(join(w.folder, 'rescue.json'), formatStickRescue({
      rescueId: job.rescueId as RescueId, fingerprint: { ...job.fingerprint, model: 'OTHER-DISK' }, sourceSize: job.sourceSize, sectorSize: 512, chunkSize: 512 * KIB, stickId: 'abcdef0123456789',
    }));
    try {
      await w.trip();
      expect.fail('accepted');
    } catch (err) {
      expect((err as { code: string }).code, (err as Error).message).to.equal('ERR_STICK_WRONG_RESCUE');
      expect((err as Error).message).to.contain('this job:').and.contain('the stick:').and.contain('OTHER-DISK');
    }
    try {
      await stickTripInProcess(w.job, join(w.dir, 'disk.bin'), []);
      expect.fail('accepted');
    } catch (err) {
      expect((err as { code: string }).code).to.equal('ERR_STICK_NOT_A_FOLDER');
      expect((err as Error).message).to.contain(join(w.dir, 'disk.bin'));
    }
    expect(makeRescueId()).to.not.equal(job.rescueId);
  });

  it('refuses to start on a stick too full for one piece, and says how much is free', async () => {
    w = await makeWorld({ size: MIB, chunkSize: MIB, bad: [], capacity: 2 * MIB + 64 * KIB });
    try {
      await w.trip();
      expect.fail('accepted');
    } catch (err) {
      expect((err as { code: string }).code).to.equal('ERR_STICK_FULL');
      expect((err as Error).message).to.contain('free');
    }
  });
});
