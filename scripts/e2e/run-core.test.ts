/**
 * The reader stays alive while source reads hang (issue 12): the engine reads in a
 * reading process of its own (`ddferry-reader.js __reading-process`, pid in
 * JOBDIR/reading.pid), and the main process keeps the terminal, the maps, the spool,
 * the link and the signals. Real processes on a source whose reads block: the faultfs
 * FUSE slow disk (reads held in the kernel, as a failing disk holds them) or a job
 * planned with `--test-slow-reads POS+SIZE@SECONDS`.
 *
 * | test | the behaviour it holds the reader to |
 * |---|---|
 * | 33 s hung read, LAN | `--json` lines keep coming (longest gap near the interval), `reading` and `rescue.sinceLastSuccess` grow, the link stays connected over ONE TCP connection; every source read comes from the reading process |
 * | hung reads, stick trip | the same on a `--test-slow-reads` source, to a stick folder |
 * | SIGINT in a hung read | exit within 3 s by SIGINT, common.map saved and true, the abandoned reading process ends by itself after its read returns, a resume completes the image |
 * | Ctrl-C to the process group | the same with SIGINT to the whole group, as a terminal sends it |
 * | SIGTERM while paused | spool full and no assembler: `paused` says why, `link.lastError` says what failed; exit within 3 s by SIGTERM |
 * | SIGINT during a move to a stick | exit within 3 s by SIGINT while spooled pieces move onto a stick; common.map true over spool and stick |
 * | source busy | a new run while the last run's reading process still waits on a read: ERR_SOURCE_BUSY naming its pid, `paused.reason` `source-busy`, Ctrl-C exits within 3 s, then it waits and goes on |
 * | frozen assembler | SIGSTOP: detected within 30 s (ERR_LINK, `link.state` leaves connected); SIGCONT: reconnected with backoff of at most 10 s; the image completes |
 * | LAN, stick, LAN / stick, LAN, stick | runs cut by SIGINT in hung reads never read a byte again that was read and kept; the image ends equal to the source, IMAGE.map to common.map |
 *
 * Time bounds are the issue's behaviour, measured generously (a loaded 2-core CI machine).
 * Each test prints what it measured (`figure:` lines, also at the end of the suite).
 */
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { expect } from 'chai';

import type { FaultFsRead } from '../../packages/reader/test/helpers/faultfs.js';
import {
  type Block, TcpProxy, checkR1, checkState, finalChecks, killAll, piecesIn, portOf, sleep, spoolPieces, startAssembler,
} from './harness.js';
import {
  type Line, type ReaderRun, type SignalOutcome, type SlowScenario, closedPort, fuseScenario, goodReads, importStick, longestGap, overlap, plainScenario, processState,
  ranges, readTwice, rescuedBlocks, runReader, seconds, signalAndTime, slowReadStarted, subtract, testModeScenario, until,
} from './slow-disk.js';

const MiB = 1 << 20;
const KiB = 1024;

/** `--progress-interval` of the readers (seconds). */
const INTERVAL = 1;
/** The longest gap allowed between `--json` lines: "near the interval", with room for a loaded machine. */
const GAP_BOUND_MS = 4000;
/** "Exits within 3 s", plus 1.5 s for teardown on a loaded machine. */
const EXIT_BOUND_MS = 4500;
/** "A dead peer is detected within 30 s (allow up to 40 s)". */
const DEAD_LINK_BOUND_MS = 40_000;
/** Reconnection once the peer is back: backoff capped at 10 s, then a handshake. */
const RECONNECT_BOUND_MS = 25_000;
/** How long a test waits for an exit it asked for before it kills the process and fails. */
const CAP_MS = 20_000;
/** How long a run that should finish may take. */
const RUN_MS = 150_000;

