/**
 * The texts `ChunkFileWriter` leaves beside the chunk files: `DDRESCUE-COMMANDS.txt`,
 * the exact GNU ddrescue commands for a person on PC_B, and `ddrescue-commands.sh`,
 * the same commands as a script that stops at the first failure.
 *
 * Per file X (S = the source position of its first byte for a packed file), what the
 * line `merge_packed X S SIZE` (or `merge_sparse X SIZE`) runs:
 *
 * | step | command | why |
 * |---|---|---|
 * | size | `[ "$(wc -c < X.raw)" -eq SIZE ]` | ddrescue crops its domain to a cut input, and `ddrescuelog -D` then says done |
 * | copy | `ddrescue [-o S] -m X.map X.raw "$IMAGE" "$IMAGE.logs/X.log"` | only X's rescued bytes; packed: input byte k goes to image byte S+k |
 * | check | `ddrescuelog -D -m X.map "$IMAGE.logs/X.log"` | ddrescue exits 0 even when it could not read the stick |
 * | to image coordinates | `ddrescuelog --shift -o S X.log > X.image.map` (packed) | ddrescue's mapfile is in input coordinates |
 * | add to the image map | `ddrescuelog -z X.image.map "$IMAGE.map" > "$IMAGE.map.new"`, `sync "$IMAGE" "$IMAGE.map.new"`, `mv`, `sync` of the image's folder | `+` only over fsynced data (A1), replaced atomically |
 * | receipt | `{ cat receipts/ddrescue-done.txt && echo X.raw; } > receipts/ddrescue-done.txt.new`, `sync`, `mv` over it, `sync receipts` | only once the image map holds it durably (R2) |
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

/**
 * The shell functions both texts define. Each file is one line, `merge_packed X S` or
 * `merge_sparse X`, so a list of thousands of files stays small enough to rewrite after
 * every piece. The first failure sets FAILED and every later line refuses to run, so a
 * list pasted into an interactive shell stops there too. The receipt list is rewritten
 * whole and renamed, not appended to with `>>`: a rename never leaves a torn line, and
 * fusefat (FUSE FAT32) cannot extend an existing file (EPERM). `sync FILE...` fsyncs just
 * those files and folders (a bare `sync` waits for every mount, a hung one included).
 */
const FUNCTIONS = [
  'FAILED=',
  'merge_packed() { # X S SIZE: X.raw (SIZE bytes) holds the source bytes from S on; X.map is in its own coordinates',
  '  skip_or_start "$1" "$3" || return "$?"',
  '  ddrescue $Q -o "$2" -m "$1.map" "$1.raw" "$IMAGE" "$IMAGE.logs/$1.log" &&',
  '  ddrescuelog -D -m "$1.map" "$IMAGE.logs/$1.log" &&',
  '  ddrescuelog --shift -o "$2" "$IMAGE.logs/$1.log" > "$IMAGE.logs/$1.image.map" &&',
  '  add_to_image "$1" "$IMAGE.logs/$1.image.map" || stop "$1"',
  '}',
  'merge_sparse() { # X SIZE: X.raw (SIZE bytes) holds source byte p at byte p; X.map is in source coordinates',
  '  skip_or_start "$1" "$2" || return "$?"',
  '  ddrescue $Q -m "$1.map" "$1.raw" "$IMAGE" "$IMAGE.logs/$1.log" &&',
  '  ddrescuelog -D -m "$1.map" "$IMAGE.logs/$1.log" &&',
  '  add_to_image "$1" "$IMAGE.logs/$1.log" || stop "$1"',
  '}',
  'add_to_image() { # X MAP: the + of MAP (image coordinates) into "$IMAGE.map", then the receipt of X.raw',
  '  ddrescuelog -z "$2" "$IMAGE.map" > "$IMAGE.map.new" &&',
  '  sync "$IMAGE" "$IMAGE.map.new" && mv "$IMAGE.map.new" "$IMAGE.map" && sync "$(dirname "$IMAGE")" &&',
  `  { cat ${DDRESCUE_RECEIPTS} && echo "$1.raw"; } > ${DDRESCUE_RECEIPTS}.new && sync ${DDRESCUE_RECEIPTS}.new &&`,
  `  mv ${DDRESCUE_RECEIPTS}.new ${DDRESCUE_RECEIPTS} && sync receipts`,
  '}',
  'skip_or_start() { # X SIZE: 1 after a failure or for a file of another size; 2 (nothing to do) when PC_A already deleted X.raw',
  '  [ -z "$FAILED" ] || { echo "not run: $1.raw (stopped at $FAILED.raw)" >&2; return 1; }',
  '  [ -e "$1.raw" ] || { echo "$1.raw is not here any more (PC_A deletes merged files): skipped"; return 2; }',
  '  [ "$(wc -c < "$1.raw")" -eq "$2" ] || { echo "$1.raw has $(wc -c < "$1.raw") bytes, not $2: the file is damaged (ddrescue would copy only what is left); delete it and PC_A reads its data again on its next trip" >&2; stop "$1"; return 1; }',
  '  echo "merging $1.raw"',
  '}',
  'stop() { # X',
  '  FAILED=$1',
  '  echo "STOPPED: $1.raw was not merged (see the messages above and the log $IMAGE.logs/$1.log). Fix the cause, then run the list again: files already merged change nothing." >&2',
  '  return 1',
  '}',
];

