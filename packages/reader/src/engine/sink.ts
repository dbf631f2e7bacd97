import type { BlockStatus } from '@ddferry/mapfile';

/**
 * Where the engine puts what it rescues. This issue has one sink, the output file;
 * the pipeline adds pieces. Positions are input positions (the mapfile's).
 */
export interface RescueSink {
  /**
   * Good data read at input position `pos`. The bytes are only valid during the call.
   * @throws ReaderError `ERR_OUTPUT_WRITE` (fatal, as in ddrescue).
   */
  write(pos: number, data: Uint8Array): void | Promise<void>;
  /**
   * `write` in the thread pool: `data` must not change until the promise settles. Optional;
   * the engine uses it for large reads when it has a spare buffer to read on into.
   * @throws (rejects) ReaderError `ERR_OUTPUT_WRITE`.
   */
  writeAsync?(pos: number, data: Uint8Array): Promise<void>;
  /**
   * True if `write` writes at once (returns no promise) and the engine may gather
   * consecutive small reads into one write (`GATHER_BYTES`) until the next read elsewhere,
   * a larger read, or `sync`: the output file, not with `-S` (it decides per read).
   */
  readonly gathersWrites?: boolean;
  /**
   * The status of `[pos, pos+size)` changed (every change the engine makes after its
   * start, in order). Optional: the output file does not need it; pieces carry it.
   */
  statusChanged?(pos: number, size: number, status: BlockStatus): void;
  /** Make everything written so far durable; called before every mapfile save. */
  sync(): void | Promise<void>;
  /** End of the run, before the final mapfile save: extend (`-S`, `-x`) and sync. @returns an error message, or null. */
  finish(): string | null | Promise<string | null>;
  /** After the final save. Idempotent. @returns an error message, or null. */
  close(): string | null | Promise<string | null>;
}
