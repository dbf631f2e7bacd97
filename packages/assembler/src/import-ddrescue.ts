/**
 * `ddferry-assembler import-ddrescue`: merge into an image a chunk file made by
 * hand with GNU ddrescue on PC_A,
 * `ddrescue -m chunkNN.map SOURCE chunkNN.raw common.map`, as
 * `ddrescue -m chunkNN.map chunkNN.raw IMAGE IMAGE.map` would, but durable and
 * forward-only.
 *
 * | what | rule |
 * |---|---|
 * | domain | the `+` blocks of the chunk map (ddrescue's `-m`), inside the source |
 * | bytes taken | the domain ∩ the `+` blocks of COMMON.map (with `--map`), else the whole domain (warned: holes of a sparse chunk file read as zeros) |
 * | bytes written | those of them not `+` in IMAGE.map yet (the first rescued copy wins, A3) |
 * | other statuses | COMMON.map's `- / * ?` inside the domain are raised in IMAGE.map, forward only; outside the domain nothing changes |
 * | order of truth | `Image.commit` per batch of `batchBytes`: write, one fsync, raise statuses, save IMAGE.map (A1) |
 * | twice | the second run finds `+` where the first wrote and writes nothing (A2) |
 *
 * Chunk file layouts: *sparse* (ddrescue's: byte at source position p sits at
 * offset p of the file) or *packed* (byte k is source byte domainStart + k,
 * domainStart being the position of the first `+` block of the chunk map: for
 * file systems without sparse files).
 */
import { readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import type { Block, BlockStatus, Mapfile } from '@ddferry/mapfile';
import { Domain, MapfileError, parseMapfile, UNBOUNDED } from '@ddferry/mapfile';
import { openSafeFile, readSafeFile } from '@ddferry/protocol';

import type { CliIo } from './cli-io.js';
import { AssemblerError, errnoOf, messageOf } from './errors.js';
import type { Copy } from './image.js';
import { Image } from './image.js';

const MIB = 1024 * 1024;

/** Options of `importDdrescueChunk`. */
export interface ImportDdrescueOptions {
  /** The chunk file (`chunkNN.raw`). */
  readonly chunkFile: string;
  /** The chunk's domain mapfile (`chunkNN.map`); its `+` blocks are the domain. */
  readonly domainMap: string;
  /** PC_A's common mapfile; without it the whole domain counts as rescued. Default none. */
  readonly commonMap?: string | undefined;
  /** `commonMap` already read (several chunks of one rescue read it once); named as `commonMap` in messages. Default: read `commonMap`. */
  readonly commonMapfile?: Mapfile | undefined;
  /** The chunk file holds the domain from its offset 0 (see the module comment). Default false: sparse. */
  readonly packed?: boolean | undefined;
  /** Bytes written per fsync and IMAGE.map save. Default 256 MiB. */
  readonly batchBytes?: number | undefined;
  /** Checked between batches: an abort stops after the batch in progress is saved. */
  readonly signal?: AbortSignal | undefined;
  /** Warnings for the user (the CLI prints them on stderr). Default none. */
  readonly warn?: ((message: string) => void) | undefined;
}

export const IMPORT_DDRESCUE_DEFAULTS = Object.freeze({ batchBytes: 256 * MIB, packed: false });

/** What an import did. */
export interface ImportDdrescueResult {
  /** Source size (IMAGE.map's extent). */
  readonly sourceSize: number;
  /** Bytes in the domain. */
  readonly domainBytes: number;
  /** Bytes taken as rescued (domain ∩ COMMON.map's `+`, or the domain). */
  readonly rescuedBytes: number;
  /** Bytes written into the image now. */
  readonly writtenBytes: number;
  /** Rescued bytes skipped because IMAGE.map had them `+` already. */
  readonly keptBytes: number;
  /** Domain bytes whose non-`+` status came from COMMON.map. */
  readonly statusBytes: number;
  /** Commits (fsync + IMAGE.map save) made. */
  readonly batches: number;
}

interface Range {
  readonly pos: number;
  readonly end: number;
}

interface StatusRange {
  readonly pos: number;
  readonly size: number;
  readonly status: BlockStatus;
}

/** The `+` blocks of `map`, or its blocks of other statuses, as ranges cropped to `domain`. */
function splitByDomain(map: Mapfile, domain: Domain): { finished: Range[]; others: StatusRange[] } {
  const finished: Range[] = [];
  const others: StatusRange[] = [];
  const blocks = map.blocks.compact();
  let d = 0;
  for (let i = 0; i < blocks.length; ++i) {
    const pos = blocks.pos(i);
    const end = blocks.end(i);
    const status = blocks.status(i);
    while (d < domain.blocks.length && domain.blocks[d]!.pos + domain.blocks[d]!.size <= pos) ++d;
    for (let k = d; k < domain.blocks.length && domain.blocks[k]!.pos < end; ++k) {
      const b = domain.blocks[k]!;
      const p = Math.max(pos, b.pos);
      const e = Math.min(end, b.pos + b.size);
      if (p >= e) continue;
      if (status === '+') {
        const last = finished[finished.length - 1];
        if (last !== undefined && last.end === p) finished[finished.length - 1] = { pos: last.pos, end: e };
        else finished.push({ pos: p, end: e });
      } else {
        others.push({ pos: p, size: e - p, status });
      }
    }
  }
  return { finished, others };
}

function sizeOfRanges(ranges: readonly Range[]): number {
  let n = 0;
  for (const r of ranges) n += r.end - r.pos;
  return n;
}

/** `ranges` cropped to `[0, end)`. */
function cropRanges(ranges: readonly Range[], end: number): Range[] {
  const out: Range[] = [];
  for (const r of ranges) {
    if (r.pos >= end) break;
    out.push({ pos: r.pos, end: Math.min(r.end, end) });
  }
  return out;
}

function describeStatuses(others: readonly StatusRange[]): string {
  const by = new Map<string, number>();
  for (const o of others) by.set(o.status, (by.get(o.status) ?? 0) + o.size);
  return [...by].map(([s, n]) => `${n} bytes '${s}'`).join(', ');
}

/** One chunk file checked against the image, its copies not yet committed. */
interface PreparedChunk {
  readonly options: ImportDdrescueOptions;
  readonly handle: FileHandle;
  readonly copies: readonly Range[];
  readonly statuses: readonly StatusRange[];
  readonly read: (buf: Uint8Array, pos: number) => Promise<void>;
  readonly readSync: (buf: Uint8Array, pos: number) => void;
  readonly result: Omit<ImportDdrescueResult, 'writtenBytes' | 'batches'>;
}

/** `ranges` (sorted) without the bytes of `taken` (any order); returns the bytes removed too. */
function subtractRanges(ranges: readonly Range[], taken: readonly Range[]): { left: Range[]; removed: number } {
  if (taken.length === 0) return { left: [...ranges], removed: 0 };
  const cut = [...taken].sort((a, b) => a.pos - b.pos);
  const left: Range[] = [];
  let removed = 0;
  let k = 0;
  for (const r of ranges) {
    let pos = r.pos;
    while (k < cut.length && cut[k]!.end <= pos) ++k;
    for (let j = k; j < cut.length && cut[j]!.pos < r.end && pos < r.end; ++j) {
      const c = cut[j]!;
      if (c.pos > pos) left.push({ pos, end: Math.min(c.pos, r.end) });
      const next = Math.max(pos, Math.min(c.end, r.end));
      removed += next - Math.max(pos, c.pos) > 0 ? next - Math.max(pos, c.pos) : 0;
      pos = Math.max(pos, next);
    }
    if (pos < r.end) left.push({ pos, end: r.end });
  }
  return { left, removed };
}

/**
 * Check one chunk file against the image and find what it brings (see the
 * module comment): its copies, minus bytes `+` in IMAGE.map or in `pending`
 * (copies of chunks before it, not committed yet: the first copy wins). The
 * image is adopted; the chunk file stays open for the copies.
 */
async function prepareChunk(image: Image, options: ImportDdrescueOptions, packed: boolean, pending: readonly Range[]): Promise<PreparedChunk> {
  const o = { packed };
  const warn = options.warn ?? ((): void => undefined);

  const domainMap = await readMapfileSafely(options.domainMap);
  const common = options.commonMap === undefined ? undefined : options.commonMapfile ?? await readMapfileSafely(options.commonMap);
  let domain = Domain.fromOptions(0, UNBOUNDED, domainMap.blocks);
  if (domain.isEmpty()) {
    throw new AssemblerError('ERR_DOMAIN_EMPTY', options.domainMap, 'The domain mapfile has no `+` block, so no byte of the chunk file is inside the domain. Give the chunk\'s own domain mapfile (chunkNN.map, as given to ddrescue -m).');
  }

  const sourceSize = sourceSizeOf(image, options, domainMap, common);
  if (domain.end > sourceSize && !(domain.end === UNBOUNDED && domain.blocks[domain.blocks.length - 1]!.pos < sourceSize)) {
    throw new AssemblerError('ERR_DOMAIN_OUTSIDE_SOURCE', options.domainMap, `The domain ends at byte ${domain.end}, past the end of the source (${sourceSize} bytes, the size of ${options.commonMap ?? image.mapPath}). Give the domain mapfile of a chunk of this source.`);
  }
  domain = domain.crop({ pos: 0, size: sourceSize });
  const chunkExtent = extentOf(domainMap);
  const lastStatus = domainMap.blocks.length > 0 ? domainMap.blocks.status(domainMap.blocks.length - 1) : '+';
  if (chunkExtent.pos === 0 && chunkExtent.size !== sourceSize && lastStatus !== '+') {
    warn(`${options.domainMap} describes a source of ${chunkExtent.size} bytes, but the source has ${sourceSize} (${options.commonMap ?? image.mapPath}): is it a chunk map of this rescue? Only its '+' blocks are used.`);
  }
  image.adopt(sourceSize);

  const split = common === undefined ? { finished: domain.blocks.map((b) => ({ pos: b.pos, end: b.pos + b.size })), others: [] } : splitByDomain(common, domain);
  let rescued = split.finished;
  const domainStart = domain.pos;
  const domainBytes = domain.inSize();

  const handle = await openChunkFile(options.chunkFile, image);
  try {
    const st = await handle.stat();
    const fileEnd = o.packed ? domainStart + st.size : st.size;
    const needEnd = rescued.length === 0 ? 0 : rescued[rescued.length - 1]!.end;
    if (needEnd > fileEnd) {
      if (common !== undefined || o.packed) {
        const what = common !== undefined ? `${options.commonMap} marks bytes up to ${needEnd} rescued inside the domain` : `the domain ends at byte ${needEnd}`;
        const layout = o.packed ? `a packed chunk file must hold ${needEnd - domainStart} bytes (the domain from byte ${domainStart})` : `a chunk file holds each byte at its source position`;
        throw new AssemblerError('ERR_CHUNK_FILE_SHORT', options.chunkFile, `The file has ${st.size} bytes, but ${what}, and ${layout}. The copy was cut short (a full stick?): copy the chunk file again from PC_A${o.packed ? '' : ', or check that it is not a packed file (--packed)'}.`);
      }
      warn(`${options.chunkFile} ends at byte ${fileEnd}, before the domain's end (${needEnd}): bytes ${fileEnd} to ${needEnd} are not imported (ddrescue -m does the same). Give --map COMMON.map to know what was rescued.`);
      rescued = cropRanges(rescued, fileEnd);
    }
    if (o.packed && st.size > domain.end - domainStart) {
      warn(`${options.chunkFile} has ${st.size} bytes, more than the domain's extent (${domain.end - domainStart} bytes from byte ${domainStart}): is it the packed file of this chunk?`);
    }
    const rescuedBytes = sizeOfRanges(rescued);
    if (common === undefined) {
      const allocated = st.blocks * 512;
      const holes = rescuedBytes > allocated ? ` The file has only ${allocated} bytes allocated on disk for ${rescuedBytes} bytes taken: at least ${rescuedBytes - allocated} bytes are holes, which read as zeros and are marked rescued.` : '';
      warn(`no --map: the whole domain of ${options.domainMap} (${rescuedBytes} bytes) is taken as rescued. Holes of a sparse chunk file read as zeros, so sectors ddrescue could not read become zeros marked '+' in ${image.mapPath}.${holes} Give --map COMMON.map (PC_A's mapfile) to take only what ddrescue rescued.`);
    }

    const seen: Range[] = [];
    let keptBytes = 0;
    for (const r of rescued) {
      image.forEachStatus({ pos: r.pos, size: r.end - r.pos }, (pos, end, status) => {
        if (status === '+') {
          keptBytes += end - pos;
          return;
        }
        const last = seen[seen.length - 1];
        if (last !== undefined && last.end === pos) seen[seen.length - 1] = { pos: last.pos, end };
        else seen.push({ pos, end });
      });
    }
    const { left: copies, removed } = subtractRanges(seen, pending);
    keptBytes += removed;
    const fileOffset = o.packed ? domainStart : 0;
    return {
      options, handle, copies, statuses: split.others,
      read: async (buf, pos) => readFully(handle, buf, pos - fileOffset, options.chunkFile, pos),
      readSync: (buf, pos) => readFullySync(handle.fd, buf, pos - fileOffset, options.chunkFile, pos),
      result: { sourceSize, domainBytes, rescuedBytes, keptBytes, statusBytes: sizeOfRanges(split.others.map((x) => ({ pos: x.pos, end: x.pos + x.size }))) },
    };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Options shared by the chunks of `importDdrescueChunks`. */
export interface ImportDdrescueChunksOptions {
  /** PC_A's common mapfile, for every chunk; read once. Default none. */
  readonly commonMap?: string | undefined;
  /** `commonMap` already read. Default: read `commonMap`. */
  readonly commonMapfile?: Mapfile | undefined;
  /** See `ImportDdrescueOptions.packed`, for every chunk. */
  readonly packed?: boolean | undefined;
  /** Bytes written per fsync and IMAGE.map save, chunks put together. Default 256 MiB. */
  readonly batchBytes?: number | undefined;
  /** Most chunk files in one batch (each is open until its batch is committed). Default 64. */
  readonly batchFiles?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly warn?: ((message: string) => void) | undefined;
  /** Told of each chunk once all it brought is durable, in order. */
  readonly onChunk?: ((chunk: { readonly chunkFile: string; readonly domainMap: string }, result: ImportDdrescueResult) => void) | undefined;
}

/**
 * Merge several chunk files into `image`, in order, as `importDdrescueChunk`
 * of each one after the other would (a byte in two of them is taken from the
 * first), but with their copies put together into commits of `batchBytes`
 * (one fsync and one IMAGE.map save each) instead of at least one per file.
 * A chunk that is refused stops the run after the chunks before it are made
 * durable.
 * @returns one result per chunk; `batches` counts the commits that held some of it.
 * @throws the errors of `importDdrescueChunk`.
 */
export async function importDdrescueChunks(image: Image, chunks: readonly { readonly chunkFile: string; readonly domainMap: string }[], options: ImportDdrescueChunksOptions = {}): Promise<ImportDdrescueResult[]> {
  const o = { ...IMPORT_DDRESCUE_DEFAULTS, batchFiles: 64, ...definedOf(options) };
  if (!Number.isSafeInteger(o.batchBytes) || o.batchBytes <= 0) throw new RangeError(`batchBytes must be a positive integer, not ${String(o.batchBytes)}`);
  if (!Number.isSafeInteger(o.batchFiles) || o.batchFiles <= 0) throw new RangeError(`batchFiles must be a positive integer, not ${String(o.batchFiles)}`);
  const warn = options.warn ?? ((): void => undefined);
  const commonMapfile = options.commonMap === undefined ? undefined : options.commonMapfile ?? await readMapfileSafely(options.commonMap);
  const results: ImportDdrescueResult[] = [];

  interface Open { readonly chunk: PreparedChunk; left: number; queued: boolean; written: number; batches: number }
  const open: Open[] = [];
  let copies: Copy[] = [];
  let pending: Range[] = [];
  let statuses: StatusRange[] = [];
  let bytes = 0;
  let commits = 0;
  let inBatch = new Set<Open>();

  /** Commit what is gathered, then close and report the chunks it finished. */
  const commit = async (): Promise<void> => {
    options.signal?.throwIfAborted();
    const batch = { writes: [], copies, statuses, pieces: [] };
    await image.exclusive(() => image.commit(batch));
    ++commits;
    for (const x of inBatch) ++x.batches;
    copies = [];
    pending = [];
    statuses = [];
    bytes = 0;
    inBatch = new Set();
    while (open.length > 0 && open[0]!.queued && open[0]!.left === 0) {
      const x = open.shift()!;
      await x.chunk.handle.close();
      const { options: c, statuses: st } = x.chunk;
      if (st.length > 0) warn(`${c.commonMap} has, inside the domain, ${describeStatuses(st)}: raised in ${image.mapPath} where they move statuses forward.`);
      const result = { ...x.chunk.result, writtenBytes: x.written, batches: x.batches };
      results.push(result);
      options.onChunk?.({ chunkFile: c.chunkFile, domainMap: c.domainMap }, result);
    }
  };

  try {
    for (const c of chunks) {
      let chunk: PreparedChunk;
      try {
        chunk = await prepareChunk(image, { ...c, commonMap: options.commonMap, commonMapfile, warn }, o.packed, pending);
      } catch (err) {
        if (copies.length > 0 || statuses.length > 0 || open.length > 0) await commit();
        throw err;
      }
      const x: Open = { chunk, left: sizeOfRanges(chunk.copies), queued: false, written: 0, batches: 0 };
      open.push(x);
      if (inBatch.size >= o.batchFiles) await commit();
      inBatch.add(x);
      statuses.push(...chunk.statuses);
      for (const r of chunk.copies) {
        for (let pos = r.pos; pos < r.end;) {
          if (bytes === o.batchBytes) {
            await commit();
            inBatch.add(x);
          }
          const take = Math.min(r.end - pos, o.batchBytes - bytes);
          copies.push({ pos, size: take, read: chunk.read, readSync: chunk.readSync });
          pending.push({ pos, end: pos + take });
          bytes += take;
          x.left -= take;
          x.written += take;
          pos += take;
        }
      }
      x.queued = true;
      if (bytes === o.batchBytes) await commit();
    }
    if (open.length > 0 || commits === 0) await commit();
  } finally {
    for (const x of open) await x.chunk.handle.close();
  }
  return results;
}

/**
 * Merge one chunk file into `image` (see the module comment). The image may be
 * new, unbound (a GNU ddrescue mapfile and no binding), or bound to a ddferry
 * rescue of the same size; it is `adopt`ed for the source size, which comes
 * from COMMON.map, else IMAGE.map, else the extent of the chunk map.
 * @throws AssemblerError `ERR_CHUNK_FILE_OPEN`, `ERR_CHUNK_FILE_READ`,
 *   `ERR_CHUNK_FILE_SHORT`, `ERR_CHUNK_FILE_IS_IMAGE`, `ERR_DOMAIN_EMPTY`,
 *   `ERR_DOMAIN_OUTSIDE_SOURCE`, `ERR_DOMAIN_SIZE_UNKNOWN`, `ERR_IMAGE_MAP_SIZE`
 *   (the sizes of both mapfiles shown), `ERR_IMAGE_WRITE`, `ERR_IMAGE_SYNC`,
 *   `ERR_IMAGE_SAVE`; `MapfileError` (`ERR_MAPFILE_*`) for a mapfile that
 *   cannot be read; the signal's reason once aborted between batches.
 */
export async function importDdrescueChunk(image: Image, options: ImportDdrescueOptions): Promise<ImportDdrescueResult> {
  const o = { ...IMPORT_DDRESCUE_DEFAULTS, ...definedOf(options) };
  if (!Number.isSafeInteger(o.batchBytes) || o.batchBytes <= 0) throw new RangeError(`batchBytes must be a positive integer, not ${String(o.batchBytes)}`);
  const [result] = await importDdrescueChunks(image, [options], { ...options, batchBytes: o.batchBytes });
  return result!;
}

function definedOf<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function extentOf(map: Mapfile): Block {
  return map.blocks.extent();
}

/** The source size, checked between COMMON.map, IMAGE.map (or the binding) and the chunk map. */
function sourceSizeOf(image: Image, options: ImportDdrescueOptions, domainMap: Mapfile, common: Mapfile | undefined): number {
  const imageSize = image.binding?.fingerprint.size ?? image.mapSize;
  const imageWhat = image.binding !== undefined ? `${image.path} (bound to rescue ${image.binding.rescueId})` : image.mapPath;
  if (common !== undefined) {
    const ext = extentOf(common);
    if (ext.pos !== 0 || ext.size === UNBOUNDED || ext.size <= 0) {
      throw new AssemblerError('ERR_IMAGE_MAP_SIZE', options.commonMap!, `The mapfile covers bytes ${ext.pos} to ${ext.pos + ext.size}; a ddrescue mapfile of a source covers it from byte 0 to its size. Give PC_A's common mapfile of this rescue.`);
    }
    if (imageSize !== undefined && imageSize !== ext.size) {
      throw new AssemblerError('ERR_IMAGE_MAP_SIZE', options.commonMap!, `The mapfile describes a source of ${ext.size} bytes, but ${imageWhat} describes one of ${imageSize} bytes. Give the common mapfile and the image of the same source, or a new image path.`);
    }
    return ext.size;
  }
  if (imageSize !== undefined) return imageSize;
  const ext = extentOf(domainMap);
  if (ext.pos !== 0 || ext.size === UNBOUNDED || ext.size <= 0) {
    throw new AssemblerError('ERR_DOMAIN_SIZE_UNKNOWN', options.domainMap, `The domain mapfile covers bytes ${ext.pos} to ${ext.size === UNBOUNDED ? 'the end' : ext.pos + ext.size}, which does not tell the source's size, and ${image.mapPath} does not exist. Give --map COMMON.map (PC_A's mapfile), or a chunk map made by 'ddferry-map plan'.`);
  }
  options.warn?.(`${image.mapPath} is new: the source is taken to have ${ext.size} bytes, the extent of ${options.domainMap}.`);
  return ext.size;
}

/** Largest mapfile read here (a million blocks take about 40 MB). */
const MAX_MAPFILE_BYTES = 1 << 30;

/**
 * Read and parse a mapfile carried from PC_A, opened as `openSafeFile` does:
 * a FIFO or a link there is refused at once instead of blocking.
 * @throws MapfileError `ERR_MAPFILE_NOT_FOUND`, `ERR_MAPFILE_READ`; the parse errors.
 */
async function readMapfileSafely(path: string): Promise<Mapfile> {
  let bytes: Buffer;
  try {
    bytes = await readSafeFile(path, { maxBytes: MAX_MAPFILE_BYTES, what: 'the mapfile' });
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') throw new MapfileError('ERR_MAPFILE_NOT_FOUND', `${path}: Mapfile does not exist.`, { file: path, hint: 'Check the name.', cause: err });
    throw new MapfileError('ERR_MAPFILE_READ', `${path}: Mapfile is not readable: ${code?.startsWith('ERR_FILE_') === true ? (err as Error).message.replace(`${path}: `, '') : `${code ?? messageOf(err)}. Check its permissions.`}`, { file: path, cause: err });
  }
  return parseMapfile(bytes, { file: path });
}

async function openChunkFile(path: string, image: Image): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await openSafeFile(path, { what: 'the chunk file' });
  } catch (err) {
    const code = errnoOf(err);
    if (code?.startsWith('ERR_FILE_') === true) {
      throw new AssemblerError('ERR_CHUNK_FILE_OPEN', path, (err as Error).message.replace(`${path}: `, ''), { cause: err });
    }
    throw new AssemblerError('ERR_CHUNK_FILE_OPEN', path, `Cannot open the chunk file for reading (${code ?? messageOf(err)}). Check the name (the .raw file ddrescue wrote on PC_A) and its permissions.`, { cause: err });
  }
  try {
    const st = await handle.stat();
    const img = await stat(image.path);
    if (img.dev === st.dev && img.ino === st.ino) {
      throw new AssemblerError('ERR_CHUNK_FILE_IS_IMAGE', path, `Is the image ${image.path} itself. Give the chunk file carried from PC_A.`);
    }
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

function readError(err: unknown, file: string, size: number, offset: number): AssemblerError {
  return new AssemblerError('ERR_CHUNK_FILE_READ', file, `Cannot read ${size} bytes at offset ${offset} (${errnoOf(err) ?? messageOf(err)}). Check the medium (dmesg); nothing of this batch is marked rescued, so running the command again is safe.`, { cause: err });
}

function shrunk(file: string, offset: number, pos: number): AssemblerError {
  return new AssemblerError('ERR_CHUNK_FILE_SHORT', file, `The file ended at offset ${offset} while reading source byte ${pos}: it shrank while being imported. Copy it again and run the command again.`);
}

async function readFully(handle: FileHandle, buf: Uint8Array, offset: number, file: string, pos: number): Promise<void> {
  for (let done = 0; done < buf.length;) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buf, done, buf.length - done, offset + done));
    } catch (err) {
      throw readError(err, file, buf.length - done, offset + done);
    }
    if (bytesRead === 0) throw shrunk(file, offset + done, pos + done);
    done += bytesRead;
  }
}

