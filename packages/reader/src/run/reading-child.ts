/**
 * The reading process: `ddferry-reader __reading-process`, started by the main process
 * of `rescue` (reading-process.ts). It opens the source read-only, runs GNU ddrescue's
 * algorithm over the domains it is given, and streams every read to the main process
 * before the next one starts (reading-messages.ts). It owns nothing else: no map file,
 * no spool, no link, no terminal. It ends when it is done, when told to stop, or when
 * the main process is gone (its stdin closes, its writes fail, or its parent changes);
 * a read still in the kernel when that happens is waited out, then the process ends.
 */
import { type Block, Domain, type MapfileStatus, type SblockVector, StatusMap, normalizeForRescue, parseMapfile } from '@ddferry/mapfile';

import { doRescue } from '../engine/do-rescue.js';
import { MapfileUpdater } from '../engine/mapfile-updater.js';
import type { RescueReporter } from '../engine/reporter.js';
import { Rescuebook } from '../engine/rescuebook.js';
import type { RescueSink } from '../engine/sink.js';
import { allocAligned } from '../source/aligned-buffer.js';
import { removeReadingPid } from '../job/reading-pid.js';
import { BlockingSource } from '../source/blocking-source.js';
import { openSource } from '../source/open-source.js';
import type { ByteReader } from '../used/byte-reader.js';
import { findUsedSpace } from '../used/used-space.js';
import { FrameWriter } from './frame-writer.js';
import { domainOf } from './reading-domain.js';
import { type EngineState, type ReadingControl, type ReadingInit, decodeControl } from './reading-messages.js';

/** The control lines from the main process, one at a time. */
class ControlReader {
  #text = '';
  readonly #queue: ReadingControl[] = [];
  #waiter: (() => void) | null = null;
  onMessage: ((c: ReadingControl) => void) | null = null;

  constructor(input: NodeJS.ReadableStream) {
    input.setEncoding?.('utf8');
    input.on('data', (chunk: string) => {
      this.#text += chunk;
      for (let nl = this.#text.indexOf('\n'); nl >= 0; nl = this.#text.indexOf('\n')) {
        const line = this.#text.slice(0, nl);
        this.#text = this.#text.slice(nl + 1);
        const c = decodeControl(line);
        if (this.onMessage) this.onMessage(c);
        else this.#queue.push(c);
        const w = this.#waiter;
        this.#waiter = null;
        w?.();
      }
    });
    // the main process is gone: nothing more will be read from the source
    input.on('end', () => process.exit(0));
    input.on('error', () => process.exit(0));
  }

  async next(): Promise<ReadingControl> {
    for (;;) {
      const c = this.#queue.shift();
      if (c) return c;
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
      });
    }
  }
}

/** The code of a finished block in a map's walk. */
const FINISHED_CODE = 4;

