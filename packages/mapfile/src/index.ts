export {
  UNBOUNDED, LLONG_MAX, makeBlock, blockFromTo, blockEnd, includes, includesPos, strictlyIncludesPos,
  overlaps, precedes, follows, crop, alignPos, alignEnd, exactSize, isExactCount,
} from './block.js';
export type { Block } from './block.js';
export { scanCInteger, isCSpace } from './c-number.js';
export { Domain } from './domain.js';
export { MapfileError, isMapfileError, messageWithHint, MAPFILE_PARSE_CODES, DDRESCUE_PARSE_MESSAGES } from './errors.js';
export type {
  MapfileErrorCode, MapfileErrorDetails, MapfileParseCode, MapfileSizeCode, MapfileIoCode, ArgumentCode, PlanCode, RenderCode,
} from './errors.js';
export { formatMapfile, formatMapfileChunks, formatTimestamp, DDRESCUE_VERSION } from './format.js';
export type { BlockWalker, MapfileHeader, MapfileState } from './format.js';
export { formatNum, formatNum3, formatPercentage } from './format-num.js';
export { createMapfileParser, parseMapfile } from './parse.js';
export type { Mapfile, MapfileParser, ParseOptions } from './parse.js';
export { SblockVector } from './sblock-vector.js';
export type { Sblock } from './sblock-vector.js';
export { StatusMap } from './status-map.js';
export type { FoundChunk } from './status-map.js';
export {
  BlockStatus, MapfileStatus, BLOCK_STATUS_CHARS, isBlockStatus, isMapfileStatus, processedState, statusOfCode, mapfileStatusName,
} from './status.js';
export { parseArgs, parseNumberArgument } from './args.js';
export type { OptionSpec, ParsedArgs, ParsedOption, HasArgument } from './args.js';
export { planChunks, chunkMapName, chunkSizeForMedium, fileSystemOverhead, formatChunkMap, FILE_SIZE_LIMITS } from './plan.js';
export type { Chunk, Medium, PlanOptions, FileSystemName } from './plan.js';
export { run } from './cli-entry.js';
export type { CliIo } from './ddrescuelog/context.js';
export { extendToInputSize, joinSubsectors, normalizeForRescue } from './normalize.js';
export type { RescueLoadOptions } from './normalize.js';
export {
  RENDER_PALETTE, RENDER_STATES, RENDER_STATE_LABELS, BLEND_WEIGHTS, WORST_FIRST, LAYOUT_DEFAULTS,
  overlayRuns, layoutMap, drawMapPixels, drawMapSvg,
} from './render.js';
export type {
  RenderState, CellMix, StateRuns, RenderOverlays, LayoutOptions, LegendEntry, TextItem, Swatch, MapLayout, RgbaImage,
} from './render.js';
export { encodePng, decodePng } from './render-png.js';
