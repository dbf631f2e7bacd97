import type { Block } from '@ddferry/mapfile';
import type { AnswerMessage, Limits, PieceRef, WelcomeMessage } from '@ddferry/protocol';
import { encodeEnvelope, isProtocolError, pieceRefsPerMessage } from '@ddferry/protocol';

import type { Image } from './image.js';

/**
 * The Welcome for `image`: its `+` ranges, its size and its largest merged
 * seq. The ranges only help the reader skip work, so when they do not fit in
 * one message (`maxFinishedRanges`, `maxMessageBytes`) they are cut, keeping
 * the first ones: a reader told less than the truth re-reads or resends, which
 * merging makes harmless (A2), never the reverse.
 * @returns the encoded envelope, and whether it lists every range.
 */
export function encodeWelcome(proof: Uint8Array, image: Image, limits: Limits): { bytes: Uint8Array; complete: boolean } {
  const allFinished = image.finishedRanges();
  let finished: Block[] = allFinished.slice(0, limits.maxFinishedRanges);
  let complete = finished.length === allFinished.length;
  for (;;) {
    const msg: WelcomeMessage = { type: 'welcome', serverProof: proof, finished, imageSize: image.size, maxMergedSeq: image.maxMergedSeq };
    try {
      return { bytes: encodeEnvelope(msg, limits), complete };
    } catch (err) {
      if (!isProtocolError(err) || err.code !== 'ERR_PROTO_MESSAGE_TOO_LARGE' || finished.length === 0) throw err;
      complete = false;
      finished = finished.slice(0, Math.floor(finished.length / 2));
    }
  }
}

/**
 * The Answers to a Query: of `seqs`, those the image holds, each with the
 * header hash of the piece merged under it (in the order asked, each once), in
 * as many messages as `limits` need (`pieceRefsPerMessage`), all but the last
 * with `more`.
 */
export function answerQuery(image: Image, seqs: readonly number[], limits: Limits): AnswerMessage[] {
  const merged: PieceRef[] = [];
  const seen = new Set<number>();
  for (const seq of seqs) {
    if (seen.has(seq)) continue;
    seen.add(seq);
    const headerHash = image.mergedHash(seq);
    if (headerHash !== undefined) merged.push({ seq, headerHash });
  }
  const per = pieceRefsPerMessage(limits);
  const out: AnswerMessage[] = [];
  for (let i = 0; i === 0 || i < merged.length; i += per) {
    out.push({ type: 'answer', merged: merged.slice(i, i + per), more: i + per < merged.length });
  }
  return out;
}
