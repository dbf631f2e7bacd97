/**
 * The three views of a progress snapshot, pure text:
 *
 * | view | for | shape |
 * |---|---|---|
 * | `formatProgressBlock` | a terminal | ddrescue's six-line status block, then `chunk`, `spool`, `link` or `stick`, `phase` |
 * | `formatProgressLine` | a log or a pipe | one line with the figures that matter |
 * | `formatProgressJson` | scripts (`--json`) | one JSON object, `type: "progress"`, the snapshot's keys |
 */
import { formatNum, formatPercentage } from '@ddferry/mapfile';
import type { ProgressView } from '@ddferry/protocol';

import { formatStatusBlock } from './status-screen.js';
import type { StatusSnapshot } from '../engine/reporter.js';
import { formatTime, formatTimeDhms } from '../logs/format-time.js';
import type { ProgressSnapshot, RescueFigures } from './snapshot.js';

/** A size in ddrescue's way (`4193 kB`), at most four digits for the ddferry lines. */
function bytes(n: number, binary: boolean): string {
  return `${formatNum(n, { binary, limit: 9999 })}B`;
}

/** The engine's figures back in the shape ddrescue's status block is drawn from. */
function toStatusSnapshot(r: RescueFigures): StatusSnapshot {
  return {
    ipos: r.ipos,
    opos: r.opos,
    nonTried: r.nonTried,
    nonTrimmed: r.nonTrimmed,
    nonScraped: r.nonScraped,
    badSize: r.badSector,
    finished: r.rescued,
    badAreas: r.badAreas,
    readErrors: r.readErrors,
    slowReads: r.slowReads ?? 0,
    showSlowReads: r.slowReads !== null,
    currentRate: r.currentRate,
    averageRate: r.averageRate,
    errorRate: r.errorRate,
    runTime: r.runTime,
    remainingTime: r.remainingTime ?? -1,
    sinceLastSuccess: r.sinceLastSuccess ?? -1,
    percentRescued: formatPercentage(r.rescued, r.domainSize, 3, 2, false),
  };
}

function pieces(n: number): string {
  return `${n} piece${n === 1 ? '' : 's'}`;
}

/** `12 s`, `3m 4s`, `2h 5m` (ddrescue's way of showing a duration). */
function duration(seconds: number): string {
  return formatTime(Math.floor(seconds), seconds >= 180).trim();
}

function linkText(s: ProgressSnapshot): string | null {
  if (!s.link) return null;
  const l = s.link;
  const where = l.state === 'connected' ? `connected to ${l.url}`
    : `${l.state === 'connecting' ? 'connecting to' : 'waiting to retry'} ${l.url}, down for ${duration(l.since)}${l.lastError ? ` (${l.lastError})` : ''}`;
  return `${where}, ${pieces(l.merged)} merged this run`;
}

/** Used space first: how much of it, and of the free space, is rescued. */
function usedText(u: NonNullable<ProgressSnapshot['usedSpace']>, binary: boolean): string {
  return `${bytes(u.rescued, binary)} of ${bytes(u.size, binary)} rescued; free space: ${bytes(u.freeRescued, binary)} of ${bytes(u.freeSize, binary)}`;
}

/** The read in progress when it has taken a second or more (a failing disk's slow read). */
function readingText(s: ProgressSnapshot, binary: boolean): string | null {
  const r = s.reading;
  if (r === null || r.seconds < 1) return null;
  return `at ${bytes(r.pos, binary)}, ${bytes(r.size, binary)}, for ${duration(r.seconds)} (the disk has not answered yet)`;
}

/** Free space, or that the file system does not tell it. */
function freeText(free: number | null, binary: boolean): string {
  return free === null ? 'free space unknown' : `${bytes(free, binary)} free`;
}

/** A spool's capacity; 0 is a stick whose size the file system does not tell. */
function capacityText(capacity: number, binary: boolean): string {
  return capacity === 0 ? 'an unknown size' : bytes(capacity, binary);
}

/** `about 3 more trips at this rate` (this trip's compression), or null when unknown. */
function tripsText(s: ProgressSnapshot): string | null {
  const n = s.stick?.tripsLeft;
  if (n === null || n === undefined) return null;
  return n === 0 ? 'the rest fits on this stick at this rate' : `about ${n} more trip${n === 1 ? '' : 's'} at this rate`;
}

function stickText(s: ProgressSnapshot, binary: boolean): string | null {
  if (!s.stick) return null;
  const trip = s.stick.trip === null ? '' : `trip ${s.stick.trip}, `;
  const trips = tripsText(s);
  return `${trip}${s.stick.bundles} bundle${s.stick.bundles === 1 ? '' : 's'} on the stick, ${freeText(s.stick.freeBytes, binary)}${trips === null ? '' : `, ${trips}`}`;
}

/** `4193 MB rescued as 1804 MB (43%)`: what this run stored and what it takes on the wire or the stick. */
function carriedText(s: ProgressSnapshot, binary: boolean): string | null {
  const c = s.carried;
  if (c === null || c.rescuedBytes === 0) return null;
  return `${bytes(c.rescuedBytes, binary)} rescued as ${bytes(c.carriedBytes, binary)} (${Math.round((100 * c.carriedBytes) / c.rescuedBytes)}%)`;
}

