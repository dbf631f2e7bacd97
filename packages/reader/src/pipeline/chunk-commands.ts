/**
 * The texts `ChunkFileWriter` leaves beside the chunk files: `DDRESCUE-COMMANDS.txt`,
 * the exact GNU ddrescue commands for a person on PC_B, and `ddrescue-commands.sh`,
 * the same commands as a script that stops at the first failure.
 *
 * Per file X (S = the source position of its first byte for a packed file):
 *
 * | step | command | why |
 * |---|---|---|
 * | copy | `ddrescue [-o S] -m X.map X.raw "$IMAGE" "$IMAGE.logs/X.log"` | only X's rescued bytes; packed: input byte k goes to image byte S+k |
 * | check | `ddrescuelog -D -m X.map "$IMAGE.logs/X.log"` | ddrescue exits 0 even when it could not read the stick |
 * | to image coordinates | `ddrescuelog --shift -o S X.log > X.image.map` (packed) | ddrescue's mapfile is in input coordinates |
 * | add to the image map | `ddrescuelog -z X.image.map "$IMAGE.map" > "$IMAGE.map.new"`, `sync "$IMAGE" "$IMAGE.map.new"`, `mv`, `sync` of the image's folder | `+` only over fsynced data (A1), replaced atomically |
 * | receipt | `{ cat receipts/ddrescue-done.txt; echo X.raw; } > receipts/ddrescue-done.new`, `sync`, `mv` over `ddrescue-done.txt`, `sync receipts` | only once the image map holds it durably (R2) |
 *
 * `sync FILE...` (GNU coreutils 8.24 and later) fsyncs just those files and folders.
 */

/** One span file as the commands list it. */
export interface ChunkFileEntry {
  /** `chunk0003-000123-01`. */
  readonly base: string;
  readonly chunk: number;
  readonly seq: number;
  readonly span: number;
  readonly layout: 'packed' | 'sparse';
  /** Source position of the span's first byte (S). */
  readonly pos: number;
  /** Source position after its last byte. */
  readonly end: number;
  /** Size of the `.raw` file. */
  readonly fileSize: number;
  /** Rescued bytes it holds. */
  readonly dataBytes: number;
}

export interface CommandsInfo {
  readonly rescueId: string;
  readonly sourceSize: number;
  readonly writtenAt: Date;
  /** Lines about files left out. */
  readonly notes: readonly string[];
}

/** The all-`?` GNU ddrescue mapfile of the whole source: the image map before the first merge. */
export const IMAGE_START_MAP = 'ddrescue-image-start.map';
/** Where PC_B writes the names of merged files, relative to the rescue folder. */
export const DDRESCUE_RECEIPTS = 'receipts/ddrescue-done.txt';
const RECEIPTS_NEW = 'receipts/ddrescue-done.new';

/**
 * The receipt: the list rewritten whole through `receipts/ddrescue-done.new` and renamed, not
 * appended to with `>>`: a rename never leaves a torn line, and fusefat (FUSE FAT32) cannot
 * extend an existing file (EPERM).
 */
function receiptLines(name: string): string[] {
  return [
    `{ cat ${DDRESCUE_RECEIPTS}; echo ${name}; } > ${RECEIPTS_NEW}`,
    `sync ${RECEIPTS_NEW}`,
    `mv ${RECEIPTS_NEW} ${DDRESCUE_RECEIPTS}`,
    'sync receipts',
  ];
}

function blockLines(e: ChunkFileEntry, quiet: string): string[] {
  const x = e.base;
  const log = `"$IMAGE.logs/${x}.log"`;
  const packed = e.layout === 'packed';
  const lines = [
    packed
      ? `ddrescue${quiet} -o ${e.pos} -m ${x}.map ${x}.raw "$IMAGE" ${log}`
      : `ddrescue${quiet} -m ${x}.map ${x}.raw "$IMAGE" ${log}`,
    `ddrescuelog -D -m ${x}.map ${log}`,
  ];
  if (packed) {
    lines.push(`ddrescuelog --shift -o ${e.pos} ${log} > "$IMAGE.logs/${x}.image.map"`);
    lines.push(`ddrescuelog -z "$IMAGE.logs/${x}.image.map" "$IMAGE.map" > "$IMAGE.map.new"`);
  } else {
    lines.push(`ddrescuelog -z ${log} "$IMAGE.map" > "$IMAGE.map.new"`);
  }
  // targeted syncs: a bare `sync` waits for every mounted file system, a hung one included
  lines.push('sync "$IMAGE" "$IMAGE.map.new"', 'mv "$IMAGE.map.new" "$IMAGE.map"', 'sync "$(dirname "$IMAGE")"',
    ...receiptLines(`${x}.raw`));
  return lines;
}

function describe(e: ChunkFileEntry): string {
  const how = e.layout === 'packed' ? `packed (file byte k is source byte ${e.pos}+k)` : 'sparse (file byte p is source byte p)';
  return `# ${e.base}.raw: ${how}, source bytes ${e.pos} to ${e.end}, ${e.dataBytes} bytes rescued`;
}

