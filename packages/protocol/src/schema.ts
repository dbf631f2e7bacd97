import protobuf from 'protobufjs';

/** Version of the wire format described by `PROTO_TEXT`. */
export const PROTOCOL_VERSION = 1;

/**
 * The schema, identical to `src/ddferry.proto` (a test keeps them equal). Kept as
 * a string so the package needs no file next to its code at run time.
 */
export const PROTO_TEXT = String.raw`
// ddferry wire format, version 1.
//
// One Envelope per binary websocket message. Positions, sizes and sequence
// numbers are uint64 on the wire and at most 2^53-1 in practice: a receiver
// refuses larger values. Checksums are xxh64 (seed 0) carried as uint64.
//
// Handshake: reader Hello -> assembler Challenge -> reader Auth -> assembler
// Welcome. Then the reader sends pieces (PieceHeader, PieceData..., PieceEnd)
// and Status; the assembler answers with Receipt and Error.
syntax = "proto3";

package ddferry.v1;

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
// the image already holds.
message Welcome {
  bytes server_proof = 1;
  repeated Range finished = 2;
  repeated uint64 merged_seqs = 3;
  uint64 image_size = 4;
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

// The start of a piece. Its data (the extents' bytes concatenated in order,
// data_size bytes) follows in PieceData frames, then PieceEnd.
message PieceHeader {
  uint64 seq = 1;
  uint32 chunk = 2;
  repeated Extent extents = 3;
  repeated StatusRange delta = 4;
  uint64 data_size = 5;
}

// offset: where data starts inside the piece's data (not a source position).
message PieceData {
  uint64 seq = 1;
  uint64 offset = 2;
  bytes data = 3;
}

// xxh64_of_header: xxh64 of the PieceHeader envelope's bytes as sent.
message PieceEnd {
  uint64 seq = 1;
  uint64 xxh64_of_header = 2;
}

// Assembler -> reader: pieces merged durably (written, fsynced, image mapfile saved).
message Receipt {
  repeated uint64 merged = 1;
  repeated Rejected rejected = 2;
}

message Rejected {
  uint64 seq = 1;
  string code = 2;
  string reason = 3;
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
}

// seq: the piece concerned, 0 if none.
message Error {
  string code = 1;
  string message = 2;
  uint64 seq = 3;
}
`.slice(1);

let envelopeType: protobuf.Type | undefined;

/** The reflected `ddferry.v1.Envelope` type, parsed once on first use. */
export function envelopeSchema(): protobuf.Type {
  if (envelopeType === undefined) {
    const { root } = protobuf.parse(PROTO_TEXT, { keepCase: false });
    envelopeType = root.lookupType('ddferry.v1.Envelope');
  }
  return envelopeType;
}