function phaseText(s: ProgressSnapshot): string {
  const message = s.rescue?.message;
  if (s.phase === 'rescuing' && message) return `rescuing: ${message}`;
  if (s.phase === 'draining') return 'draining: waiting for the assembler to hold the spool';
  if (s.phase === 'moving') return 'moving the spool\'s pieces onto the stick';
  if (s.phase === 'waiting') return 'waiting for the source';
  return s.phase;
}

/**
 * The terminal view: ddrescue's status block (when the engine has reported once),
 * then the ddferry lines, each without a newline.
 * @param binaryPrefixes `-B`: Ki, Mi... by 1024.
 */
export function formatProgressBlock(s: ProgressSnapshot, binaryPrefixes = false): string[] {
  const lines = s.rescue ? formatStatusBlock(toStatusSnapshot(s.rescue), binaryPrefixes).slice(0, -1).split('\n') : [];
  const reading = readingText(s, binaryPrefixes);
  if (reading !== null) lines.push(`  reading: ${reading}`);
  if (s.paused) lines.push(`   paused: ${s.paused.text}`);
  if (s.usedSpace) lines.push(`     used: ${usedText(s.usedSpace, binaryPrefixes)}`);
  const c = s.chunk;
  if (c) lines.push(`    chunk: ${c.index + 1}/${c.count} at ${bytes(c.pos, binaryPrefixes)}, ${bytes(c.offset, binaryPrefixes)} into its ${bytes(c.size, binaryPrefixes)}`);
  lines.push(`    spool: ${pieces(s.spool.pieces)}, ${bytes(s.spool.bytes, binaryPrefixes)} of ${capacityText(s.spool.capacity, binaryPrefixes)}`);
  const carried = carriedText(s, binaryPrefixes);
  if (carried !== null) lines.push(`  carried: ${carried}${s.link ? ' on the wire' : s.stick ? ' on the stick' : ''}`);
  const link = linkText(s);
  if (link !== null) lines.push(`     link: ${link}`);
  const stick = stickText(s, binaryPrefixes);
  if (stick !== null) lines.push(`    stick: ${stick}`);
  lines.push(`    phase: ${phaseText(s)}`);
  return lines;
}

/** The line view: `ddferry-reader: [TIME] PHASE, rescued ..., ...` (no newline). */
export function formatProgressLine(s: ProgressSnapshot, binaryPrefixes = false): string {
  const parts: string[] = [];
  const r = s.rescue;
  if (r) {
    parts.push(
      `rescued ${formatPercentage(r.rescued, r.domainSize, 3, 2, false).trim()} (${bytes(r.rescued, binaryPrefixes)})`,
      `bad areas ${r.badAreas}`,
      `read errors ${r.readErrors}`,
      `${bytes(r.currentRate, binaryPrefixes)}/s`,
      `remaining ${formatTime(r.remainingTime ?? -1, (r.remainingTime ?? 0) >= 180)}`,
    );
  }
  const reading = readingText(s, binaryPrefixes);
  if (reading !== null) parts.push(`reading ${reading}`);
  if (s.paused) parts.push(`paused: ${s.paused.text}`);
  if (s.usedSpace) parts.push(`used ${usedText(s.usedSpace, binaryPrefixes)}`);
  if (s.chunk) parts.push(`chunk ${s.chunk.index + 1}/${s.chunk.count}`);
  parts.push(`spool ${pieces(s.spool.pieces)} ${bytes(s.spool.bytes, binaryPrefixes)} of ${capacityText(s.spool.capacity, binaryPrefixes)}`);
  if (s.link) parts.push(`link ${s.link.state}${s.link.state === 'connected' ? '' : ` for ${duration(s.link.since)}`} (${s.link.merged} merged)`);
  const carried = carriedText(s, binaryPrefixes);
  if (carried !== null) parts.push(`carried ${carried}`);
  const trips = tripsText(s);
  if (s.stick) parts.push(`stick${s.stick.trip === null ? '' : ` trip ${s.stick.trip}`} (${s.stick.bundles} bundles, ${freeText(s.stick.freeBytes, binaryPrefixes)}${trips === null ? '' : `, ${trips}`})`);
  const phase = s.phase === 'rescuing' && r?.message ? `rescuing (${r.message})` : s.phase;
  return `ddferry-reader: [${formatTimeDhms(s.time)}] ${phase}, ${parts.join(', ')}`;
}

/** The `--json` view: one line of JSON (no newline), `{"type":"progress", ...snapshot}`. */
export function formatProgressJson(s: ProgressSnapshot): string {
  return JSON.stringify({ type: 'progress', ...s });
}

/** The three views, for the shared progress display (`-B` is not drawn there: it is a rescue option of the block only). */
export function rescueProgressView(binaryPrefixes = false): ProgressView<ProgressSnapshot> {
  return {
    block: (s) => formatProgressBlock(s, binaryPrefixes),
    lines: (s) => `${formatProgressLine(s, binaryPrefixes)}\n`,
    json: (s) => formatProgressJson(s),
  };
}

export const RESCUE_PROGRESS_VIEW = rescueProgressView();