/** `readFully`, synchronously (for `Copy.readSync`). */
function readFullySync(fd: number, buf: Uint8Array, offset: number, file: string, pos: number): void {
  for (let done = 0; done < buf.length;) {
    let bytesRead: number;
    try {
      bytesRead = readSync(fd, buf, done, buf.length - done, offset + done);
    } catch (err) {
      throw readError(err, file, buf.length - done, offset + done);
    }
    if (bytesRead === 0) throw shrunk(file, offset + done, pos + done);
    done += bytesRead;
  }
}

export const IMPORT_DDRESCUE_USAGE = `Usage: ddferry-assembler import-ddrescue CHUNK.raw --domain CHUNK.map [CHUNK2.raw --domain CHUNK2.map ...]
                                          [--map COMMON.map] [--packed] IMAGE

Merge into IMAGE (and IMAGE.map) a chunk file made on PC_A with
  ddrescue -m CHUNK.map SOURCE CHUNK.raw COMMON.map
like 'ddrescue -m CHUNK.map CHUNK.raw IMAGE IMAGE.map', but forward-only and
durable: bytes already rescued in IMAGE are kept, IMAGE.map says '+' only
over fsynced data, and running it twice changes nothing.
Several chunk files, each followed by its --domain, are merged one after the
other in one run (the n-th --domain goes with the n-th chunk file).

Options:
  --domain CHUNK.map  the chunk's domain mapfile (its '+' blocks), as given to ddrescue -m
  --map COMMON.map    PC_A's mapfile: take only its '+' bytes, and raise its other
                      statuses inside the domain; without it the whole domain counts
                      as rescued (holes of a sparse chunk file read as zeros)
  --packed            CHUNK.raw holds the domain from its first byte (FAT32/exFAT sticks),
                      not each byte at its source position
  -h, --help          this text
`;