const SETUP = ['mkdir -p receipts "$IMAGE.logs"', `[ -e ${DDRESCUE_RECEIPTS} ] || : > ${DDRESCUE_RECEIPTS}`, `[ -e "$IMAGE.map" ] || cp ${IMAGE_START_MAP} "$IMAGE.map"`];

/** The line merging `e`: `merge_packed X S SIZE` or `merge_sparse X SIZE`. */
export function mergeLine(e: ChunkFileEntry): string {
  return e.layout === 'packed' ? `merge_packed ${e.base} ${e.pos} ${e.fileSize}` : `merge_sparse ${e.base} ${e.fileSize}`;
}

/** What the functions run for `e`, spelled out (the text shows it for the first file of each layout). */
function expanded(e: ChunkFileEntry): string[] {
  const x = e.base;
  const log = `"$IMAGE.logs/${x}.log"`;
  const lines = e.layout === 'packed'
    ? [`ddrescue -o ${e.pos} -m ${x}.map ${x}.raw "$IMAGE" ${log}`, `ddrescuelog -D -m ${x}.map ${log}`,
      `ddrescuelog --shift -o ${e.pos} ${log} > "$IMAGE.logs/${x}.image.map"`, `ddrescuelog -z "$IMAGE.logs/${x}.image.map" "$IMAGE.map" > "$IMAGE.map.new"`]
    : [`ddrescue -m ${x}.map ${x}.raw "$IMAGE" ${log}`, `ddrescuelog -D -m ${x}.map ${log}`, `ddrescuelog -z ${log} "$IMAGE.map" > "$IMAGE.map.new"`];
  const r = DDRESCUE_RECEIPTS;
  lines.unshift(`[ "$(wc -c < ${x}.raw)" -eq ${e.fileSize} ]`);
  lines.push('sync "$IMAGE" "$IMAGE.map.new"', 'mv "$IMAGE.map.new" "$IMAGE.map"', 'sync "$(dirname "$IMAGE")"',
    `{ cat ${r} && echo ${x}.raw; } > ${r}.new`, `sync ${r}.new`, `mv ${r}.new ${r}`, 'sync receipts');
  return lines;
}

