import { type FileHandle, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { SblockVector, formatMapfile, parseMapfile } from '@ddferry/mapfile';
import { type Piece, checkRealFolder, fileSystemTypeOf, readSafeFile } from '@ddferry/protocol';

import { ReaderError, errnoOf } from '../errors.js';
import { formatDdrescueCommands, formatDdrescueScript, IMAGE_START_MAP } from './chunk-commands.js';
import type { ChunkFileEntry } from './chunk-commands.js';
import { syncFolder } from '../durable-file.js';
import type { StickWriter } from './writer.js';

/**
 * `--format ddrescue-chunks`: pieces as chunk files that GNU ddrescue alone can merge
 * into the image on PC_B, with the commands written beside them.
 *
 * | file (in the rescue folder) | holds |
 * |---|---|
 * | `chunkCCCC-SSSSSS-NN.raw` | one span of piece SSSSSS of chunk CCCC: its extents, split where the gap between two is over `maxGap` |
 * | `…-NN.map` | the span's domain for `ddrescue -m`: `+` = its rescued bytes, in the coordinates of the `.raw` file |
 * | `…-NN.src.map` | packed files only: the same domain in source coordinates (for `ddferry-assembler import-ddrescue --packed`) |
 * | `ddrescue-image-start.map` | a GNU ddrescue mapfile of the whole source, all `?`: the image map's first version |
 * | `DDRESCUE-COMMANDS.txt`, `ddrescue-commands.sh` | what to run on PC_B, rewritten after each piece |
 * | `receipts/ddrescue-done.txt` | written on PC_B: one `….raw` per merged file (`readChunkFileReceipts`) |
 *
 * Layouts: **packed** (byte k of the file is source byte S+k, S the span's first byte,
 * zeros in the gaps; every file under `maxFileSize`, below FAT32's 4 GiB - 1) and
 * **sparse** (byte p of the file is source byte p; gaps are holes). `layoutForFileSystem`
 * decides from the folder's file system.
 */

/** Where a span file's bytes go: `packed` (from the span's first byte) or `sparse` (at their source positions). */
export type ChunkFileLayout = 'packed' | 'sparse';

/** File systems known to hold sparse files. Any other (vfat, exfat, ntfs, fuse*, fuseblk, network) gets packed files. */
const SPARSE_FILE_SYSTEMS: ReadonlySet<string> = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'tmpfs', 'f2fs', 'zfs', 'overlay']);

const MIB = 1024 * 1024;

/** The defaults of `ChunkFileOptions`. */
export const CHUNK_FILE_DEFAULTS = Object.freeze({
  /** Gaps up to this many bytes between extents stay inside one span file (zeros or a hole). */
  maxGap: MIB,
  /** Largest packed file: 4 GiB - 1 MiB, under FAT32's 4 GiB - 1. */
  maxFileSize: 4096 * MIB - MIB,
  /** What the maps' headers name as the command. */
  commandLine: 'ddferry-reader rescue --format ddrescue-chunks',
});

export interface ChunkFileOptions {
  readonly rescueId: string;
  /** Size of the source in bytes (the image map covers `[0, sourceSize)`). */
  readonly sourceSize: number;
  /** Chunks in the plan (sets the width of the chunk number in names). */
  readonly chunkCount: number;
  /** Size of the plan's chunks: no span is larger. */
  readonly chunkSize: number;
  readonly layout: ChunkFileLayout;
  /** Default `CHUNK_FILE_DEFAULTS.maxGap` (1 MiB). */
  readonly maxGap?: number;
  /** Packed files only. Default `CHUNK_FILE_DEFAULTS.maxFileSize` (4 GiB - 1 MiB). */
  readonly maxFileSize?: number;
  /** Default `CHUNK_FILE_DEFAULTS.commandLine`. */
  readonly commandLine?: string;
  /** Clock for the commands' header (tests pass a fixed one). */
  readonly now?: () => Date;
}

