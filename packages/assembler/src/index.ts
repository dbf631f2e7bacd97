export { formatBinding, parseBinding, BINDING_FORMAT, BINDING_VERSION } from './binding.js';
export type { Binding } from './binding.js';
export { run, parseListen, DEFAULT_LISTEN, EXIT, USAGE } from './cli.js';
export type { CliIo } from './cli.js';
export { CLOSE } from './connection.js';
export { AssemblerError } from './errors.js';
export type { AssemblerErrorCode } from './errors.js';
export { COPY_SLICE_BYTES, Image, MAX_PLAN_CHUNKS, SYNC_COPY_BYTES } from './image.js';
export type { BindRequest, Commit, Copy, ImageOptions, ImageStep } from './image.js';
export { importDdrescueChunk, importDdrescueChunks, IMPORT_DDRESCUE_DEFAULTS, IMPORT_DDRESCUE_USAGE, runImportDdrescue } from './import-ddrescue.js';
export type { ImportDdrescueChunksOptions, ImportDdrescueOptions, ImportDdrescueResult } from './import-ddrescue.js';
export { DEFAULT_MERGE_LIMITS, mergePieces, MergeQueue, planBatch, resolveMergeLimits } from './merge.js';
export type { MergeLimits, PlannedBatch } from './merge.js';
export { OVERSIZE_GRACE_BYTES, SERVE_DEFAULTS, serve } from './server.js';
export type { AssemblerServer, Log, ServeOptions } from './server.js';
export { importStick } from './import.js';
export type { BundleEvent, ImportOptions, ImportResult } from './import.js';
export { IMPORT_USAGE, runImport } from './import-command.js';
export { listStickRescues, pickStickRescue } from './stick-rescue.js';
export type { StickRescueFolder } from './stick-rescue.js';
export { ReceiptWriter, receiptFileName } from './receipt-writer.js';
export type { ImageListener } from './image.js';
export { LIVE_DEFAULTS, LIVE_PATH, LiveServer, pageUrls } from './live/live-server.js';
export type { LiveOptions } from './live/live-server.js';
export { LiveFeed, MAX_DIRTY_RANGES, MAX_GONE_READERS, ViewerQueue } from './live/live-feed.js';
export type { FeedMessage, ImageSummary, ReaderInfo, ReaderStatusSink, ReaderSummary } from './live/live-feed.js';
export { cellGrid, DEFAULT_MAX_CELLS, encodeCells } from './live/map-cells.js';
export type { CellGrid } from './live/map-cells.js';
export { VIEWER_AUTH_LABEL, VIEWER_PROOF_LABEL, verifyViewerAuth, viewerAuthHmac, viewerProof } from './live/live-auth.js';
export { AssemblerProgress, MAX_ENTRIES } from './progress.js';
export type {
  AssemblerProgressOptions, AssemblerProgressSnapshot, BundleProgressEvent, ConnectionProgress, ImageSource, ReaderIdentity, ReaderProgress, ReaderState,
} from './progress.js';
export {
  assemblerDisplay, assemblerProgressView, formatProgressBlock, formatProgressJson, formatReaderLine, importProgress, parseProgressInterval,
} from './progress-view.js';
export type { ImportProgress, ProgressDisplayOptions } from './progress-view.js';