function utc(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** The text of `DDRESCUE-COMMANDS.txt` for `entries` (in the order given). */
export function formatDdrescueCommands(entries: readonly ChunkFileEntry[], info: CommandsInfo): string {
  const data = entries.reduce((n, e) => n + e.dataBytes, 0);
  const out = [
    '# DDRESCUE-COMMANDS.txt: how to merge the chunk files of this folder into the image on PC_B',
    '# with GNU ddrescue alone (ddrescue and ddrescuelog, 1.27 or later) and GNU coreutils 8.24 or',
    '# later (any Linux since 2015).',
    '#',
    `# Rescue ${info.rescueId}, source of ${info.sourceSize} bytes. Written by ddferry-reader at ${utc(info.writtenAt)}:`,
    `# ${entries.length} chunk file(s), ${data} bytes of rescued data.`,
    '#',
    '# Easiest: sh ddrescue-commands.sh /path/to/disk.img   (the same commands; stops at the first failure)',
    '# By hand: open a shell (sh or bash) in this folder (cd /media/STICK/ddferry/<rescue id>), set IMAGE',
    '# below to the image file on PC_B (made if missing; use the same one on every trip), and paste the',
    '# lines below. After a failure the remaining lines refuse to run: fix the cause (the message says',
    '# which file) and paste the list again. Any line can be run again safely: a file already merged',
    '# changes nothing.',
    '#',
    '# "$IMAGE.map" is the image mapfile: a GNU ddrescue mapfile of the whole source in image',
    '# coordinates, + where the image holds rescued data. "$IMAGE.logs/" keeps ddrescue\'s mapfile of',
    '# each chunk file.',
    '#',
    '# One line per file (merge_packed X S SIZE, or merge_sparse X SIZE) runs, with X the file\'s name',
    '# without .raw:',
    '# - a check that X.raw still has its SIZE bytes (ddrescue would copy a cut file without a word).',
    '# - ddrescue copies the rescued bytes of X.raw (the + blocks of X.map) into the image. A packed file',
    '#   (sticks without sparse files: FAT32, exFAT, FUSE) holds source byte S+k at byte k, so ddrescue',
    '#   gets -o S and X.map is in the file\'s own coordinates; a sparse file holds source byte p at byte p.',
    '# - ddrescuelog -D checks ddrescue copied all of it (if not, the stick could not be read: copy the',
    '#   file elsewhere and retry, or delete it: PC_A reads the data of a missing file again next trip).',
    '# - ddrescuelog --shift moves ddrescue\'s mapfile of a packed file to image coordinates; ddrescuelog -z',
    '#   adds it to "$IMAGE.map" (written as "$IMAGE.map.new", synced, renamed).',
    '# - the file\'s name is added to receipts/ddrescue-done.txt: the receipt PC_A reads on its next trip',
    '#   (it then deletes the file from the stick). The list is rewritten and renamed, not appended to',
    '#   with ">>": no torn line after a crash, and FUSE FAT drivers such as fusefat cannot append.',
  ];
  for (const layout of ['packed', 'sparse'] as const) {
    const e = entries.find((x) => x.layout === layout);
    if (e === undefined) continue;
    out.push('#', `# For example "${mergeLine(e)}" runs:`, ...expanded(e).map((l) => `#   ${l}`));
  }
  out.push(
    '#',
    '# Only rescued bytes travel. Bad areas (-, /, *) and what is not read yet are recorded in PC_A\'s',
    '# common.map only; PC_A goes on with them.',
    '#',
    '# With ddferry on PC_B, a file can be merged instead with (see the assembler README for --map):',
    '#   ddferry-assembler import-ddrescue X.raw --domain X.src.map --packed IMAGE   (packed)',
    '#   ddferry-assembler import-ddrescue X.raw --domain X.map IMAGE                (sparse)',
    ...info.notes.map((n) => `# NOTE: ${n}`),
    '',
    'IMAGE=/path/to/disk.img',
    'Q=',
    ...FUNCTIONS,
    ...SETUP,
    '',
    ...entries.map(mergeLine),
    '',
    `# End of the list (${entries.length} file(s)).`,
    '',
  );
  return out.join('\n');
}

/** The text of `ddrescue-commands.sh IMAGE`: the same commands, stopping at the first failure. */
export function formatDdrescueScript(entries: readonly ChunkFileEntry[], info: CommandsInfo): string {
  return [
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
    'Q=-q',
    ...FUNCTIONS,
    ...SETUP,
    '',
    ...entries.map((e) => `${mergeLine(e)} || [ $? -eq 2 ]`),
    '',
    `echo "${entries.length} file(s) in the list; image: $IMAGE, image map: $IMAGE.map"`,
    '',
  ].join('\n');
}