/** One extent (or part of one) of a span: `size` bytes at source position `pos`, from `dataOffset` in the piece's data. */
export interface SpanPart {
  readonly pos: number;
  readonly size: number;
  readonly dataOffset: number;
}

/** One span file's content: parts in ascending order, from the first part's `pos` to the last one's end. */
export interface Span {
  readonly pos: number;
  readonly end: number;
  readonly parts: readonly SpanPart[];
}

/** Zeros a packed span may hold beyond its data: small gaps (bad sectors among good ones) never split a span. */
const ZERO_ALLOWANCE = 16 * 1024;

/**
 * Group a piece's extents into spans. A new span starts where the gap to the previous
 * extent is over `maxGap`; for packed files also where the span's zeros (its gaps) would
 * outnumber its data by more than 16 KiB, so scattered reads never make mostly-zero files
 * (a packed span holds at most its data plus 16 KiB of zeros), and where an extent does not fit whole under
 * `maxFileSize` (an extent larger than that is cut). The spans cover every extent byte
 * once, in order.
 */
export function planSpans(extents: readonly { readonly pos: number; readonly size: number }[], o: { maxGap: number; maxFileSize: number; layout: ChunkFileLayout }): Span[] {
  const packed = o.layout === 'packed';
  const spans: Array<{ pos: number; end: number; parts: SpanPart[]; data: number; zeros: number }> = [];
  let dataOffset = 0;
  for (const e of extents) {
    let pos = e.pos;
    let left = e.size;
    while (left > 0) {
      let last = spans[spans.length - 1];
      const gap = last === undefined ? 0 : pos - last.end;
      const joins = last !== undefined && gap <= o.maxGap
        && (!packed || (last.zeros + gap <= last.data + Math.min(left, o.maxFileSize) + ZERO_ALLOWANCE && pos + left - last.pos <= o.maxFileSize));
      if (!joins || last === undefined) {
        last = { pos, end: pos, parts: [], data: 0, zeros: 0 };
        spans.push(last);
      }
      const n = packed ? Math.min(left, last.pos + o.maxFileSize - pos) : left;
      last.parts.push({ pos, size: n, dataOffset });
      last.zeros += pos - last.end;
      last.data += n;
      last.end = pos + n;
      pos += n;
      left -= n;
      dataOffset += n;
    }
  }
  return spans.map(({ pos, end, parts }) => ({ pos, end, parts }));
}

/** The chunk files' base name: `chunk0003-000123-01` (chunk as in `chunkMapName`, seq of six digits or more, span from 1). */
export function chunkFileBase(chunk: number, chunkCount: number, seq: number, span: number): string {
  const c = String(chunk).padStart(Math.max(4, String(Math.max(0, chunkCount - 1)).length), '0');
  return `chunk${c}-${String(seq).padStart(6, '0')}-${String(span).padStart(2, '0')}`;
}

/** A span file's name, with its chunk, seq and span. */
export const CHUNK_FILE_NAME = /^chunk(\d{4,15})-(\d{6,15})-(\d{2,9})\.raw$/;

/**
 * The layout for a file system type: sparse on ext2/3/4, xfs, btrfs, tmpfs, f2fs, zfs and
 * overlay; packed on everything else, FAT32 (`vfat`, `msdos`), exFAT, NTFS, every FUSE
 * mount (`fuse.*`, `fuseblk`) and an unknown type included: a packed file is correct on
 * any file system, a sparse one only where holes cost nothing.
 */
export function layoutForFileSystem(type: string | undefined): ChunkFileLayout {
  return type !== undefined && SPARSE_FILE_SYSTEMS.has(type) ? 'sparse' : 'packed';
}

/** The layout for the file system holding `folder`. */
export async function layoutForFolder(folder: string): Promise<ChunkFileLayout> {
  return layoutForFileSystem(await fileSystemTypeOf(folder));
}

/**
 * A domain mapfile of `[0, size)`: `+` over the parts shifted by `-base`, `?` elsewhere,
 * in GNU ddrescue's format (`ddrescue -m` takes it as is).
 */