function utc(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

const SETUP = ['mkdir -p receipts "$IMAGE.logs"', `[ -e ${DDRESCUE_RECEIPTS} ] || : > ${DDRESCUE_RECEIPTS}`, `[ -e "$IMAGE.map" ] || cp ${IMAGE_START_MAP} "$IMAGE.map"`];

/** The text of `DDRESCUE-COMMANDS.txt` for `entries` (in the order given). */
export function formatDdrescueCommands(entries: readonly ChunkFileEntry[], info: CommandsInfo): string {
  const data = entries.reduce((n, e) => n + e.dataBytes, 0);
  const out = [
    '# DDRESCUE-COMMANDS.txt: how to merge the chunk files of this folder into the image on PC_B',
    '# with GNU ddrescue alone (ddrescue and ddrescuelog, 1.27 or later) and GNU coreutils 8.24 or later',
    '# (any Linux since 2015: "sync FILE" makes just those files durable).',
    '#',
    `# Rescue ${info.rescueId}, source of ${info.sourceSize} bytes. Written by ddferry-reader at ${utc(info.writtenAt)}:`,
    `# ${entries.length} chunk file(s), ${data} bytes of rescued data.`,
    '#',
    '# 1. Open a shell (sh or bash) in this folder (cd /media/STICK/ddferry/<rescue id>).',
    '# 2. Set IMAGE below to the image file on PC_B (made if missing; use the same one on every trip).',
    '#    "$IMAGE.map" is the image mapfile: a GNU ddrescue mapfile of the whole source in image',
    '#    coordinates, + where the image holds rescued data. "$IMAGE.logs/" keeps ddrescue\'s mapfile',
    '#    of each chunk file.',
    '# 3. Run the lines below in order and stop at the first one that fails (it prints an error or',
    '#    returns a non-zero status): fix the cause and run that block again. Any block can be run',
    '#    again safely; a block already done changes nothing.',
    '# Or all at once, stopping at the first failure:  sh ddrescue-commands.sh /path/to/disk.img',
    '#',
    '# Each block: ddrescue copies the rescued bytes of one file (the + blocks of its .map) into the',
    '# image. A packed file (sticks without sparse files: FAT32, exFAT, FUSE) holds source byte S+k at',
    '# byte k, so ddrescue gets -o S and the .map is in the file\'s own coordinates; a sparse file holds',
    '# source byte p at byte p. "ddrescuelog -D" checks ddrescue copied all of it (if it fails, the',
    '# stick could not be read: copy the file elsewhere and retry). "ddrescuelog --shift" moves',
    '# ddrescue\'s mapfile of a packed file to image coordinates; "ddrescuelog -z" adds it to',
    '# "$IMAGE.map". The last four lines add the file\'s name to receipts/ddrescue-done.txt, the receipt',
    '# PC_A reads on its next trip (it then deletes the file from the stick): run them only after the',
    '# lines before them succeeded. (The list is rewritten and renamed rather than appended to with',
    '# ">>": no torn line after a crash, and FUSE FAT drivers such as fusefat cannot append.)',
    '#',
    '# Only rescued bytes travel. Bad areas (-, /, *) and what is not read yet are recorded in',
    '# PC_A\'s common.map only; PC_A goes on with them.',
    '#',
    '# With ddferry on PC_B, a file can be merged instead with (see the assembler README for --map):',
    '#   ddferry-assembler import-ddrescue X.raw --domain X.src.map --packed IMAGE   (packed)',
    '#   ddferry-assembler import-ddrescue X.raw --domain X.map IMAGE                (sparse)',
    ...info.notes.map((n) => `# NOTE: ${n}`),
    '',
    'IMAGE=/path/to/disk.img',
    ...SETUP,
  ];
  for (const e of entries) out.push('', describe(e), ...blockLines(e, ''));
  out.push('', `# End of the list (${entries.length} file(s)).`, '');
  return out.join('\n');
}

/** The text of `ddrescue-commands.sh IMAGE`: the same commands, stopping at the first failure. */
export function formatDdrescueScript(entries: readonly ChunkFileEntry[], info: CommandsInfo): string {
  const out = [
    '#!/bin/sh',
    '# ddrescue-commands.sh IMAGE: the commands of DDRESCUE-COMMANDS.txt (same folder), in order,',
    `# stopping at the first failure. Rescue ${info.rescueId}, written at ${utc(info.writtenAt)}.`,
    '# Run it with: sh ddrescue-commands.sh /path/to/disk.img',
    'set -eu',
    'if [ $# -ne 1 ]; then echo "usage: sh ddrescue-commands.sh IMAGE   (the image file on PC_B)" >&2; exit 1; fi',
    'case $1 in /*) IMAGE=$1 ;; *) IMAGE=$(pwd)/$1 ;; esac',
    'cd "$(dirname "$0")"',
    'for tool in ddrescue ddrescuelog; do',
    '  command -v $tool >/dev/null || { echo "$tool not found: install GNU ddrescue (apt-get install gddrescue)" >&2; exit 1; }',
    'done',
    'failed() { echo "ddrescue-commands.sh: $1 was not merged: $2. Fix it, then run the script again (files already merged change nothing)." >&2; exit 1; }',
    ...SETUP,
  ];
  for (const e of entries) {
    const [copy, check, ...rest] = blockLines(e, ' -q');
    out.push('', describe(e), `echo "${e.base}.raw"`, `${copy!} || failed ${e.base}.raw "ddrescue failed"`,
      `${check!} || failed ${e.base}.raw "ddrescue could not copy all of it (see \\"$IMAGE.logs/${e.base}.log\\"): the stick may be failing"`, ...rest);
  }
  out.push('', `echo "${entries.length} file(s) merged into $IMAGE; image map: $IMAGE.map"`, '');
  return out.join('\n');
}
