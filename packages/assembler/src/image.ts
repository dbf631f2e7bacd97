/**
 * An image on PC_B: three files side by side.
 *
 * | file | what | written |
 * |---|---|---|
 * | `IMAGE` | the image, sparse where the file system allows; opened read-write, created if missing, never truncated (only extended, by a zero run at its end) | `pwrite` at source positions, then one fsync per batch; zero runs written only where the image does not read as zeros already |
 * | `IMAGE.map` | GNU ddrescue 1.27 mapfile of the whole source; `+` only over data already fsynced (A1) | atomically, keeping `IMAGE.map.bak` |
 * | `IMAGE.ddferry.json` | the binding: rescue id, fingerprint, plan | atomically, when a rescue claims the image |
 * | `IMAGE.ddferry.pieces` | the merged pieces: seq and header hash of each (merged-pieces.ts) | appended and fsynced, after `IMAGE.map` |
 *
 * `stage` (and `commit`, which waits for it) is the only way data and statuses
 * get in, in this order: write, fsync, raise statuses in memory, save
 * `IMAGE.map`, append the merged pieces. A crash between any two steps leaves a
 * map that claims only durable data, and a record that claims only pieces the
 * map holds. A batch is written while the batches written before it are made
 * durable: every batch written meanwhile becomes durable in the next round
 * (one fsync, one save of each file), and until then its ranges and seqs are
 * the batch's (`forEachPlannedStatus`, `stagedHash`): no later batch writes
 * there (first wins, A3) or merges another piece under its seqs (A4).
 */