export function formatSpanMap(parts: readonly SpanPart[], base: number, size: number, message: string, commandLine: string): Buffer {
  const blocks = new SblockVector(parts.length * 2 + 2);
  let at = 0;
  for (const p of parts) {
    const pos = p.pos - base;
    if (pos > at) blocks.push(at, pos, 0);
    if (blocks.length > 0 && blocks.code(blocks.length - 1) === 4 && blocks.end(blocks.length - 1) === pos) blocks.setLastEnd(pos + p.size);
    else blocks.push(pos, pos + p.size, 4);
    at = pos + p.size;
  }
  if (size > at) blocks.push(at, size, 0);
  return formatMapfile({ currentPos: 0, currentStatus: '+', currentPass: 1, blocks }, { program: 'ddferry', commandLine, startTime: '', message });
}

const RECEIPT_FILE = join('receipts', 'ddrescue-done.txt');
/** Largest receipts file read (a line per merged file). */
const MAX_RECEIPTS_BYTES = 64 * MIB;

/**
 * The files PC_B says it merged: the `….raw` names of `receipts/ddrescue-done.txt` in
 * `folder` (one per line, as DDRESCUE-COMMANDS.txt writes them; CR before LF allowed; lines
 * that are not a chunk file name are ignored), each with its companions `….map` and
 * `….src.map`, so a piece's `files` are all in the set once its spans are merged. An
 * absent file is an empty set.
 * @throws ReaderError `ERR_CHUNK_RECEIPTS` naming the file when it cannot be read or is over 64 MiB.
 */
export async function readChunkFileReceipts(folder: string): Promise<Set<string>> {
  const file = join(folder, RECEIPT_FILE);
  let text: string;
  try {
    // a link is never followed and a FIFO never waited on: PC_B's script writes a regular file
    await checkRealFolder(dirname(file), 'the receipts folder');
    text = (await readSafeFile(file, { maxBytes: MAX_RECEIPTS_BYTES, what: 'the receipts list' })).toString('latin1');
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return new Set();
    if (code === 'ERR_FILE_TOO_LARGE') {
      throw new ReaderError('ERR_CHUNK_RECEIPTS', file, `${file}: the receipts file has more than the ${MAX_RECEIPTS_BYTES} bytes a receipts file can have. Check that it is the one DDRESCUE-COMMANDS.txt writes, then run the same command again.`, { cause: err });
    }
    throw new ReaderError('ERR_CHUNK_RECEIPTS', file, `${file}: can't read the receipts of the chunk files (${(err as Error).message}). Check the stick (fsck it on PC_B) and that the file is the one DDRESCUE-COMMANDS.txt writes, then run the same command again.`, { cause: err });
  }
  const done = new Set<string>();
  for (const raw of text.split('\n')) {
    const name = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (!CHUNK_FILE_NAME.test(name)) continue;
    const base = name.slice(0, -'.raw'.length);
    done.add(name).add(`${base}.map`).add(`${base}.src.map`);
  }
  return done;
}

interface SpanFiles {
  readonly span: Span;
  readonly entry: ChunkFileEntry;
  /** [name, content] of its maps. */
  readonly maps: ReadonlyArray<readonly [string, Buffer]>;
}

/** A temporary name in the folder: `.NAME.tmp`, tidied by the next scan if a crash leaves it. */
function tmpName(name: string): string {
  return `.${name}.tmp`;
}

async function writeAll(fh: FileHandle, buf: Uint8Array, pos: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, pos + done);
    if (bytesWritten <= 0) throw new Error(`write returned ${bytesWritten}`);
    done += bytesWritten;
  }
}

const ZEROS = Buffer.alloc(MIB);

/**
 * The chunk-file `StickWriter` (`--format ddrescue-chunks`): each piece becomes span
 * files with their domain maps, and `DDRESCUE-COMMANDS.txt` and `ddrescue-commands.sh`
 * are rewritten to list every span file in the folder. Order of truth per piece: every
 * file written under `.NAME.tmp` and fsynced; the maps renamed, folder fsynced; the
 * `.raw` files renamed, folder fsynced (a `.raw` under its name always has its maps);
 * then the commands rewritten the same way.
 */