/** Run the reading process; it ends the process itself. */
export async function runReadingProcess(): Promise<void> {
  const parent = process.ppid;
  const out = new FrameWriter(3);
  const control = new ControlReader(process.stdin);
  const first = await control.next();
  if (first.kind !== 'init') throw new Error(`internal: the reading process expected init, got ${first.kind}`);
  const init: ReadingInit = first;
  const pidFile = init.pidFile;
  if (pidFile !== undefined) process.on('exit', () => removeReadingPid(pidFile, process.pid));
  let opened;
  try {
    opened = await openSource(init.source, { direct: init.options.directIn, testMap: init.testMap });
  } catch (err) {
    out.event({ kind: 'failed', code: (err as { code?: string }).code ?? 'ERR_SOURCE_OPEN', message: (err as Error).message });
    out.flush();
    process.exit(1);
  }
  const { source, testSource } = opened;
  out.event({ kind: 'opened', identity: source.identity, size: source.size });
  out.flush();
  const go = await control.next();
  if (go.kind !== 'start') process.exit(0);

  let granted = init.grant;
  let grantWaiter: (() => void) | null = null;
  control.onMessage = (c) => {
    if (c.kind === 'stop') {
      out.flush();
      process.exit(0);
    } else if (c.kind === 'grant') {
      granted = Math.max(granted, c.total);
      const w = grantWaiter;
      grantWaiter = null;
      w?.();
    }
  };

  const o = init.options;
  const readMax = o.cluster * o.hardbs;
  void readMax;
  // a simulated slow disk blocks every read it judges, good or bad (test mode judges bad reads without reading)
  const slow = init.slowReads !== undefined && init.slowReads.length > 0 ? new BlockingSource(source, init.slowReads) : null;
  let rb: Rescuebook | undefined;
  /** In scan mode: where the data of the read the scan asked lands (its copy). */
  let collect: ((pos: number, data: Uint8Array) => void) | undefined;
  const state = (): EngineState => ({ currentPos: rb!.currentPos, currentStatus: rb!.currentStatus, currentPass: rb!.currentPass, message: rb!.currentMessage });
  const sink: RescueSink = {
    async write(pos, data) {
      if (granted - out.sent < data.length) {
        // the spool or the stick has no room for this read's data: wait before sending it (everything
        // before it is sent, so the main process can seal and store what it holds)
        out.event({ kind: 'waiting', sent: out.sent });
        out.flush();
        while (granted - out.sent < data.length) {
          await new Promise<void>((resolve) => {
            grantWaiter = resolve;
          });
        }
      }
      out.data(pos, data);
      collect?.(pos, data);
    },
    statusChanged(pos, size, status) {
      out.status(pos, size, status);
    },
    sync() {
      out.flush();
    },
    finish() {
      out.flush();
      return null;
    },
    close() {
      return null;
    },
  };
  const reporter: RescueReporter = {
    phaseStarted: (elapsed, percent, message) => out.event({ kind: 'phase', elapsed, percent, message }),
    readDone: (pos, size, copied, error) => {
      if (init.readDone) out.readDone(pos, size, copied, error);
    },
    statusRefreshed: (refresh) => out.event({ kind: 'refresh', refresh, state: state() }),
    echo: (message) => out.event({ kind: 'echo', message }),
    endOfRun: (elapsed, percent, currentPos, statusName) => out.event({ kind: 'endOfRun', elapsed, percent, currentPos, statusName }),
  };
  const clock = (): number => Math.floor(Date.now() / 1000);
  const updater = new MapfileUpdater({
    path: 'common.map', commandLine: '', startTime: '', saveInterval: o.mapfileSaveInterval, syncInterval: o.mapfileSyncInterval, clock,
    save: async (snapshot, _backup, force) => {
      out.event({ kind: 'save', state: { currentPos: snapshot.currentPos, currentStatus: snapshot.currentStatus, currentPass: snapshot.currentPass, message: snapshot.message }, force });
      out.flush();
    },
  });
  const iobuf = allocAligned(readMax + o.hardbs, Math.max(4096, o.hardbs));
  let blocks = parseMapfile(init.mapText, { file: 'common.map' }).blocks;
  let st: { currentPos: number; currentStatus: MapfileStatus; currentPass: number } = { ...init.state };
  const engine = (domain: Domain, v: SblockVector, saves: boolean): Rescuebook => {
    const norm = normalizeForRescue(v, { insize: init.insize, hardbs: o.hardbs, domain, file: 'common.map' });
    return new Rescuebook({
      source, testSource, sink, reporter, map: new StatusMap(norm.blocks), domain: norm.domain, insize: init.insize, offset: 0,
      ...st, mapfile: saves ? updater : undefined, options: o, iobuf, clock, startTime: init.startTime,
      // the main process went away: stop at the next read (nothing after this is kept)
      interrupted: () => process.ppid !== parent,
      sleep: (sec) => new Promise((resolve) => setTimeout(resolve, sec * 1000)),
      beforeRead: (pos, size) => {
        out.read(pos, size);
        out.flush();
        slow?.block(pos, size);
      },
    });
  };
  if (init.scan === true) {
    // what the scan asks is rescued like anything else (pieces, the common map); the scan gets a copy
    const reader: ByteReader = {
      size: init.insize,
      sectorSize: o.hardbs,
      async read(pos, size) {
        const want: Block = { pos, size };
        let known = false;
        new StatusMap(blocks).forEachBlock((p, end, code) => {
          if (p < pos + size && end > pos && code !== 0) known = true;
        });
        // a range tried before is never read again: its data went to PC_B (the scan counts it as used)
        if (known) return null;
        const buf = new Uint8Array(size);
        collect = (p, data) => {
          const from = Math.max(p, pos);
          const to = Math.min(p + data.length, pos + size);
          if (to > from) buf.set(data.subarray(from - p, to - p), from - pos);
        };
        rb = engine(Domain.fromOptions(want.pos, want.size), blocks, false);
        await doRescue(rb);
        collect = undefined;
        blocks = rb.map.toVector();
        st = { currentPos: rb.currentPos, currentStatus: rb.currentStatus, currentPass: rb.currentPass };
        let whole = true;
        rb.map.forEachBlock((p, end, code) => {
          if (p < pos + size && end > pos && code !== FINISHED_CODE) whole = false;
        });
        return whole ? buf : null;
      },
    };
    const used = await findUsedSpace(reader);
    out.event({ kind: 'usedSpace', used });
  } else {
    for (const [index, d] of init.domains.entries()) {
      out.event({ kind: 'domainStart', index });
      rb = engine(domainOf(d), blocks, true);
      const truncatedAt = rb.map.extent().size;
      const outcome = await doRescue(rb);
      if (rb.map.extent().size < truncatedAt) out.event({ kind: 'truncate', end: rb.map.extent().size });
      out.event({ kind: 'domainDone', outcome: { status: outcome.status, interrupted: outcome.interrupted, messages: outcome.messages, finalMessage: outcome.finalMessage }, state: state() });
      if (outcome.status !== 0 || outcome.interrupted) break;
      blocks = rb.map.toVector();
      st = { currentPos: rb.currentPos, currentStatus: rb.currentStatus, currentPass: rb.currentPass };
    }
  }
  out.event({ kind: 'done' });
  out.flush();
  source.close();
  process.exit(0);
}