/** Bad areas of a 16 MiB FUSE disk: a sector, a cluster over a 64 KiB border, 65.5 KiB, a page. */
const BAD16: ReadonlyArray<readonly [number, number]> = [[1 * MiB + 512, 512], [3 * MiB - 4096, 8192], [9 * MiB, 64 * KiB + 1536], [13 * MiB + 4096, 4096]];
/** Bad areas of an 8 MiB test map. */
const BAD8: ReadonlyArray<readonly [number, number]> = [[1 * MiB + 512, 512], [2 * MiB - 4096, 8192], [6 * MiB, 64 * KiB + 1536]];

const figures: string[] = [];

/** Record a measurement: printed now and again at the end of the suite. */
function figure(text: string): void {
  figures.push(text);
  console.log(`      figure: ${text}`);
}

/** `exit after 1.2 s by SIGINT`, `exit after 1.6 s with status 0`, or `no exit in 20 s`. */
function exitText(out: SignalOutcome): string {
  if (out.exit === undefined) return `no exit in ${CAP_MS / 1000} s`;
  return `exit after ${seconds(out.ms)} ${out.exit.signal ? `by ${out.exit.signal}` : `with status ${out.exit.code}`}`;
}

function last(run: ReaderRun): Line['o'] | undefined {
  return run.lines[run.lines.length - 1]?.o;
}

/** Wait for a run that should end by itself; its exit, or a failure naming its stderr. */
async function finished(run: ReaderRun, what: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const exit = await Promise.race([run.exited, sleep(RUN_MS).then(() => undefined)]);
  if (exit === undefined) throw new Error(`${what} did not end within ${RUN_MS / 1000} s; stderr:\n${run.stderr().slice(-3000)}`);
  return exit;
}

/** The lines that arrived in `[from, to]`. */
function between(run: ReaderRun, from: number, to: number): Line[] {
  return run.lines.filter((l) => l.at >= from && l.at <= to);
}

/** The stick folder of the job: `<stick>/ddferry/<rescue-id>`. */
function stickFolder(s: SlowScenario, stick: string): string {
  const { rescueId } = JSON.parse(readFileSync(join(s.job, 'job.json'), 'utf8')) as { rescueId: string };
  return join(stick, 'ddferry', rescueId);
}