export class ChunkFileWriter implements StickWriter {
  readonly layout: ChunkFileLayout;
  readonly #o: Required<Omit<ChunkFileOptions, 'now'>> & { now: () => Date };
  /** Span files known per folder, by base name (scanned once, then kept up to date). */
  readonly #known = new Map<string, Map<string, ChunkFileEntry>>();
  readonly #notes = new Map<string, string[]>();

  constructor(options: ChunkFileOptions) {
    const o = { ...CHUNK_FILE_DEFAULTS, now: () => new Date(), ...options };
    for (const k of ['sourceSize', 'chunkCount', 'chunkSize', 'maxGap', 'maxFileSize'] as const) {
      if (!Number.isSafeInteger(o[k]) || o[k] < (k === 'maxGap' ? 0 : 1)) throw new RangeError(`ChunkFileWriter: ${k} ${o[k]} is not a positive integer`);
    }
    if (o.layout !== 'packed' && o.layout !== 'sparse') throw new TypeError(`ChunkFileWriter: layout ${String(o.layout)} is not packed or sparse`);
    this.#o = o;
    this.layout = o.layout;
  }

  /** A writer for the file system of `folder` (`layoutForFolder`), unless `layout` is given. */
  static async forFolder(folder: string, options: Omit<ChunkFileOptions, 'layout'> & { layout?: ChunkFileLayout }): Promise<ChunkFileWriter> {
    return new ChunkFileWriter({ ...options, layout: options.layout ?? (await layoutForFolder(folder)) });
  }

