/**
 * The options of GNU ddrescue's rescue algorithm (its `Rb_options` and `Mb_options`),
 * with ddrescue's defaults. Sizes are bytes, times seconds.
 */
export interface RescueOptions {
  /** `-b`: sector size. */
  readonly hardbs: number;
  /** `-c`: sectors per copying read (cluster). */
  readonly cluster: number;
  /** `-K INITIAL`: bytes to skip after the first error; -1 = automatic; 0 disables skipping. */
  readonly skipbs: number;
  /** `-K ,MAX`; -1 = automatic. */
  readonly maxSkipbs: number;
  /** `-r`: retry passes; -1 = until done. */
  readonly maxRetries: number;
  /** `--cpass`: bit `1 << (pass - 1)` for each copying pass to run; 31 = all (the default). */
  readonly cpassBitset: number;
  /** `-R` */
  readonly reverse: boolean;
  /** `-u` */
  readonly unidirectional: boolean;
  /** `-N` */
  readonly notrim: boolean;
  /** `-n` */
  readonly noscrape: boolean;
  /** `-M`: mark `/` and `-` blocks `*` again. */
  readonly retrim: boolean;
  /** `-A`: mark `*` and `/` blocks `?` again. */
  readonly tryAgain: boolean;
  /** `-C` */
  readonly completeOnly: boolean;
  /** `-e N`: stop when bad areas exceed this. */
  readonly maxBadAreas: number;
  /** `-e +N`: count only new bad areas. */
  readonly newBadAreasOnly: boolean;
  /** `-X`: stop when read errors exceed this. */
  readonly maxReadErrors: number;
  /** `--max-slow-reads` */
  readonly maxSlowReads: number;
  /** `-E`: bytes per second; -1 = no limit. */
  readonly maxErrorRate: number;
  /** `-a`: bytes per second; 0 = auto (average/10); -2 = not set (the default). */
  readonly minReadRate: number;
  /** `--delay-slow` */
  readonly delaySlow: number;
  /** `--reset-slow` */
  readonly resetSlow: boolean;
  /** `-T`: seconds since the last good read; -1 = no limit. */
  readonly timeout: number;
  /** `--pause-on-error`: seconds. */
  readonly pauseOnError: number;
  /** `--pause-on-error=s...`: the pause moves the clocks without sleeping. */
  readonly simulatedPauseOnError: boolean;
  /** `--pause-on-pass`: seconds. */
  readonly pauseOnPass: number;
  /** `-O` */
  readonly reopenOnError: boolean;
  /** `-d` */
  readonly directIn: boolean;
  /** `--mapfile-interval SAVE`: -1 = automatic. */
  readonly mapfileSaveInterval: number;
  /** `--mapfile-interval ,SYNC` */
  readonly mapfileSyncInterval: number;
}

export const DEFAULT_RESCUE_OPTIONS: RescueOptions = {
  hardbs: 512,
  cluster: 128,
  skipbs: -1,
  maxSkipbs: -1,
  maxRetries: 0,
  cpassBitset: 31,
  reverse: false,
  unidirectional: false,
  notrim: false,
  noscrape: false,
  retrim: false,
  tryAgain: false,
  completeOnly: false,
  maxBadAreas: Number.POSITIVE_INFINITY,
  newBadAreasOnly: false,
  maxReadErrors: Number.POSITIVE_INFINITY,
  maxSlowReads: Number.POSITIVE_INFINITY,
  maxErrorRate: -1,
  minReadRate: -2,
  delaySlow: 30,
  resetSlow: false,
  timeout: -1,
  pauseOnError: 0,
  simulatedPauseOnError: false,
  pauseOnPass: 0,
  reopenOnError: false,
  directIn: false,
  mapfileSaveInterval: -1,
  mapfileSyncInterval: 300,
};

/** The smallest initial skip size ddrescue allows (64 KiB). */
export const MIN_SKIPBS = 65536;
/** The largest skip size: 2^60. */
export const MAX_MAX_SKIPBS = 2 ** 60;
