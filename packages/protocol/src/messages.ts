/**
 * The messages of wire format version 1, as this package's API gives them:
 * positions, sizes, counts and sequence numbers are exact `number`s (at most
 * 2^53-1), checksums are unsigned 64-bit `bigint`s. `type` names the body of
 * the envelope (`src/ddferry.proto`).
 */
import type { Block, BlockStatus, MapfileStatus } from '@ddferry/mapfile';

import type { Fingerprint, RescueId } from './identity.js';

/** A range of the source and one piece of its data, with the data's xxh64. */
export interface Extent {
  readonly pos: number;
  readonly size: number;
  readonly xxh64: bigint;
}

/** A range of the source and the status a piece gives it. */
export interface StatusRange {
  readonly pos: number;
  readonly size: number;
  readonly status: BlockStatus;
}

/** A piece as receipts name it: its sequence number and its header hash. */
export interface PieceRef {
  readonly seq: number;
  /** 32 lowercase hex digits (16 bytes on the wire): see `headerHashOf`. */
  readonly headerHash: string;
}

/** Reader → assembler, first message. */
export interface HelloMessage {
  readonly type: 'hello';
  readonly protocolVersion: number;
  readonly rescueId: RescueId;
  readonly fingerprint: Fingerprint;
  readonly clientNonce: Uint8Array;
  readonly readerName: string;
  /** The plan: chunks of this size over the source (see `planChunks`). */
  readonly chunkSize: number;
  /** The plan's sector size. */
  readonly sectorSize: number;
}

/** Assembler → reader: the challenge of the handshake. */
export interface ChallengeMessage {
  readonly type: 'challenge';
  readonly serverNonce: Uint8Array;
  readonly protocolVersion: number;
}

/** Reader → assembler: `authHmac(...)`, 32 bytes. */
export interface AuthMessage {
  readonly type: 'auth';
  readonly hmac: Uint8Array;
}

/** Assembler → reader: `serverProof(...)` and what the image already holds. */
export interface WelcomeMessage {
  readonly type: 'welcome';
  readonly serverProof: Uint8Array;
  /** Ranges marked `+` in the image mapfile, sorted: a spooled piece whose `+` extents they cover may be freed. */
  readonly finished: readonly Block[];
  readonly imageSize: number;
  /** The largest sequence number merged, 0 if none: a reader numbers its next pieces above it. */
  readonly maxMergedSeq: number;
}

/** Reader → assembler, after Welcome: which of these pieces does the image hold? */
export interface QueryMessage {
  readonly type: 'query';
  /** At most `maxSeqs`. */
  readonly seqs: readonly number[];
}

/**
 * Assembler → reader: the answer to one Query, in order: the queried seqs the
 * image holds, with the header hash of the piece merged under each, in one or
 * more Answers (the last with `more: false`). A reader frees a piece only when
 * the hash is its piece's.
 */
export interface AnswerMessage {
  readonly type: 'answer';
  readonly merged: readonly PieceRef[];
  /** More Answers to the same Query follow (a long answer is cut to fit messages). */
  readonly more: boolean;
}

/** The start of a sealed piece: its sealed header (see `sealPiece`); its sealed frames follow. */
export interface PieceHeaderMessage {
  readonly type: 'pieceHeader';
  /** The bytes of `SealedPiece.header`, at most `maxHeaderBytes`. After decoding, a view of the received buffer. */
  readonly sealedHeader: Uint8Array;
}

/** Sealed frame `index` (from 0) of piece `seq`. */
export interface PieceDataMessage {
  readonly type: 'pieceData';
  readonly seq: number;
  readonly index: number;
  /** Ciphertext then the 16-byte tag; at most `maxFrameBytes + 16`. After decoding, a view of the received buffer. */
  readonly sealedFrame: Uint8Array;
}

/** The end of a piece. */
export interface PieceEndMessage {
  readonly type: 'pieceEnd';
  readonly seq: number;
}

/** A piece the assembler refused, and why (a `ProtocolError` code). */
export interface Rejected {
  readonly seq: number;
  readonly code: string;
  readonly reason: string;
  /** The refused piece's header hash when its header arrived whole, else `''`. */
  readonly headerHash: string;
}

/** Assembler → reader: durable acknowledgements. */
export interface ReceiptMessage {
  readonly type: 'receipt';
  /** Merged durably (written, fsynced, image mapfile saved), or merged before under the same hash. */
  readonly merged: readonly PieceRef[];
  readonly rejected: readonly Rejected[];
}

/** Reader → assembler: progress for the live page. Sizes in bytes, rates in bytes per second. */
export interface StatusMessage {
  readonly type: 'status';
  /** The mapfile status character of the running phase: `? * / - F G +`. */
  readonly phase: MapfileStatus;
  /** One line for humans. */
  readonly message: string;
  readonly pass: number;
  readonly pos: number;
  readonly finishedSize: number;
  readonly nonTriedSize: number;
  readonly nonTrimmedSize: number;
  readonly nonScrapedSize: number;
  readonly badSectorSize: number;
  readonly readErrors: number;
  readonly currentRate: number;
  readonly averageRate: number;
  readonly chunk: number;
  readonly chunkCount: number;
  readonly spoolBytes: number;
  readonly spoolPieces: number;
  /** Seconds since the rescue started. */
  readonly runTime: number;
  /** Why reading waits (`link`, `stick`, `space`, `source`), '' while it reads. */
  readonly paused: string;
  /** One line saying what the pause waits for. */
  readonly pausedText: string;
  /** Seconds the pause has lasted. */
  readonly pausedSeconds: number;
  /** The read the reading process is in (`readingSize` 0: none) and how long it has taken so far. */
  readonly readingPos: number;
  readonly readingSize: number;
  readonly readingSeconds: number;
}

/** Either side: a refusal or failure, with a `ProtocolError`-style code. */
export interface ErrorMessage {
  readonly type: 'error';
  readonly code: string;
  readonly message: string;
  /** The piece concerned, if any (0 on the wire means none). */
  readonly seq?: number | undefined;
}

export type Message =
  | HelloMessage
  | ChallengeMessage
  | AuthMessage
  | WelcomeMessage
  | PieceHeaderMessage
  | PieceDataMessage
  | PieceEndMessage
  | ReceiptMessage
  | StatusMessage
  | ErrorMessage
  | QueryMessage
  | AnswerMessage;

export type MessageType = Message['type'];

/** Every message type, in the order of the envelope's fields. */
export const MESSAGE_TYPES: readonly MessageType[] = Object.freeze([
  'hello', 'challenge', 'auth', 'welcome', 'pieceHeader', 'pieceData', 'pieceEnd', 'receipt', 'status', 'error', 'query', 'answer',
]);