  #spans(piece: Piece): Span[] {
    return planSpans(piece.extents, { maxGap: this.#o.maxGap, maxFileSize: this.#o.maxFileSize, layout: this.layout });
  }

  #files(piece: Piece): SpanFiles[] {
    const o = this.#o;
    return this.#spans(piece).map((span, k) => {
      const base = chunkFileBase(piece.chunk, o.chunkCount, piece.seq, k + 1);
      const packed = this.layout === 'packed';
      const fileSize = packed ? span.end - span.pos : span.end;
      const dataBytes = span.parts.reduce((n, p) => n + p.size, 0);
      const range = `source bytes ${span.pos} to ${span.end} (${dataBytes} rescued)`;
      const srcMap = formatSpanMap(span.parts, 0, o.sourceSize, `Domain of ${base}.raw in source coordinates: ${range}`, o.commandLine);
      const maps: Array<[string, Buffer]> = packed
        ? [[`${base}.map`, formatSpanMap(span.parts, span.pos, fileSize, `Domain of ${base}.raw (packed: file byte k is source byte ${span.pos}+k): ${range}`, o.commandLine)], [`${base}.src.map`, srcMap]]
        : [[`${base}.map`, srcMap]];
      const entry: ChunkFileEntry = { base, chunk: piece.chunk, seq: piece.seq, span: k + 1, layout: this.layout, pos: span.pos, end: span.end, fileSize, dataBytes };
      return { span, entry, maps };
    });
  }

  /** The files `write` makes for `piece`, in order (a piece without data makes none: its statuses stay in PC_A's common.map). */
  names(piece: Piece): string[] {
    return this.#files(piece).flatMap((f) => [`${f.entry.base}.raw`, ...f.maps.map(([n]) => n)]);
  }

  /** Bytes `write` puts on the stick for `piece`, exactly (before rounding to the file system's block). */
  sizeOf(piece: Piece): number {
    return this.#files(piece).reduce((n, f) => n + (this.layout === 'packed' ? f.entry.fileSize : f.entry.dataBytes) + f.maps.reduce((m, [, b]) => m + b.length, 0), 0);
  }

  /**
   * At most the bytes the files of pieces holding `dataBytes` data and `ranges` extents
   * plus delta ranges (default 1) take, before rounding to the file system's block:
   * packed spans hold at most their data plus 16 KiB of zeros (`planSpans`); sparse files allocate
   * at most two more blocks of 4 KiB per extent; each span's maps take at most 1 KiB of
   * headers plus 192 bytes per range. `sizeOf(piece)` is exact once a piece is sealed.
   */
  estimate(dataBytes: number, ranges = 1): number {
    const r = Math.max(1, ranges);
    const extra = this.layout === 'packed' ? dataBytes + r * ZERO_ALLOWANCE : r * 8192;
    return dataBytes + extra + r * (1024 + 192);
  }

  /**
   * Write `piece`'s span files into `folder` (see the class), then rewrite the commands.
   * On failure, removes what it made of this piece and rethrows the error unchanged
   * (ENOSPC and EFBIG keep their `code`).
   */
  async write(piece: Piece, folder: string): Promise<{ files: string[]; bytes: number }> {
    const known = await this.#scan(folder);
    await this.#ensureImageStart(folder);
    const spans = this.#files(piece);
    if (spans.length === 0) return { files: [], bytes: 0 };
    const made: string[] = [];
    const temps: string[] = [];
    let bytes = 0;
    try {
      for (const f of spans) {
        for (const [name, content] of f.maps) {
          temps.push(tmpName(name));
          await this.#writeTemp(folder, tmpName(name), async (fh) => writeAll(fh, content, 0));
          bytes += content.length;
        }
      }
      for (const f of spans) {
        const name = `${f.entry.base}.raw`;
        temps.push(tmpName(name));
        await this.#writeTemp(folder, tmpName(name), async (fh) => this.#fillRaw(fh, f, piece.data));
        if (this.layout === 'packed') bytes += f.entry.fileSize;
        else bytes += Math.min(f.entry.fileSize, (await stat(join(folder, tmpName(name)))).blocks * 512);
      }
      for (const f of spans) {
        for (const [name] of f.maps) await this.#rename(folder, name, made);
      }
      await syncFolder(folder);
      for (const f of spans) await this.#rename(folder, `${f.entry.base}.raw`, made);
      await syncFolder(folder);
    } catch (err) {
      for (const name of [...temps, ...made]) await rm(join(folder, name), { force: true });
      throw err;
    }
    for (const f of spans) known.set(f.entry.base, f.entry);
    await this.refreshCommands(folder);
    return { files: spans.flatMap((f) => [`${f.entry.base}.raw`, ...f.maps.map(([n]) => n)]), bytes };
  }

  /**
   * Rewrite `DDRESCUE-COMMANDS.txt` and `ddrescue-commands.sh` for the span files now in
   * `folder` (after the stick spool deleted merged ones, say). Durable when it returns.
   */
  async refreshCommands(folder: string): Promise<void> {
    const known = await this.#scan(folder);
    const present = new Set(await readdir(folder));
    for (const base of [...known.keys()]) if (!present.has(`${base}.raw`)) known.delete(base);
    const entries = [...known.values()].sort((a, b) => a.chunk - b.chunk || a.seq - b.seq || a.span - b.span);
    const info = { rescueId: this.#o.rescueId, sourceSize: this.#o.sourceSize, writtenAt: this.#o.now(), notes: this.#notes.get(folder) ?? [] };
    for (const [name, text] of [['ddrescue-commands.sh', formatDdrescueScript(entries, info)], ['DDRESCUE-COMMANDS.txt', formatDdrescueCommands(entries, info)]] as const) {
      const content = Buffer.from(text, 'utf8');
      try {
        await this.#writeTemp(folder, tmpName(name), async (fh) => writeAll(fh, content, 0));
        await rename(join(folder, tmpName(name)), join(folder, name));
      } finally {
        await rm(join(folder, tmpName(name)), { force: true });
      }
    }
    await syncFolder(folder);
  }

  async #ensureImageStart(folder: string): Promise<void> {
    try {
      await stat(join(folder, IMAGE_START_MAP));
      return;
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
    const blocks = new SblockVector(1);
    blocks.push(0, this.#o.sourceSize, 0);
    const content = formatMapfile({ currentPos: 0, currentStatus: '?', currentPass: 1, blocks }, {
      program: 'ddferry', commandLine: this.#o.commandLine, startTime: '', message: `Image map of rescue ${this.#o.rescueId}: nothing merged yet (${this.#o.sourceSize} bytes)`,
    });
    try {
      await this.#writeTemp(folder, tmpName(IMAGE_START_MAP), async (fh) => writeAll(fh, content, 0));
      await rename(join(folder, tmpName(IMAGE_START_MAP)), join(folder, IMAGE_START_MAP));
    } finally {
      await rm(join(folder, tmpName(IMAGE_START_MAP)), { force: true });
    }
    await syncFolder(folder);
  }

  async #writeTemp(folder: string, tmp: string, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
    const fh = await open(join(folder, tmp), 'w');
    try {
      await fill(fh);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Packed: the span's bytes from its first one, zeros written in the gaps (FAT has no holes, and must not show old clusters). Sparse: each part at its source position. */
  async #fillRaw(fh: FileHandle, f: SpanFiles, data: Uint8Array): Promise<void> {
    const packed = this.layout === 'packed';
    let at = packed ? f.span.pos : 0;
    for (const p of f.span.parts) {
      if (packed) {
        while (at < p.pos) {
          const n = Math.min(ZEROS.length, p.pos - at);
          await writeAll(fh, ZEROS.subarray(0, n), at - f.span.pos);
          at += n;
        }
      }
      await writeAll(fh, data.subarray(p.dataOffset, p.dataOffset + p.size), packed ? p.pos - f.span.pos : p.pos);
      at = p.pos + p.size;
    }
  }

  async #rename(folder: string, name: string, made: string[]): Promise<void> {
    await rename(join(folder, tmpName(name)), join(folder, name));
    made.push(name);
  }

  /** The span files of `folder`, read once per folder: a `.raw` with its maps; stale temporaries removed. */
  async #scan(folder: string): Promise<Map<string, ChunkFileEntry>> {
    const had = this.#known.get(folder);
    if (had) return had;
    const known = new Map<string, ChunkFileEntry>();
    const notes: string[] = [];
    const names = await readdir(folder);
    const present = new Set(names);
    for (const name of names) {
      if (name.startsWith('.') && name.endsWith('.tmp') && (name.startsWith('.chunk') || name.startsWith('.DDRESCUE-') || name.startsWith('.ddrescue-'))) {
        await rm(join(folder, name), { force: true });
        continue;
      }
      const m = CHUNK_FILE_NAME.exec(name);
      if (!m) continue;
      const base = name.slice(0, -'.raw'.length);
      const packed = present.has(`${base}.src.map`);
      const file = join(folder, packed ? `${base}.src.map` : `${base}.map`);
      try {
        const map = parseMapfile(await readSafeFile(file, { maxBytes: MAX_RECEIPTS_BYTES, what: 'the span map' }), { file });
        let pos = -1;
        let end = 0;
        let dataBytes = 0;
        map.blocks.forEachBlock((p, e, code) => {
          if (code !== 4) return;
          if (pos < 0) pos = p;
          end = e;
          dataBytes += e - p;
        });
        if (pos < 0) throw new Error('it has no + block');
        const fileSize = (await stat(join(folder, name))).size;
        known.set(base, { base, chunk: Number(m[1]), seq: Number(m[2]), span: Number(m[3]), layout: packed ? 'packed' : 'sparse', pos, end, fileSize, dataBytes });
      } catch (err) {
        const code = errnoOf(err);
        if (code !== undefined && code !== 'ENOENT' && !code.startsWith('ERR_MAPFILE_') && !code.startsWith('ERR_FILE_')) throw err; // a stick that fails to read stops the writer
        notes.push(`${name} is not listed: its map ${file} cannot be used (${(err as Error).message}).`);
      }
    }
    this.#known.set(folder, known);
    this.#notes.set(folder, notes);
    return known;
  }
}