import { constants as fsConstants, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { open, readFile } from 'node:fs/promises';

import type { Block, BlockStatus, Chunk, MapfileStatus } from '@ddferry/mapfile';
import { Domain, formatMapfile, formatTimestamp, planChunks, processedState, SblockVector, StatusMap } from '@ddferry/mapfile';
import { pathExists, readMapfile, saveMapfile } from '@ddferry/mapfile/io';
import type { Fingerprint, PieceMapState, PieceRef, RescueId } from '@ddferry/protocol';
import { describeFingerprint, isAllZero, sameDevice } from '@ddferry/protocol';

import type { Binding } from './binding.js';
import { formatBinding, parseBinding } from './binding.js';
import { AssemblerError, errnoOf, messageOf } from './errors.js';
import { lockImage, unlockImage } from './image-lock.js';
import { loadMergedPieces, MergedPieces, MergedPiecesFile } from './merged-pieces.js';
import { RangeSet } from './range-set.js';

export type { Binding } from './binding.js';

/** A durable step of `commit` and `bind`, as `onStep` sees it. */
export type ImageStep = 'write' | 'sync' | 'save-map' | 'save-binding' | 'save-pieces';

/** Told, after `IMAGE.map` is saved (a commit, a fresh binding), the ranges whose status may have changed. Must not throw. */
export type ImageListener = (changed: readonly Block[]) => void;

export interface ImageOptions {
  /**
   * Called before each durable step of `commit` and `bind`. If it throws, the step
   * does not happen and the error propagates, as if the process had died there:
   * tests use it to check the order of truth. A promise it returns before `sync`
   * holds the fsync until it resolves (or fails it, rejected): tests hold a
   * durable round there. Default none.
   */
  readonly onStep?: ((step: ImageStep, file: string) => unknown) | undefined;
  /** Recorded in the mapfile's header. Default `ddferry-assembler serve IMAGE`. */
  readonly commandLine?: string | undefined;
}

/** What a reader claims in its Hello: the rescue, its source and its plan. */
export interface BindRequest {
  readonly rescueId: RescueId;
  readonly fingerprint: Fingerprint;
  readonly chunkSize: number;
  readonly sectorSize: number;
}

/** Data and statuses to make durable in one go (see `commit`). */
export interface Commit {
  /** Bytes to write at their source positions; none may overlap a `+` block of the map. */
  readonly writes: readonly { readonly pos: number; readonly data: Uint8Array }[];
  /** Statuses to raise after the data is durable; a status only moves forward. */
  readonly statuses: readonly { readonly pos: number; readonly size: number; readonly status: BlockStatus }[];
  /** Pieces to record as merged once the map is saved (none on an adopted, unbound image). */
  readonly pieces: readonly PieceRef[];
  /** Bytes copied from a file at their source positions, like `writes` but read slice by slice. Default none. */
  readonly copies?: readonly Copy[] | undefined;
  /**
   * The reader's status line carried by piece `seq` of `pieces` (its newest that carries
   * one). `IMAGE.map` takes it when no newer piece is merged: its status line follows
   * the reader's `common.map` as of the newest piece, whatever mix of LAN and sticks
   * brought the pieces, so it ends `+` as GNU ddrescue's does. Default none.
   */
  readonly mapState?: { readonly seq: number; readonly line: PieceMapState } | undefined;
  /**
   * Ranges whose bytes are zeros (zero runs of pieces), none over a `+` block: left as
   * they are where the image reads as zeros already (a hole: never written, or punched;
   * or past the file's end, which is extended as a hole), written with zeros where it
   * holds other bytes (an old image, a write whose map update a crash lost). Default none.
   */
  readonly zeros?: readonly { readonly pos: number; readonly size: number }[] | undefined;
}

/** What `commit` did with zero runs: bytes left as holes (or zeros already there), bytes written as zeros. */
export interface ZeroFigures {
  kept: number;
  written: number;
}

/**
 * `size` bytes for source positions `[pos, pos + size)`, read by `read` into a
 * buffer of at most `COPY_SLICE_BYTES`, so a large batch needs two such buffers
 * of memory and not its own size.
 */
export interface Copy {
  readonly pos: number;
  readonly size: number;
  /** Fill all of `buf` with the bytes of source positions `[pos, pos + buf.length)`, or throw. */
  readonly read: (buf: Uint8Array, pos: number) => Promise<void>;
  /**
   * The same, synchronously. When every copy of a commit has it, the copy runs
   * as `ddrescue -m` does: reads and writes of `SYNC_COPY_BYTES` through one
   * buffer that stays in the CPU cache, on the main thread, yielding to the
   * event loop after each `COPY_SLICE_BYTES`. Default none.
   */
  readonly readSync?: ((buf: Uint8Array, pos: number) => void) | undefined;
}

/** Largest read and write of a `Copy`: large sequential I/O, as `ddrescue -m` of a file does. */
export const COPY_SLICE_BYTES = 8 * 1024 * 1024;

/**
 * Read and write size of a synchronous copy (`Copy.readSync`). Measured on a
 * loaded 2-core machine, a 1 GiB copy through a 64 KiB buffer took about half
 * the kernel time of one through 8 MiB buffers (the data goes through the CPU
 * cache instead of memory); threadpool round trips make small async I/O slow.
 */
export const SYNC_COPY_BYTES = 64 * 1024;

/**
 * Largest single write of `commit`'s `writes`: 256 MiB of held pieces written
 * in 1 MiB writes took about half the time of 32 MiB writes (measured on a
 * loaded 2-core machine, page cache, ext4).
 */
const WRITE_SLICE_BYTES = 1024 * 1024;

/** Zeros read back or written per step of a zero run. */
const ZERO_SLICE_BYTES = 1024 * 1024;
const ZEROS = new Uint8Array(ZERO_SLICE_BYTES);

/** Most chunks a plan may have: a Hello's plan is untrusted input (S2). */
export const MAX_PLAN_CHUNKS = 1_048_576;

const FINISHED = processedState('+');

/** A batch written by `stage`, waiting for its durable round. */
interface Staged {
  readonly batch: Commit;
  /** Its writes, copies and zero runs: `+` once durable. */
  readonly targets: readonly Block[];
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

function identity(rescueId: string, f: Fingerprint): string {
  return `rescue ${rescueId} (${describeFingerprint(f)})`;
}

/** An image, its mapfile and its binding; see the module comment. */
export class Image {
  /** `IMAGE`. */
  readonly path: string;
  /** `IMAGE.map`. */
  readonly mapPath: string;
  /** `IMAGE.ddferry.json`. */
  readonly bindingPath: string;
  /** `IMAGE.ddferry.pieces`. */
  readonly piecesPath: string;
  readonly #handle: FileHandle;
  readonly #onStep: ImageOptions['onStep'];
  readonly #commandLine: string;
  readonly #startTime = formatTimestamp(new Date());
  #map: StatusMap | undefined;
  #mapOnDisk: boolean;
  #mapState: { currentPos: number; currentStatus: MapfileStatus; currentPass: number } = { currentPos: 0, currentStatus: '?', currentPass: 1 };
  #binding: Binding | undefined;
  /** Source size given to `adopt` while unbound. */
  #adoptedSize: number | undefined;
  #bindSaved: Promise<void> = Promise.resolve();
  /** A fresh binding is being saved: no commit until it is on disk. */
  #bindPending = false;
  #plan: Chunk[] | undefined;
  #merged: MergedPieces;
  #piecesFile: MergedPiecesFile | undefined;
  #wholeSource: Domain | undefined;
  #broken: AssemblerError | undefined;
  #closed = false;
  #queue: Promise<unknown> = Promise.resolve();
  /** Batches written and waiting for the next durable round, oldest first. */
  #staged: Staged[] = [];
  /** The targets of batches written and not durable yet: no later batch writes there. */
  readonly #stagedRanges = new RangeSet();
  /** The seqs of those batches' pieces: header hash, and how many of those batches hold it. */
  readonly #stagedSeqs = new Map<number, { readonly hash: string; count: number }>();
  /** The durable rounds, while batches are staged. */
  #rounds: Promise<void> | undefined;
  readonly #listeners = new Set<ImageListener>();
  /** Zero-run bytes of all commits: left as holes (or zeros already there), written as zeros. */
  readonly zeroFigures: ZeroFigures = { kept: 0, written: 0 };

  private constructor(path: string, handle: FileHandle, options: ImageOptions) {
    this.path = path;
    this.mapPath = `${path}.map`;
    this.bindingPath = `${path}.ddferry.json`;
    this.piecesPath = `${path}.ddferry.pieces`;
    this.#handle = handle;
    this.#onStep = options.onStep;
    this.#commandLine = options.commandLine ?? `ddferry-assembler serve ${path}`;
    this.#mapOnDisk = false;
    this.#merged = new MergedPieces();
  }

  /**
   * Open (or create) `path` read-write, without truncating it, and load its
   * mapfile and binding if they exist. An image with a mapfile but no binding
   * (say, one started with GNU ddrescue) is unbound; the first rescue that
   * claims it binds it, if the sizes agree.
   * @throws AssemblerError `ERR_IMAGE_OPEN`, `ERR_IMAGE_NOT_REGULAR` (a folder,
   *   a pipe…), `ERR_IMAGE_LOCKED` (another ddferry process uses it: see image-lock.ts), `ERR_IMAGE_BINDING_BAD`, `ERR_IMAGE_MAP_MISSING` (bound, but
   *   `IMAGE.map` is gone); `MapfileError` (`ERR_MAPFILE_*`) for a malformed `IMAGE.map`.
   */
  static async open(path: string, options: ImageOptions = {}): Promise<Image> {
    let handle: FileHandle;
    try {
      handle = await open(path, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'EISDIR') throw new AssemblerError('ERR_IMAGE_NOT_REGULAR', path, 'Is a folder. Give the path of an image file (it is created if missing).', { cause: err });
      throw new AssemblerError('ERR_IMAGE_OPEN', path, `Cannot open the image read-write (${code ?? messageOf(err)}). Check that its folder exists and is writable.`, { cause: err });
    }
    let locked = false;
    try {
      const st = await handle.stat();
      if (!st.isFile() && !st.isBlockDevice()) {
        throw new AssemblerError('ERR_IMAGE_NOT_REGULAR', path, 'Is neither a regular file nor a block device. Give the path of an image file.');
      }
      const image = new Image(path, handle, options);
      await lockImage(path, image.#commandLine);
      locked = true;
      await image.#load();
      return image;
    } catch (err) {
      if (locked) await unlockImage(path);
      await handle.close();
      throw err;
    }
  }

  async #load(): Promise<void> {
    let bindingText: string | undefined;
    try {
      bindingText = await readFile(this.bindingPath, 'utf8');
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') {
        throw new AssemblerError('ERR_IMAGE_OPEN', this.bindingPath, `Cannot read the image binding (${errnoOf(err) ?? messageOf(err)}). Check its permissions.`, { cause: err });
      }
    }
    if (bindingText !== undefined) {
      const binding = parseBinding(bindingText, this.bindingPath);
      this.#binding = binding;
      this.#merged = (await loadMergedPieces(this.piecesPath, binding.rescueId)).pieces;
      this.#piecesFile = new MergedPiecesFile(this.piecesPath, binding.rescueId);
      this.#plan = planChunks({ sourceSize: binding.fingerprint.size, sectorSize: binding.sectorSize, chunkSize: binding.chunkSize });
    }
    if (await pathExists(this.mapPath)) {
      const m = await readMapfile(this.mapPath);
      this.#map = new StatusMap(m.blocks);
      this.#mapState = { currentPos: m.currentPos, currentStatus: m.currentStatus, currentPass: m.currentPass };
      this.#mapOnDisk = true;
    } else if (this.#binding !== undefined) {
      const bak = (await pathExists(`${this.mapPath}.bak`)) ? ` Copy ${this.mapPath}.bak to ${this.mapPath} and start again.` : '';
      throw new AssemblerError('ERR_IMAGE_MAP_MISSING', this.mapPath, `The image is bound to rescue ${this.#binding.rescueId} but its mapfile is missing, so nothing tells which of its bytes are rescued.${bak} Without a mapfile, move the image and ${this.bindingPath} away and assemble anew.`);
    }
    if (this.#binding !== undefined) this.#checkMapSize(this.#binding.fingerprint.size);
  }

  #checkMapSize(size: number): void {
    const ext = this.#map?.extent();
    if (ext !== undefined && (ext.pos !== 0 || ext.size !== size)) {
      throw new AssemblerError('ERR_IMAGE_MAP_SIZE', this.mapPath, `The mapfile covers bytes ${ext.pos} to ${ext.pos + ext.size}, but the source has ${size} bytes. Give an image whose mapfile is of this source, or a new image path.`);
    }
  }

  /** The binding, or undefined while no rescue has claimed the image. */
  get binding(): Binding | undefined {
    return this.#binding;
  }

  /** The plan of the bound rescue (`planChunks` of its Hello), or undefined. */
  get plan(): readonly Chunk[] | undefined {
    return this.#plan;
  }

  /** The source size of the bound rescue (the mapfile's size), or the adopted size, or 0 while neither. */
  get size(): number {
    return this.#binding?.fingerprint.size ?? this.#adoptedSize ?? 0;
  }

  /** The end of the mapfile's extent (the source size it describes), or undefined without a mapfile. */
  get mapSize(): number | undefined {
    const ext = this.#map?.extent();
    return ext === undefined ? undefined : ext.pos + ext.size;
  }

  /**
   * Let `commit` work without a rescue, on a source of `size` bytes: for chunk
   * files made by GNU ddrescue, which come with mapfiles and no rescue id. A
   * bound image keeps its binding; its size must be `size`. An unbound image
   * keeps its mapfile if that has `size` bytes; a new one gets one `?` block of
   * `size` bytes, saved by the first commit. A rescue may still bind it later.
   * @throws AssemblerError `ERR_IMAGE_MAP_SIZE` (both sizes shown), `ERR_IMAGE_CLOSED`.
   */
  adopt(size: number): void {
    this.#checkUsable();
    if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`adopt: size must be a positive integer, not ${size}`);
    if (this.#binding !== undefined && this.#binding.fingerprint.size !== size) {
      throw new AssemblerError('ERR_IMAGE_MAP_SIZE', this.path, `The image is bound to rescue ${this.#binding.rescueId} of a source of ${this.#binding.fingerprint.size} bytes, not ${size}. Give the image of this source, or a new image path.`);
    }
    this.#checkMapSize(size);
    if (this.#binding !== undefined) return;
    this.#adoptedSize = size;
    this.#wholeSource = undefined;
    if (this.#map === undefined) {
      const blocks = new SblockVector(1);
      blocks.push(0, size, processedState('?'));
      this.#map = new StatusMap(blocks);
    }
  }

  /**
   * Claim the image for a rescue, or check that it is already this rescue's.
   * The claim is made synchronously, before this returns a promise, so a caller
   * that picks an unbound image and binds it in one turn of the event loop never
   * races another. An unbound image gets `IMAGE.map` (one `?` block of the
   * source size, unless a mapfile of that size is already there) and then its
   * binding file.
   * @throws AssemblerError `ERR_IMAGE_WRONG_RESCUE`, `ERR_IMAGE_WRONG_DEVICE`,
   *   `ERR_IMAGE_WRONG_PLAN` (each showing both identities), `ERR_IMAGE_MAP_SIZE`,
   *   `ERR_IMAGE_SAVE`, `ERR_IMAGE_CLOSED`; `MapfileError` (`ERR_PLAN_*`) for a plan that cannot be.
   */
  bind(request: BindRequest): Promise<void> {
    try {
      return this.#bind(request);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #bind(request: BindRequest): Promise<void> {
    this.#checkUsable();
    const ours = this.#binding;
    const theirs = identity(request.rescueId, request.fingerprint);
    if (ours !== undefined) {
      const mine = identity(ours.rescueId, ours.fingerprint);
      if (ours.rescueId !== request.rescueId) {
        throw new AssemblerError('ERR_IMAGE_WRONG_RESCUE', this.path, `The image belongs to ${mine}; ${theirs} is another rescue. Give that rescue its own image path.`);
      }
      if (!sameDevice(ours.fingerprint, request.fingerprint)) {
        throw new AssemblerError('ERR_IMAGE_WRONG_DEVICE', this.path, `The image belongs to ${mine}, but the reader's source is ${describeFingerprint(request.fingerprint)}. Connect the disk the rescue was planned for.`);
      }
      if (ours.chunkSize !== request.chunkSize || ours.sectorSize !== request.sectorSize) {
        throw new AssemblerError('ERR_IMAGE_WRONG_PLAN', this.path, `The image belongs to ${mine} with chunks of ${ours.chunkSize} bytes and sectors of ${ours.sectorSize}; the reader's plan has chunks of ${request.chunkSize} and sectors of ${request.sectorSize}. Use the plan the rescue was made with.`);
      }
      return this.#bindSaved;
    }
    const size = request.fingerprint.size;
    if (request.chunkSize > 0 && Math.ceil(size / request.chunkSize) > MAX_PLAN_CHUNKS) {
      throw new AssemblerError('ERR_IMAGE_WRONG_PLAN', this.path, `${theirs} plans chunks of ${request.chunkSize} bytes: more than ${MAX_PLAN_CHUNKS} chunks. Plan larger chunks.`);
    }
    const plan = planChunks({ sourceSize: size, sectorSize: request.sectorSize, chunkSize: request.chunkSize });
    this.#checkMapSize(size);
    this.#adoptedSize = undefined;
    const binding: Binding = {
      rescueId: request.rescueId, fingerprint: { ...request.fingerprint }, chunkSize: request.chunkSize, sectorSize: request.sectorSize,
    };
    const createdMap = this.#map === undefined;
    this.#binding = binding;
    this.#plan = plan;
    if (createdMap) {
      const blocks = new SblockVector(1);
      blocks.push(0, size, processedState('?'));
      this.#map = new StatusMap(blocks);
    }
    this.#bindPending = true;
    this.#bindSaved = this.#exclusive(async () => {
      try {
        // a record left by an earlier binding of this rescue (the binding file was lost) still holds
        this.#merged = (await loadMergedPieces(this.piecesPath, binding.rescueId)).pieces;
        this.#piecesFile = new MergedPiecesFile(this.piecesPath, binding.rescueId);
        if (!this.#mapOnDisk) await this.#saveMap();
        await this.#saveBinding();
        this.#bindPending = false;
        this.#tell([{ pos: 0, size }]);
      } catch (err) {
        this.#bindPending = false;
        this.#binding = undefined;
        this.#plan = undefined;
        this.#wholeSource = undefined;
        this.#merged = new MergedPieces();
        this.#piecesFile = undefined;
        if (createdMap && !this.#mapOnDisk) this.#map = undefined;
        throw err;
      }
    });
    return this.#bindSaved;
  }

  /** The `+` ranges of the mapfile, sorted, adjacent ones joined. Empty while unbound. */
  finishedRanges(): Block[] {
    const out: Block[] = [];
    let pos = -1;
    let end = -1;
    this.#map?.forEachBlock((p, e, code) => {
      if (code !== FINISHED) return;
      if (p === end) {
        end = e;
        return;
      }
      if (pos >= 0) out.push({ pos, size: end - pos });
      pos = p;
      end = e;
    });
    if (pos >= 0) out.push({ pos, size: end - pos });
    return out;
  }

  /** The merged pieces, ascending by seq; with `limit`, only the `limit` largest. */
  mergedPieces(limit?: number): PieceRef[] {
    return this.#merged.toArray(limit);
  }

  /** The header hash of the piece merged under `seq` (its map and record saved), or undefined. */
  mergedHash(seq: number): string | undefined {
    return this.#merged.hashOf(seq);
  }

  /** The largest merged seq, 0 if none. */
  get maxMergedSeq(): number {
    return this.#merged.maxSeq;
  }

  /** Bytes of each status in the mapfile (all 0 without a mapfile). */
  statusSizes(): Record<BlockStatus, number> {
    const m = this.#map;
    const of = (st: BlockStatus): number => (m === undefined ? 0 : m.sizeOf(st));
    return { '?': of('?'), '*': of('*'), '/': of('/'), '-': of('-'), '+': of('+') };
  }

  /** Call `listener` after every later save of `IMAGE.map` by `commit` or `bind` (the live page). @returns what stops it. */
  onChange(listener: ImageListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #tell(changed: readonly Block[]): void {
    for (const l of this.#listeners) l(changed);
  }

  /** How many pieces were merged. */
  get mergedCount(): number {
    return this.#merged.size;
  }

  /** True if the piece `seq` was merged with this header hash (its map and record saved). */
  isMerged(seq: number, headerHash: string): boolean {
    return this.#merged.hashOf(seq) === headerHash;
  }

  /**
   * Call `fn(pos, end, status)` for each mapfile block, or part of one, inside
   * `block`, in order. Nothing while unbound.
   */
  forEachStatus(block: Block, fn: (pos: number, end: number, status: BlockStatus) => void): void {
    const map = this.#map;
    if (map === undefined) return;
    const end = block.pos + block.size;
    for (let pos = block.pos; pos < end;) {
      const sb = map.sblockAt(pos);
      if (sb === null) return;
      const stop = Math.min(end, sb.pos + sb.size);
      fn(pos, stop, sb.status);
      pos = stop;
    }
  }

  /**
   * `forEachStatus`, with the ranges written by batches not durable yet (`stage`)
   * as `+`: what a batch planned now must leave alone (first wins, A3).
   */
  forEachPlannedStatus(block: Block, fn: (pos: number, end: number, status: BlockStatus) => void): void {
    if (this.#stagedRanges.size === 0) {
      this.forEachStatus(block, fn);
      return;
    }
    this.forEachStatus(block, (pos, end, status) => {
      if (status === '+') fn(pos, end, status);
      else this.#stagedRanges.forEachPart(pos, end, (p, q, staged) => fn(p, q, staged ? '+' : status));
    });
  }

  /** The header hash of the piece a batch not durable yet (`stage`) merges under `seq`, or undefined. */
  stagedHash(seq: number): string | undefined {
    return this.#stagedSeqs.get(seq)?.hash;
  }

  /**
   * Run `fn` after every earlier `exclusive`, `bind` and `commit` of this image,
   * and before any later one: merges into one image are serialized.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#exclusive(fn);
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Make a batch durable, in the order of truth (call it inside `exclusive`):
   * `stage`, then wait for its round.
   */
  async commit(batch: Commit, written?: () => void): Promise<void> {
    const { durable } = await this.stage(batch, written);
    await durable;
  }

  /**
   * Write a batch (call it inside `exclusive`) and return once it is written, with
   * the promise of its durable round, which makes durable every batch written
   * since the round before, in the order of truth:
   *
   * | step | on failure |
   * |---|---|
   * | write every `writes` entry at its position, then every `copies` entry, slice by slice, then the zero runs | `ERR_IMAGE_WRITE` (or the error of `read`), thrown by `stage`; nothing claims those bytes |
   * | tell `written`: the batch's memory may go (the kernel holds the bytes) | — |
   * | (the round) fsync the image, once | `ERR_IMAGE_SYNC`; the image refuses further commits (after a failed fsync the kernel may have dropped the data) |
   * | raise statuses in memory, batch by batch: `writes` and `copies` to `+`, then `statuses`, never backwards | — |
   * | save `IMAGE.map` (with `.bak`) | `ERR_IMAGE_SAVE`; the next round saves it again |
   * | append the round's pieces to `IMAGE.ddferry.pieces`, fsync (bound images only) | `ERR_IMAGE_SAVE`; the pieces, sent again, merge again harmlessly |
   *
   * A failed round rejects the durability of each of its batches. Until its round
   * ends, a batch's targets and seqs are reported by `forEachPlannedStatus` and
   * `stagedHash`.
   * @throws Error (a bug in the caller) for a write outside the source, over a `+` block
   *   or over a batch not durable yet, or a piece whose seq is merged or staged under
   *   another header hash (A4: the caller refuses those).
   */
  async stage(batch: Commit, written?: () => void): Promise<{ readonly durable: Promise<void> }> {
    this.#checkUsable();
    const map = this.#map;
    if ((this.#binding === undefined && this.#adoptedSize === undefined) || map === undefined || this.#bindPending) {
      throw new AssemblerError('ERR_IMAGE_NOT_BOUND', this.path, 'No rescue is bound to the image yet (or its binding is not saved yet).');
    }
    if (this.#binding === undefined && batch.pieces.length > 0) throw new Error('internal: pieces for an image bound to no rescue');
    for (const p of batch.pieces) {
      const held = this.#merged.hashOf(p.seq) ?? this.stagedHash(p.seq);
      if (held !== undefined && held !== p.headerHash) throw new Error(`internal: piece ${p.seq} is merged under another header hash`);
    }
    const size = this.size;
    const copies = batch.copies ?? [];
    const zeros = batch.zeros ?? [];
    const targets = [...batch.writes.map((w) => ({ pos: w.pos, size: w.data.length })), ...copies.map((c) => ({ pos: c.pos, size: c.size })), ...zeros.map((z) => ({ pos: z.pos, size: z.size }))];
    let end = 0;
    for (const w of [...targets].sort((a, b) => a.pos - b.pos)) {
      if (!Number.isSafeInteger(w.pos) || !Number.isSafeInteger(w.size) || w.pos < 0 || w.size < 0 || w.pos + w.size > size) throw new Error(`internal: write of ${w.size} bytes at ${w.pos} is outside the source of ${size} bytes`);
      if (w.pos < end) throw new Error(`internal: writes of one batch overlap at ${w.pos}`);
      end = w.pos + w.size;
      this.forEachPlannedStatus(w, (pos, _end, status) => {
        if (status === '+') throw new Error(`internal: write at ${w.pos} would overwrite rescued data, or data being made durable, at ${pos}`);
      });
    }
    for (const w of batch.writes) await this.#write(w.data, w.pos);
    if (copies.length > 0) await this.#copy(copies);
    if (zeros.length > 0) await this.#zero(zeros);
    written?.();
    for (const t of targets) this.#stagedRanges.add(t.pos, t.pos + t.size);
    for (const p of batch.pieces) {
      const held = this.#stagedSeqs.get(p.seq);
      if (held === undefined) this.#stagedSeqs.set(p.seq, { hash: p.headerHash, count: 1 });
      else ++held.count;
    }
    const durable = new Promise<void>((resolve, reject) => {
      this.#staged.push({ batch, targets, resolve, reject });
    });
    // rejections reach whoever awaits it; none is left unhandled meanwhile
    durable.catch(() => undefined);
    this.#rounds ??= this.#runRounds();
    return { durable };
  }

  /** Durable rounds, while batches are staged: each takes every batch staged before it starts. */
  async #runRounds(): Promise<void> {
    try {
      while (this.#staged.length > 0) {
        const round = this.#staged;
        this.#staged = [];
        try {
          await this.#makeDurable(round);
          for (const s of round) s.resolve();
        } catch (err) {
          for (const s of round) s.reject(err);
        } finally {
          for (const s of round) this.#unstage(s);
        }
      }
    } finally {
      this.#rounds = undefined;
    }
  }

  /** A batch's round ended: its targets are `+` (or the image is broken), its pieces merged or not. */
  #unstage(s: Staged): void {
    for (const t of s.targets) this.#stagedRanges.delete(t.pos, t.pos + t.size);
    for (const p of s.batch.pieces) {
      const held = this.#stagedSeqs.get(p.seq);
      if (held !== undefined && --held.count === 0) this.#stagedSeqs.delete(p.seq);
    }
  }

  /** The steps of a round after the writes (see `stage`). */
  async #makeDurable(round: readonly Staged[]): Promise<void> {
    const map = this.#map!;
    // a failed fsync of an earlier round may have dropped this round's pages too
    if (this.#broken !== undefined) throw this.#broken;
    if (round.some((s) => s.targets.length > 0)) await this.#sync();
    /** The newest seq merged before or by the batches raised so far. */
    let newest = this.#merged.maxSeq;
    for (const { batch, targets } of round) {
      for (const w of targets) this.#raise(w.pos, w.size, '+');
      for (const st of batch.statuses) this.#raise(st.pos, st.size, st.status);
      for (const p of batch.pieces) newest = Math.max(newest, p.seq);
      const line = batch.mapState;
      if (line !== undefined && line.seq >= newest) {
        const pos = Math.min(Math.max(0, line.line.currentPos), this.size);
        this.#mapState = { currentPos: pos, currentStatus: line.line.currentStatus, currentPass: Math.max(1, line.line.currentPass) };
      }
    }
    if (map.sizeOf('+') === this.size) this.#mapState = { ...this.#mapState, currentStatus: '+' };
    await this.#saveMap();
    const changed = round.flatMap((s) => [...s.targets, ...s.batch.statuses]);
    if (this.#binding === undefined) {
      this.#tell(changed);
      return;
    }
    const fresh = new Map<number, PieceRef>();
    for (const s of round) for (const p of s.batch.pieces) if (this.#merged.hashOf(p.seq) === undefined && !fresh.has(p.seq)) fresh.set(p.seq, p);
    if (fresh.size > 0) {
      this.#step('save-pieces', this.piecesPath);
      await this.#piecesFile!.append([...fresh.values()]);
      for (const p of fresh.values()) this.#merged.add(p);
    }
    // listeners (the live page) see the map and the merged pieces of the same commit together
    this.#tell(changed);
  }

  /**
   * Make `ranges` read as zeros, writing as little as it can: each slice is read
   * first (a hole reads as zeros from the page cache, no disk I/O); only a slice
   * holding other bytes is written with zeros. Past the file's end nothing is
   * read or written: the file is extended to the end of the last range (a hole).
   * Node has no SEEK_DATA/SEEK_HOLE; reading a hole costs a memory copy.
   */
  async #zero(ranges: readonly { readonly pos: number; readonly size: number }[]): Promise<void> {
    let fileSize: number;
    try {
      fileSize = (await this.#handle.stat()).size;
    } catch (err) {
      throw this.#writeError(err, 0, ranges[0]!.pos);
    }
    const buf = new Uint8Array(ZERO_SLICE_BYTES);
    let end = fileSize;
    for (const r of ranges) {
      end = Math.max(end, r.pos + r.size);
      const stop = Math.min(r.pos + r.size, fileSize);
      this.zeroFigures.kept += r.size - Math.max(0, stop - r.pos);
      for (let at = r.pos; at < stop; at += ZERO_SLICE_BYTES) {
        const n = Math.min(ZERO_SLICE_BYTES, stop - at);
        let read: number;
        try {
          ({ bytesRead: read } = await this.#handle.read(buf, 0, n, at));
        } catch (err) {
          throw this.#writeError(err, n, at);
        }
        if (read === n && isAllZero(buf.subarray(0, n))) {
          this.zeroFigures.kept += n;
        } else {
          await this.#write(ZEROS.subarray(0, n), at);
          this.zeroFigures.written += n;
        }
      }
    }
    if (end > fileSize) {
      this.#step('write', this.path);
      try {
        await this.#handle.truncate(end);
      } catch (err) {
        throw this.#writeError(err, end - fileSize, fileSize);
      }
    }
  }

  /** Write `copies`, slice by slice; the read of a slice overlaps the write of the one before. */
  async #copy(copies: readonly Copy[]): Promise<void> {
    if (copies.every((c) => c.readSync !== undefined)) {
      await this.#copySync(copies);
      return;
    }
    const largest = copies.reduce((m, c) => Math.max(m, c.size), 0);
    const bufs = [new Uint8Array(Math.min(COPY_SLICE_BYTES, largest)), new Uint8Array(Math.min(COPY_SLICE_BYTES, largest))] as const;
    let writing: Promise<void> = Promise.resolve();
    let turn = 0;
    for (const c of copies) {
      for (let at = c.pos, end = c.pos + c.size; at < end;) {
        const slice = bufs[turn]!.subarray(0, Math.min(COPY_SLICE_BYTES, end - at));
        const [written, read] = await Promise.allSettled([writing, c.read(slice, at)]);
        if (written.status === 'rejected') throw written.reason;
        if (read.status === 'rejected') throw read.reason;
        writing = this.#write(slice, at);
        at += slice.length;
        turn ^= 1;
      }
    }
    await writing;
  }

  /** Write `copies` read by `readSync` (see `Copy.readSync`). */
  async #copySync(copies: readonly Copy[]): Promise<void> {
    const largest = copies.reduce((m, c) => Math.max(m, c.size), 0);
    const buf = new Uint8Array(Math.min(SYNC_COPY_BYTES, largest));
    let slice = 0;
    for (const c of copies) {
      for (let at = c.pos, end = c.pos + c.size; at < end;) {
        if (slice === 0 || at === c.pos) this.#step('write', this.path);
        const part = buf.subarray(0, Math.min(SYNC_COPY_BYTES, end - at));
        c.readSync!(part, at);
        this.#writeSync(part, at);
        at += part.length;
        slice += part.length;
        if (slice >= COPY_SLICE_BYTES) {
          slice = 0;
          await new Promise<void>((resolve) => {
            setImmediate(resolve);
          });
        }
      }
    }
  }

  #writeSync(data: Uint8Array, pos: number): void {
    try {
      for (let done = 0; done < data.length;) {
        const bytesWritten = writeSync(this.#handle.fd, data, done, data.length - done, pos + done);
        if (bytesWritten <= 0) throw new Error('write returned 0 bytes');
        done += bytesWritten;
      }
    } catch (err) {
      throw this.#writeError(err, data.length, pos);
    }
  }

  /** Close the image file. Every commit saves its files, so nothing is pending. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    await this.#rounds;
    await this.#piecesFile?.close();
    await this.#handle.close();
    await unlockImage(this.path);
  }

  /** The whole source: statuses change anywhere in it. */
  #domain(): Domain {
    this.#wholeSource ??= new Domain([{ pos: 0, size: this.size }]);
    return this.#wholeSource;
  }

  #checkUsable(): void {
    if (this.#closed) throw new AssemblerError('ERR_IMAGE_CLOSED', this.path, 'The image is closed.');
    if (this.#broken !== undefined) throw this.#broken;
  }

  #step(step: ImageStep, file: string): unknown {
    return this.#onStep?.(step, file);
  }

  async #write(data: Uint8Array, pos: number): Promise<void> {
    this.#step('write', this.path);
    try {
      for (let done = 0; done < data.length;) {
        const { bytesWritten } = await this.#handle.write(data, done, Math.min(data.length - done, WRITE_SLICE_BYTES), pos + done);
        if (bytesWritten <= 0) throw new Error('write returned 0 bytes');
        done += bytesWritten;
      }
    } catch (err) {
      throw this.#writeError(err, data.length, pos);
    }
  }

  #writeError(err: unknown, size: number, pos: number): AssemblerError {
    const code = errnoOf(err);
    const hint = code === 'ENOSPC' || code === 'EDQUOT' ? 'The destination is full: free space or move the image to a larger disk; the piece is still in the reader\'s spool or on the stick, and is merged when you try again.' : 'Check the destination disk; the piece is still in the reader\'s spool or on the stick, and is merged when you try again.';
    return new AssemblerError('ERR_IMAGE_WRITE', this.path, `Cannot write ${size} bytes at ${pos} (${code ?? messageOf(err)}). ${hint}`, { cause: err });
  }

  async #sync(): Promise<void> {
    try {
      const held = this.#step('sync', this.path);
      if (held instanceof Promise) await held;
      await this.#handle.sync();
    } catch (err) {
      this.#broken = new AssemblerError('ERR_IMAGE_SYNC', this.path, `fsync failed (${errnoOf(err) ?? messageOf(err)}); the image refuses further data until the assembler restarts. Check the destination disk (dmesg), then restart: the mapfile claims only data fsynced before.`, { cause: err });
      throw this.#broken;
    }
  }

  /** Raise the statuses of `[pos, pos+size)` to `status` wherever that moves them forward. */
  #raise(pos: number, size: number, status: BlockStatus): void {
    const map = this.#map!;
    const code = processedState(status);
    const end = pos + size;
    for (let at = pos; at < end;) {
      const sb = map.sblockAt(at);
      if (sb === null) throw new Error(`internal: no mapfile block at ${at}`);
      const stop = Math.min(end, sb.pos + sb.size);
      if (processedState(sb.status) < code) map.changeChunkStatus({ pos: at, size: stop - at }, status, this.#domain());
      at = stop;
    }
    if (map.sizeOf('+') === this.size) this.#mapState = { ...this.#mapState, currentStatus: '+' };
  }

  async #saveMap(): Promise<void> {
    const map = this.#map!;
    const text = formatMapfile(
      { ...this.#mapState, blocks: map },
      { program: 'ddferry', commandLine: this.#commandLine, startTime: this.#startTime },
    );
    this.#step('save-map', this.mapPath);
    try {
      await saveMapfile(this.mapPath, text, { backup: true });
    } catch (err) {
      throw new AssemblerError('ERR_IMAGE_SAVE', this.mapPath, `${messageOf(err)} The data written is safe; it is claimed at the next save.`, { cause: err });
    }
    this.#mapOnDisk = true;
  }

  async #saveBinding(): Promise<void> {
    const text = formatBinding(this.#binding!);
    this.#step('save-binding', this.bindingPath);
    try {
      await saveMapfile(this.bindingPath, text);
    } catch (err) {
      throw new AssemblerError('ERR_IMAGE_SAVE', this.bindingPath, `${messageOf(err)} Nothing is merged until the image is bound: try again.`, { cause: err });
    }
  }
}