/**
 * `ddferry-assembler import-ddrescue ARGS` (the words after the command):
 * one or more `CHUNK.raw --domain CHUNK.map` pairs, then IMAGE; COMMON.map is
 * read once for all of them, the image opened and locked once.
 * @returns 0 once merged, 130 when `signal` aborted it (the batches done are saved).
 * @throws AssemblerError `ERR_USAGE` and the errors of `importDdrescueChunk` and `Image.open`.
 */
export async function runImportDdrescue(argv: readonly string[], io: CliIo, signal?: AbortSignal): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { domain: { type: 'string', multiple: true }, map: { type: 'string' }, packed: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new AssemblerError('ERR_USAGE', 'import-ddrescue', messageOf(err));
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.stdout(IMPORT_DDRESCUE_USAGE);
    return 0;
  }
  if (positionals.length < 2) throw new AssemblerError('ERR_USAGE', 'import-ddrescue', 'Give CHUNK.raw and IMAGE.');
  const domains = values.domain ?? [];
  if (domains.length === 0) throw new AssemblerError('ERR_USAGE', 'import-ddrescue', 'Give --domain CHUNK.map, the domain mapfile the chunk was rescued with.');
  const chunkFiles = positionals.slice(0, -1);
  const imagePath = positionals[positionals.length - 1]!;
  if (domains.length !== chunkFiles.length) {
    throw new AssemblerError('ERR_USAGE', 'import-ddrescue', `Give one --domain CHUNK.map per chunk file: ${chunkFiles.length} chunk file(s) and ${domains.length} --domain (the last word is IMAGE).`);
  }
  const say = (message: string): void => io.stderr(`ddferry-assembler: warning: ${message}\n`);
  const commandLine = ['ddferry-assembler', 'import-ddrescue', ...argv].join(' ');
  const commonMapfile = values.map === undefined ? undefined : await readMapfileSafely(values.map);
  const image = await Image.open(imagePath, { commandLine });
  try {
    const chunks = chunkFiles.map((chunkFile, k) => ({ chunkFile, domainMap: domains[k]! }));
    await importDdrescueChunks(image, chunks, {
      commonMap: values.map, commonMapfile, packed: values.packed, signal, warn: say,
      onChunk: (c, r) => io.stdout(`imported ${c.chunkFile}: ${r.writtenBytes} bytes written, ${r.keptBytes} already rescued in ${imagePath} kept, ${r.rescuedBytes} of the domain's ${r.domainBytes} bytes rescued; ${image.mapPath} saved (${r.batches} batch${r.batches === 1 ? '' : 'es'})\n`),
    });
    return 0;
  } catch (err) {
    if (signal?.aborted === true && err === signal.reason) {
      io.stderr(`ddferry-assembler: interrupted; the batches done are saved in ${image.mapPath}. Run the same command again to finish.\n`);
      return 130;
    }
    throw err;
  } finally {
    await image.close();
  }
}
