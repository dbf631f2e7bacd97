import protobuf from 'protobufjs';

/** Version of the wire format described by `PROTO_TEXT` (2: sealed pieces; 3: frames raw, zero runs or zstd). */
export const PROTOCOL_VERSION = 3;

/**
 * The schema, identical to `src/ddferry.proto` (a test keeps them equal). Kept as
 * a string so the package needs no file next to its code at run time.
 */
export const PROTO_TEXT = String.raw`
// ddferry wire format, version 3 (2 with frames carried raw; the package name
// stays ddferry.v2: names do not travel on the wire).
//
// One Envelope per binary websocket message. Positions, sizes and sequence
// numbers are uint64 on the wire and at most 2^53-1 in practice: a receiver
// refuses larger values (sequence numbers: above 2^40). Checksums are xxh64
// (seed 0) carried as uint64.
//
// Handshake: reader Hello -> assembler Challenge -> reader Auth -> assembler
// Welcome. Then the reader may ask which of its pieces the image holds (Query,
// answered by Answer), sends sealed pieces (PieceHeader, PieceData...,
// PieceEnd) and Status; the assembler answers with Receipt and Error.
//
// Pieces travel sealed (AES-256-GCM under keys derived from the shared secret
// and the rescue id; see docs/seal.md): the same sealed header and frames as
// in a stick bundle. A piece is named by its sequence number and its header
// hash (16 bytes: the first half of the SHA-256 of its sealed header).
syntax = "proto3";

package ddferry.v2;

message Envelope {
  oneof body {
    Hello hello = 1;
    Challenge challenge = 2;
    Auth auth = 3;
    Welcome welcome = 4;
    PieceHeader piece_header = 5;
    PieceData piece_data = 6;
    PieceEnd piece_end = 7;
    Receipt receipt = 8;
    Status status = 9;
    Error error = 10;
    Query query = 11;
    Answer answer = 12;
  }
}

// What the OS tells about the source. Empty strings: unknown.
message Fingerprint {
  uint64 size = 1;
  uint32 logical_sector_size = 2;
  uint32 physical_sector_size = 3;
  string model = 4;
  string serial = 5;
  string wwn = 6;
  string kind = 7;
}

// Reader -> assembler, first message.
message Hello {
  uint32 protocol_version = 1;
  string rescue_id = 2;
  Fingerprint fingerprint = 3;
  bytes client_nonce = 4;
  string reader_name = 5;
  // The plan: chunks of chunk_size bytes (the last one shorter) over fingerprint.size,
  // aligned to sector_size, as planChunks makes them.
  uint64 chunk_size = 6;
  uint32 sector_size = 7;
}

// Assembler -> reader.
message Challenge {
  bytes server_nonce = 1;
  uint32 protocol_version = 2;
}

// Reader -> assembler: HMAC-SHA256 proving the reader knows the shared secret.
message Auth {
  bytes hmac = 1;
}

// Assembler -> reader: proof that the assembler knows the secret too, and what
// the image already holds: its rescued ranges, and the largest sequence number
// merged (0: none), so a reader that lost its counter never reuses a number.
message Welcome {
  bytes server_proof = 1;
  repeated Range finished = 2;
  reserved 3;
  uint64 image_size = 4;
  uint64 max_merged_seq = 5;
}

// Reader -> assembler, after Welcome: sequence numbers of pieces the reader
// still holds (spool, pieces on sticks). Answered by one Answer.
message Query {
  repeated uint64 seqs = 1;
}

// Assembler -> reader: of a Query's seqs, those the image holds, each with the
// header hash of the piece merged under it. A seq the image holds under another
// hash names another piece: the reader's piece is not merged. A long answer
// comes in several Answers, all but the last with more = true.
message Answer {
  repeated PieceRef merged = 1;
  bool more = 2;
}

// A piece: its sequence number and its header hash (16 bytes).
message PieceRef {
  uint64 seq = 1;
  bytes header_hash = 2;
}

message Range {
  uint64 pos = 1;
  uint64 size = 2;
}

// status: one GNU ddrescue block status character, ? * / - +
message StatusRange {
  uint64 pos = 1;
  uint64 size = 2;
  string status = 3;
}

message Extent {
  uint64 pos = 1;
  uint64 size = 2;
  uint64 xxh64 = 3;
}

// The start of a sealed piece: its sealed header (docs/seal.md), the same bytes
// as the header entry of a bundle. Its sealed frames follow in PieceData, in
// order, then PieceEnd.
message PieceHeader {
  bytes sealed_header = 1;
}

// Frame number index (from 0) of piece seq: its ciphertext then its 16-byte tag.
message PieceData {
  uint64 seq = 1;
  uint64 index = 2;
  bytes sealed_frame = 3;
}

message PieceEnd {
  uint64 seq = 1;
}

// What a sealed header seals (never sent in clear): chunk, extents with the
// xxh64 of their raw bytes, map delta, data size, frame size and count, and
// the reader's status line when the piece was sealed (absent: none), and
// (seal version 2) per frame its encoding, one byte each (0 raw, 1 zero run:
// no bytes, 2 zstd), and the bytes it carries. Frame i holds the raw bytes
// [i * frame_size, min(data_size, (i + 1) * frame_size)) of the data.
message SealedHeaderBody {
  uint32 chunk = 1;
  repeated Extent extents = 2;
  repeated StatusRange delta = 3;
  uint64 data_size = 4;
  uint32 frame_size = 5;
  uint32 frame_count = 6;
  MapState map_state = 7;
  bytes frame_encodings = 8;
  repeated uint32 frame_bytes = 9;
}

// The status line of the reader's common mapfile (GNU ddrescue's current_pos,
// current_status, current_pass) when a piece was sealed: the image mapfile's
// status line follows the newest piece merged. current_status: one mapfile
// status character, ? * / - F G +
message MapState {
  uint64 current_pos = 1;
  string current_status = 2;
  uint32 current_pass = 3;
}

// Assembler -> reader: pieces merged durably (written, fsynced, image mapfile
// saved), and pieces refused (nothing of them written).
message Receipt {
  repeated PieceRef merged = 1;
  repeated Rejected rejected = 2;
}

// header_hash: empty when the header never arrived whole.
message Rejected {
  uint64 seq = 1;
  string code = 2;
  string reason = 3;
  bytes header_hash = 4;
}

// Reader progress, for the live map page.
// phase: the GNU ddrescue mapfile status character of the running phase, ? * / - F G +
message Status {
  string phase = 1;
  string message = 2;
  uint32 pass = 3;
  uint64 pos = 4;
  uint64 finished_size = 5;
  uint64 non_tried_size = 6;
  uint64 non_trimmed_size = 7;
  uint64 non_scraped_size = 8;
  uint64 bad_sector_size = 9;
  uint64 read_errors = 10;
  uint64 current_rate = 11;
  uint64 average_rate = 12;
  uint32 chunk = 13;
  uint32 chunk_count = 14;
  uint64 spool_bytes = 15;
  uint64 spool_pieces = 16;
  uint64 run_time = 17;
  // why reading waits ('' while it reads): link, stick, space, source
  string paused = 18;
  string paused_text = 19;
  uint64 paused_seconds = 20;
  // the read the reading process is in (reading_size 0: none) and its seconds so far
  uint64 reading_pos = 21;
  uint64 reading_size = 22;
  uint64 reading_seconds = 23;
}

// seq: the piece concerned, 0 if none.
message Error {
  string code = 1;
  string message = 2;
  uint64 seq = 3;
}
`.slice(1);

let types: { envelope: protobuf.Type; headerBody: protobuf.Type } | undefined;

function schemaTypes(): { envelope: protobuf.Type; headerBody: protobuf.Type } {
  if (types === undefined) {
    const { root } = protobuf.parse(PROTO_TEXT, { keepCase: false });
    types = { envelope: root.lookupType('ddferry.v2.Envelope'), headerBody: root.lookupType('ddferry.v2.SealedHeaderBody') };
  }
  return types;
}

/** The reflected `ddferry.v2.Envelope` type, parsed once on first use. */
export function envelopeSchema(): protobuf.Type {
  return schemaTypes().envelope;
}

/** The reflected `ddferry.v2.SealedHeaderBody` type: what a sealed header seals. */
export function headerBodySchema(): protobuf.Type {
  return schemaTypes().headerBody;
}