function countTars(dir: string): number {
  try {
    return readdirSync(dir).filter((n) => /^piece-\d+\.tar$/.test(n)).length;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

describe('the reader stays alive while source reads hang (issue 12; real processes)', function () {
  this.timeout(300_000);
  let s: SlowScenario | undefined;
  let proxy: TcpProxy | undefined;

  afterEach(async function () {
    await killAll();
    await proxy?.close();
    proxy = undefined;
    await s?.close();
    s = undefined;
  });

  after(function () {
    if (figures.length > 0) console.log(`\n      measured:\n${figures.map((f) => `        ${f}`).join('\n')}`);
  });

  it('keeps --json lines, the link and ONE TCP connection alive through a 33 s hung read, every read made by the reading process (FUSE slow disk, LAN)', async function () {
    const HUNG = { pos: 6 * MiB, size: 64 * KiB, delayMs: 33_000, times: 1 };
    s = await fuseScenario({ size: 16 * MiB, bad: BAD16, slow: [HUNG], chunkSize: '4MiB', seed: 11 });
    const asm = await startAssembler(s);
    proxy = await TcpProxy.start(portOf(asm.url), (_dir, chunk) => ({ forward: chunk }));
    const r = runReader(s, proxy.url, { interval: INTERVAL });
    await slowReadStarted(s.fs!, HUNG.pos, 60_000);
    const hungAt = performance.now();
    const exit = await finished(r, 'the reader');
    const reads = await s.fs!.readLog();
    const hang = between(r, hungAt + 2000, hungAt + HUNG.delayMs - 2000);
    const gap = longestGap(r.lines);
    const byMain = reads.filter((x) => x.pid === r.pid).length;
    const byOthers = reads.filter((x) => x.pid !== r.pid && !r.readingPids.has(x.pid)).length;
    figure(`33 s hung read (FUSE, LAN): exit ${exit.code ?? exit.signal}; longest gap between --json lines ${seconds(gap.ms)}; ${hang.length} line(s) during the hang; `
      + `${proxy.connections} TCP connection(s); reading processes seen ${r.readingPids.size}; source reads by the main process ${byMain} of ${reads.length}`);

    expect(exit.code, `reader exit; stderr:\n${r.stderr()}`).to.equal(0);
    expect(r.readingPids.size, 'a child of the reader with __reading-process in its argv').to.be.at.least(1);
    expect([...r.pidFilePids].every((p) => r.readingPids.has(p)), `JOBDIR/reading.pid names a reading process (${[...r.pidFilePids].join(', ') || 'never seen'})`).to.equal(true);
    expect(r.pidFilePids.size, 'JOBDIR/reading.pid held the reading process\'s pid while it ran').to.be.at.least(1);
    expect(byMain, 'source reads made by the main process').to.equal(0);
    expect(byOthers, 'source reads made by a process that is not a reading process of this reader').to.equal(0);
    expect(gap.ms, `longest gap between --json lines (after ${JSON.stringify(gap.after)})`).to.be.at.most(GAP_BOUND_MS);
    expect(hang.length, 'lines during the hung read').to.be.at.least(20);
    for (const { o } of hang) {
      expect(o, 'the new keys are present').to.include.keys('reading', 'paused');
      expect(o.link, 'link').to.include.keys('since', 'lastError');
      expect(o.reading, `reading during the hang: ${JSON.stringify(o)}`).to.be.an('object');
      expect(o.reading!.pos < HUNG.pos + HUNG.size && HUNG.pos < o.reading!.pos + o.reading!.size, `reading ${JSON.stringify(o.reading)} is the hung read`).to.equal(true);
      expect(o.paused, 'not paused: reading').to.equal(null);
      expect(o.link!.state, 'link state during the hang').to.equal('connected');
      expect(o.link!.since).to.be.a('number');
    }
    const secs = hang.map(({ o }) => o.reading!.seconds);
    const since = hang.map(({ o }) => o.rescue?.sinceLastSuccess ?? -1);
    expect(secs.every((v, i) => i === 0 || v >= secs[i - 1]!), `reading.seconds grows: ${secs.join(' ')}`).to.equal(true);
    expect(secs[secs.length - 1], 'reading.seconds near the end of the hang').to.be.at.least(20);
    expect(since.every((v, i) => i === 0 || v >= since[i - 1]!), `rescue.sinceLastSuccess grows: ${since.join(' ')}`).to.equal(true);
    expect(since[since.length - 1], 'rescue.sinceLastSuccess near the end of the hang').to.be.at.least(20);
    expect(proxy.connections, 'TCP connections to the assembler over the whole run').to.equal(1);
    finalChecks(s, null);
  });

  it('keeps --json lines coming and shows each hung read of a --test-slow-reads source (stick trip)', async function () {
    s = testModeScenario({ size: 8 * MiB, bad: BAD8, slowReads: '3MiB+64KiB@8,5MiB+4KiB@8', chunkSize: '2MiB', seed: 12 });
    const stick = join(s.dir, 'stick');
    mkdirSync(stick);
    const r = runReader(s, stick, { interval: INTERVAL });
    const exit = await finished(r, 'the stick trip');
    const gap = longestGap(r.lines);
    const shown = r.lines.filter(({ o }) => o.reading && o.reading.seconds >= 3);
    figure(`hung reads of 8 s (--test-slow-reads, stick): exit ${exit.code ?? exit.signal}; longest gap ${seconds(gap.ms)}; lines showing a hung read ${shown.length}`);

    expect(exit.code, `stick trip exit; stderr:\n${r.stderr()}`).to.equal(0);
    expect(r.readingPids.size, 'a reading process').to.be.at.least(1);
    expect(gap.ms, `longest gap between --json lines (after ${JSON.stringify(gap.after)})`).to.be.at.most(GAP_BOUND_MS);
    const at = new Set(shown.map(({ o }) => (o.reading!.pos < 4 * MiB ? '3MiB' : '5MiB')));
    expect([...at].sort(), 'both hung reads shown in `reading`').to.deep.equal(['3MiB', '5MiB']);
    for (const { o } of shown) {
      expect(o.link, 'no link on a stick trip').to.equal(null);
      expect(o.stick).to.be.an('object');
      expect(o.paused, 'not paused while reading').to.equal(null);
    }
    importStick(s, stick);
    finalChecks(s);
  });

  it('exits within 3 s by SIGINT while a read hangs, with common.map true; the reading process ends by itself after its read; a resume completes the image (FUSE)', async function () {
    const HUNG = { pos: 8 * MiB, size: 64 * KiB, delayMs: 12_000, times: 1 };
    s = await fuseScenario({ size: 16 * MiB, bad: BAD16, slow: [HUNG], chunkSize: '4MiB', seed: 13 });
    const source = readFileSync(s.source);
    const asm = await startAssembler(s);
    const r = runReader(s, asm.url);
    await slowReadStarted(s.fs!, HUNG.pos, 60_000);
    const hungAt = performance.now();
    await sleep(1000);
    const before = await s.fs!.readLog();
    const reading = [...r.readingPids];
    const out = await signalAndTime(r, 'SIGINT', { capMs: CAP_MS });
    figure(`SIGINT 1 s into a 12 s hung read (FUSE, LAN): ${exitText(out)}`);

    expect(out.exit?.signal, `killed by SIGINT (exit ${JSON.stringify(out.exit)}); stderr:\n${r.stderr()}`).to.equal('SIGINT');
    expect(out.ms, 'ms from SIGINT to exit').to.be.at.most(EXIT_BOUND_MS);
    checkState(s, source);
    const lost = subtract(goodReads(before), rescuedBlocks(join(s.job, 'common.map')));
    expect(lost, `bytes read before the hang that common.map does not keep: ${ranges(lost)}`).to.have.length(0);
    expect(reading, 'a reading process held the hung read').to.have.length.at.least(1);
    await until('the abandoned reading process ending by itself after its read returned', HUNG.delayMs + 10_000 - (performance.now() - hungAt), () => reading.every((p) => processState(p) === undefined));
    const endedAfter = performance.now() - hungAt;
    figure(`the abandoned reading process ended ${seconds(endedAfter)} after its 12 s read started`);

    const again = runReader(s, asm.url);
    const exit = await finished(again, 'the resumed run');
    expect(exit.code, `resumed run; stderr:\n${again.stderr()}`).to.equal(0);
    finalChecks(s, null);
  });

  it('exits within 3 s by SIGINT when Ctrl-C reaches the whole process group while a --test-slow-reads read hangs', async function () {
    s = testModeScenario({ size: 8 * MiB, bad: BAD8, slowReads: '3MiB+64KiB@10', chunkSize: '2MiB', seed: 14 });
    const asm = await startAssembler(s);
    const r = runReader(s, asm.url, { detached: true });
    // in the hung read: `reading` says so, or (a reader without it) the --json lines stopped for 2.5 s
    await until('a --json line showing the hung read', 30_000, () => r.lines.some(({ o }) => (o.reading?.seconds ?? 0) >= 1)
      || (r.lines.length > 0 && performance.now() - r.lines[r.lines.length - 1]!.at > 2500));
    const out = await signalAndTime(r, 'SIGINT', { group: true, capMs: CAP_MS });
    figure(`Ctrl-C (SIGINT to the group) in a 10 s hung read (--test-slow-reads, LAN): ${exitText(out)}`);

    expect(out.exit?.signal, `killed by SIGINT (exit ${JSON.stringify(out.exit)}); stderr:\n${r.stderr()}`).to.equal('SIGINT');
    expect(out.ms, 'ms from Ctrl-C to exit').to.be.at.most(EXIT_BOUND_MS);
    expect(last(r)?.phase, 'the last --json line').to.equal('interrupted');
    checkState(s, readFileSync(s.source));
    await until('every reading process gone', 15_000, () => [...r.readingPids].every((p) => processState(p) === undefined));
  });

  it('says why reading is paused (spool full, no assembler) and exits within 3 s by SIGTERM, with common.map true', async function () {
    // 48 MiB: more than the spool and the 32 MiB of fresh pieces the reader keeps in memory
    s = plainScenario({ size: 48 * MiB, bad: BAD8, chunkSize: '8MiB', seed: 15 });
    const port = await closedPort();
    const r = runReader(s, `ws://127.0.0.1:${port}`, { interval: 0.5, extra: ['--spool-size', '1MiB'] });
    // paused: `paused` says so, or (a reader without it) the position and the spool stay still for 3 s with the spool used
    await until('reading paused with the spool full', 30_000, () => {
      if (r.lines.some(({ o }) => o.paused != null)) return true;
      const recent = between(r, performance.now() - 3000, performance.now());
      const first = recent[0]?.o;
      return first !== undefined && r.lines.length > 8 && first.spool.bytes > 0
        && recent.every(({ o }) => o.rescue?.ipos === first.rescue?.ipos && o.spool.bytes === first.spool.bytes);
    });
    const paused = [...r.lines].reverse().find(({ o }) => o.paused != null)?.o;
    const now = last(r)!;
    const out = await signalAndTime(r, 'SIGTERM', { capMs: CAP_MS });
    figure(`SIGTERM while paused (spool 1 MiB full, no assembler): ${exitText(out)}; paused ${JSON.stringify(paused?.paused)}; link ${JSON.stringify(now.link)}`);

    expect(paused?.paused, `a --json line with paused set; last line: ${JSON.stringify(now)}`).to.be.an('object');
    expect(['spool-full', 'link-down'], `paused.reason ${paused!.paused!.reason}`).to.include(paused!.paused!.reason);
    expect(paused!.paused!.text).to.be.a('string').and.not.equal('');
    expect(paused!.paused).to.include.keys('since');
    expect(now.link!.state, 'link state with no assembler').to.not.equal('connected');
    expect(now.link!.lastError, 'link.lastError with no assembler').to.be.a('string').and.not.equal('');
    expect(out.exit?.signal, `killed by SIGTERM (exit ${JSON.stringify(out.exit)}); stderr:\n${r.stderr()}`).to.equal('SIGTERM');
    expect(out.ms, 'ms from SIGTERM to exit').to.be.at.most(EXIT_BOUND_MS);
    checkState(s, readFileSync(s.source));
  });

  it('exits within 3 s by SIGINT while spooled pieces move onto a stick, common.map true over spool and stick; the next trip and an import complete the image', async function () {
    s = plainScenario({ size: 96 * MiB, bad: [[10 * MiB, 4096], [50 * MiB + 512, 1024]], chunkSize: '16MiB', seed: 16 });
    const source = readFileSync(s.source);
    // a LAN run with no assembler leaves everything in the local spool
    const fill = runReader(s, `ws://127.0.0.1:${await closedPort()}`);
    await until('everything read into the spool (phase draining)', 120_000, () => fill.lines.some(({ o }) => o.phase === 'draining'));
    const stopped = await signalAndTime(fill, 'SIGINT', { capMs: CAP_MS });
    expect(stopped.exit?.signal, `the LAN run stopped by SIGINT; stderr:\n${fill.stderr()}`).to.equal('SIGINT');
    const spooled = spoolPieces(s).length;
    expect(spooled, 'pieces left in the local spool').to.be.at.least(6);

    const stick = join(s.dir, 'stick');
    mkdirSync(stick);
    const folder = stickFolder(s, stick);
    const r = runReader(s, stick);
    let caught = false;
    for (const end = performance.now() + 60_000; performance.now() < end && r.exit === undefined;) {
      if (countTars(folder) >= 1 && countTars(join(s.job, 'spool')) >= 2) {
        caught = true;
        break;
      }
      await sleep(2);
    }
    expect(caught, `caught the move: a bundle on the stick while the spool still held pieces (stick ${countTars(folder)}, spool ${countTars(join(s.job, 'spool'))}); stderr:\n${r.stderr()}`).to.equal(true);
    const out = await signalAndTime(r, 'SIGINT', { capMs: CAP_MS });
    figure(`SIGINT while ${spooled} spooled pieces (8 MiB each) move onto a stick folder: ${exitText(out)}; `
      + `then ${countTars(join(s.job, 'spool'))} in the spool, ${countTars(folder)} on the stick`);

    expect(out.exit?.signal, `killed by SIGINT (exit ${JSON.stringify(out.exit)}); stderr:\n${r.stderr()}`).to.equal('SIGINT');
    expect(out.ms, 'ms from SIGINT to exit').to.be.at.most(EXIT_BOUND_MS);
    checkR1(rescuedBlocks(join(s.job, 'common.map')), [...spoolPieces(s, source), ...piecesIn(s, folder, source)], []);

    const trip = runReader(s, stick);
    const exit = await finished(trip, 'the next stick trip');
    expect(exit.code, `the next stick trip; stderr:\n${trip.stderr()}`).to.equal(0);
    importStick(s, stick);
    finalChecks(s);
  });

  it('waits for an earlier run\'s reading process still held by a read: ERR_SOURCE_BUSY with its pid, paused source-busy, Ctrl-C within 3 s, then goes on (FUSE)', async function () {
    const HUNG = { pos: 4 * MiB, size: 64 * KiB, delayMs: 15_000, times: 1 };
    s = await fuseScenario({ size: 16 * MiB, bad: BAD16, slow: [HUNG], chunkSize: '4MiB', seed: 17 });
    const asm = await startAssembler(s);
    const first = runReader(s, asm.url);
    await slowReadStarted(s.fs!, HUNG.pos, 60_000);
    await sleep(500);
    const out1 = await signalAndTime(first, 'SIGINT', { capMs: CAP_MS });
    const busy = [...first.readingPids].filter((p) => processState(p) !== undefined);
    figure(`source busy: SIGINT to the first run 0.5 s into a 15 s hung read: ${exitText(out1)}; reading processes still held: ${busy.join(', ') || 'none'}`);
    expect(out1.exit?.signal, `first run killed by SIGINT; stderr:\n${first.stderr()}`).to.equal('SIGINT');
    expect(busy, 'the first run\'s reading process still waits on its read').to.have.length(1);
    const pid = busy[0]!;
    const names = new RegExp(`ERR_SOURCE_BUSY\\b[^\\n]*\\b${pid}\\b`);

    const second = runReader(s, asm.url);
    const seen = await Promise.race([
      until('ERR_SOURCE_BUSY naming the busy pid', 10_000, () => names.test(second.stderr())).then(() => true, () => false),
      second.exited.then(() => false),
    ]);
    figure(`source busy: the second run ${seen ? 'printed' : 'did not print'} ERR_SOURCE_BUSY naming pid ${pid}; stderr: ${JSON.stringify(second.stderr().slice(0, 300))}`);
    expect(seen, `ERR_SOURCE_BUSY naming pid ${pid}; stderr:\n${second.stderr()}`).to.equal(true);
    await until('a --json line with paused.reason source-busy', 5000, () => second.lines.some(({ o }) => o.paused?.reason === 'source-busy'));
    const out2 = await signalAndTime(second, 'SIGINT', { capMs: CAP_MS });
    figure(`source busy: Ctrl-C while waiting: ${exitText(out2)}`);
    expect(out2.exit?.signal, 'the waiting run killed by SIGINT').to.equal('SIGINT');
    expect(out2.ms, 'ms from SIGINT to exit while waiting').to.be.at.most(EXIT_BOUND_MS);

    const heldAtStart = processState(pid) !== undefined;
    const third = runReader(s, asm.url);
    if (heldAtStart) await until('ERR_SOURCE_BUSY from the third run', 10_000, () => names.test(third.stderr()));
    const exit = await finished(third, 'the third run');
    expect(exit.code, `the third run goes on once the read returned; stderr:\n${third.stderr()}`).to.equal(0);
    const waiting = third.lines.filter(({ o }) => o.paused?.reason === 'source-busy');
    expect(waiting.every(({ o }) => o.reading === null), 'no read of its own while it waits').to.equal(true);
    if (heldAtStart) expect(waiting.length, 'the third run said it waits').to.be.at.least(1);
    finalChecks(s, null);
  });

  it('detects a frozen assembler (SIGSTOP) within 30 s while a read hangs, reconnects after SIGCONT, and completes the image (FUSE)', async function () {
    const HUNG = { pos: 10 * MiB, size: 64 * KiB, delayMs: 12_000, times: 1 };
    s = await fuseScenario({ size: 16 * MiB, bad: BAD16, slow: [HUNG], chunkSize: '4MiB', seed: 18 });
    const asm = await startAssembler(s);
    const r = runReader(s, asm.url);
    await until('the link connected and a piece merged', 60_000, () => (last(r)?.link?.merged ?? 0) >= 1 && last(r)?.link?.state === 'connected');
    const linkErrors = (): number => (r.stderr().match(/ERR_LINK/g) ?? []).length;
    const errorsBefore = linkErrors();
    asm.child.kill('SIGSTOP');
    const stoppedAt = performance.now();
    const hungNow = (await s.fs!.slowReads()).length > 0 && !(await s.fs!.readLog()).some((x) => x.offset === HUNG.pos);
    let detected: number | undefined;
    let down: number | undefined;
    try {
      await until('the dead link noticed', DEAD_LINK_BOUND_MS + 5000, () => {
        const t = performance.now() - stoppedAt;
        if (detected === undefined && linkErrors() > errorsBefore) detected = t;
        if (down === undefined && r.lines.some((l) => l.at > stoppedAt && l.o.link?.state !== 'connected')) down = t;
        return detected !== undefined && down !== undefined;
      });
    } catch {
      // measured below
    }
    figure(`frozen assembler (SIGSTOP${hungNow ? ' during a hung read' : ''}): ERR_LINK after ${seconds(detected)}, link.state left connected after ${seconds(down)}`);
    asm.child.kill('SIGCONT');
    const contAt = performance.now();
    expect(detected, `ERR_LINK printed; stderr:\n${r.stderr().slice(-2000)}`).to.not.equal(undefined);
    expect(detected, 'ms from SIGSTOP to ERR_LINK').to.be.at.most(DEAD_LINK_BOUND_MS);
    expect(down, 'ms from SIGSTOP to link.state leaving connected').to.be.at.most(DEAD_LINK_BOUND_MS);
    const downLine = r.lines.find((l) => l.at > stoppedAt && l.o.link?.state !== 'connected')!.o;
    expect(downLine.link!.lastError, `link.lastError once the link is down: ${JSON.stringify(downLine.link)}`).to.be.a('string').and.not.equal('');
    const back = await until('the link connected again after SIGCONT', RECONNECT_BOUND_MS + 5000, () => r.lines.some((l) => l.at > contAt && l.o.link?.state === 'connected') && performance.now() - contAt)
      .catch(() => undefined);
    figure(`frozen assembler: connected again ${seconds(back)} after SIGCONT`);
    expect(back, 'ms from SIGCONT to connected').to.not.equal(undefined);
    expect(back, 'ms from SIGCONT to connected').to.be.at.most(RECONNECT_BOUND_MS);
    const exit = await finished(r, 'the reader');
    expect(exit.code, `reader exit; stderr:\n${r.stderr()}`).to.equal(0);
    finalChecks(s, null);
  });

  for (const order of [['lan', 'stick', 'lan'], ['stick', 'lan', 'stick']] as const) {
    it(`never reads a byte again that was read and kept: ${order.join(', ')} runs cut by SIGINT in hung reads, into one image (FUSE, bad areas)`, async function () {
      await neverTwice(order, order[0] === 'lan' ? 19 : 20);
    });
  }

  /**
   * Runs in `order`; the first two are cut by SIGINT 0.5 s into a hung read (at 5 MiB,
   * then 11 MiB), the last runs to the end. Every FUSE read is given to its run by the
   * pid that made it (else by when it was logged). For each run: no byte it read was
   * `+` in common.map when it started (R4), none was read twice, and every byte it read
   * and got back before its exit is `+` in common.map after it (nothing read is lost).
   */
  async function neverTwice(order: readonly ('lan' | 'stick')[], seed: number): Promise<void> {
    const HUNG = [5 * MiB, 11 * MiB];
    s = await fuseScenario({ size: 16 * MiB, bad: BAD16, slow: HUNG.map((pos) => ({ pos, size: 64 * KiB, delayMs: 6000, times: 1 })), chunkSize: '4MiB', seed });
    const stick = join(s.dir, 'stick');
    mkdirSync(stick);
    const commonMap = join(s.job, 'common.map');
    const runs: Array<{ pids: Set<number>; from: number; exitAt: number; safe: Block[]; kind: string }> = [];
    for (const [k, kind] of order.entries()) {
      const from = (await s.fs!.readLog()).length;
      const safe = rescuedBlocks(commonMap);
      const asm = kind === 'lan' ? await startAssembler(s) : undefined;
      const r = runReader(s, asm?.url ?? stick);
      if (k < order.length - 1) {
        await slowReadStarted(s.fs!, HUNG[k]!, 90_000);
        await sleep(500);
        const out = await signalAndTime(r, 'SIGINT', { capMs: CAP_MS });
        figure(`${order.join(', ')}: run ${k + 1} (${kind}), SIGINT 0.5 s into a 6 s hung read: ${exitText(out)}`);
        expect(out.exit?.signal, `run ${k + 1} (${kind}) killed by SIGINT; stderr:\n${r.stderr()}`).to.equal('SIGINT');
      } else {
        const exit = await finished(r, `run ${k + 1} (${kind})`);
        expect(exit.code, `run ${k + 1} (${kind}); stderr:\n${r.stderr()}`).to.equal(0);
      }
      runs.push({ pids: new Set([r.pid, ...r.readingPids]), from, exitAt: (await s.fs!.readLog()).length, safe, kind });
      if (asm) {
        asm.child.kill('SIGTERM');
        const e = await asm.exited();
        expect(e.code, `assembler stopped by SIGTERM: ${asm.stderr()}`).to.equal(0);
      } else {
        importStick(s, stick);
      }
    }
    const log = await s.fs!.readLog();
    const owner = (i: number, x: FaultFsRead): number => {
      const byPid = runs.findIndex((run) => run.pids.has(x.pid));
      if (byPid >= 0) return byPid;
      let k = 0;
      while (k + 1 < runs.length && runs[k + 1]!.from <= i) ++k;
      return k;
    };
    const problems: string[] = [];
    let twiceBytes = 0;
    for (const [k, run] of runs.entries()) {
      const mine = log.map((x, i) => ({ x, i })).filter(({ x, i }) => owner(i, x) === k);
      const kept = mine.filter(({ i }) => i < run.exitAt).map(({ x }) => x);
      const after = k + 1 < runs.length ? runs[k + 1]!.safe : rescuedBlocks(commonMap);
      const again = overlap(goodReads(mine.map(({ x }) => x)), run.safe);
      const twice = readTwice(mine.map(({ x }) => x));
      const lost = subtract(goodReads(kept), after);
      twiceBytes += [...again, ...twice].reduce((n, [p, e]) => n + e - p, 0);
      if (again.length > 0) problems.push(`run ${k + 1} (${run.kind}) read again bytes common.map held as rescued when it started: ${ranges(again)}`);
      if (twice.length > 0) problems.push(`run ${k + 1} (${run.kind}) read the same bytes twice: ${ranges(twice)}`);
      if (lost.length > 0) problems.push(`run ${k + 1} (${run.kind}) read bytes before it exited that common.map does not keep after it: ${ranges(lost)}`);
    }
    figure(`${order.join(', ')}: ${log.length} source reads, ${twiceBytes} bytes read again that were kept; ${problems.length} problem(s)`);
    expect(problems, problems.join('\n')).to.deep.equal([]);
    finalChecks(s, null);
  }
});
