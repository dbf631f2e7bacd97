/**
 * `ddferry-map render MAPFILE -o OUT.png|OUT.svg`: a picture of a mapfile in the
 * manner of ddrescueview, optionally with the pipeline's shipped and merged overlays.
 */
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { parseArgs as parseNodeArgs } from 'node:util';

import { parseNumberArgument } from '../args.js';
import type { CliIo } from '../ddrescuelog/context.js';
import { MapfileError } from '../errors.js';
import { readMapfile } from '../io.js';
import { encodePng } from '../render-png.js';
import { type CellMix, type StateRuns, LAYOUT_DEFAULTS, drawMapPixels, drawMapSvg, layoutMap, overlayRuns } from '../render.js';
import type { SblockVector } from '../sblock-vector.js';

export const RENDER_USAGE = `Usage: ddferry-map render MAPFILE -o OUT.png|OUT.svg [options]
Draws MAPFILE as a grid of cells in ddrescueview's colours, with a title line and a legend.
Options:
  -o, --output FILE          the picture; its type follows the name (.png or .svg)
      --width N              picture width in pixels, 320 to 4096 [${LAYOUT_DEFAULTS.width}]
      --height N             picture height in pixels, 240 to 4096 [${LAYOUT_DEFAULTS.height}]
      --sector-size N        cells hold whole sectors of N bytes [${LAYOUT_DEFAULTS.sectorSize}]
      --mix blend|worst      cells with several statuses: ddrescueview's weighted blend,
                             or the colour of the worst status in the cell [${LAYOUT_DEFAULTS.mix}]
      --overlay-shipped MAP  '+' blocks of MAP are shipped: MAPFILE's '+' bytes show as
                             shipped (violet) or rescued, not shipped (teal)
      --overlay-merged MAP   '+' blocks of MAP are merged into the image (dark green)
  -h, --help                 this text
Exit status: 0 done, 1 usage, file or size problem, 2 malformed mapfile.
`;

const OPTIONS = {
  output: { type: 'string', short: 'o' },
  width: { type: 'string' },
  height: { type: 'string' },
  'sector-size': { type: 'string' },
  mix: { type: 'string' },
  'overlay-shipped': { type: 'string' },
  'overlay-merged': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function lastEnd(v: SblockVector): number {
  return v.length > 0 ? v.end(v.length - 1) : 0;
}

/** Run `ddferry-map render` with `argv` (after `render`). Returns the exit status. */
export async function runRender(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseNodeArgs({ args: [...argv], allowPositionals: true, strict: true, options: OPTIONS });
  } catch (err) {
    io.stderr(`ddferry-map render: ${(err as Error).message} [ERR_USAGE]\nTry 'ddferry-map render --help'.\n`);
    return 1;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(RENDER_USAGE);
    return 0;
  }
  if (positionals.length !== 1 || values.output === undefined) {
    io.stderr(`ddferry-map render: needs one MAPFILE and -o OUT.png or OUT.svg [ERR_USAGE]\nTry 'ddferry-map render --help'.\n`);
    return 1;
  }
  const at = (name: string): string => (isAbsolute(name) ? name : resolve(io.cwd, name));
  const out = at(values.output);
  const type = extname(out).toLowerCase();
  if (type !== '.png' && type !== '.svg') {
    throw new MapfileError('ERR_RENDER_OUTPUT_TYPE', `${out}: The picture type follows the output name: end it with .png or .svg.`, { file: out });
  }
  const mix = (values.mix ?? LAYOUT_DEFAULTS.mix) as CellMix;
  if (mix !== 'blend' && mix !== 'worst') {
    io.stderr(`ddferry-map render: --mix '${values.mix}': use blend or worst [ERR_ARG_INVALID]\n`);
    return 1;
  }
  const width = values.width === undefined ? LAYOUT_DEFAULTS.width : parseNumberArgument(values.width, '--width', 0, 320, 4096);
  const height = values.height === undefined ? LAYOUT_DEFAULTS.height : parseNumberArgument(values.height, '--height', 0, 240, 4096);
  const sectorSize = values['sector-size'] === undefined ? LAYOUT_DEFAULTS.sectorSize : parseNumberArgument(values['sector-size'], '--sector-size', 0, 1, 1 << 20);

  const name = positionals[0]!;
  const m = await readMapfile(at(name));
  let runs: StateRuns = m.blocks;
  const shippedName = values['overlay-shipped'];
  const mergedName = values['overlay-merged'];
  const overlay = shippedName !== undefined || mergedName !== undefined;
  if (overlay) {
    const load = async (file: string | undefined): Promise<SblockVector | undefined> => {
      if (file === undefined) return undefined;
      const v = (await readMapfile(at(file))).blocks;
      const [end, mine] = [lastEnd(v), lastEnd(m.blocks)];
      if (end !== mine && Number.isFinite(mine)) {
        throw new MapfileError('ERR_RENDER_OVERLAY_SIZE', `${at(file)}: This overlay ends at ${end} bytes, ${name} at ${mine}: they describe different sources.`, { hint: 'Give the overlay of this rescue.', file: at(file) });
      }
      return v;
    };
    runs = overlayRuns(m.blocks, { shipped: await load(shippedName), merged: await load(mergedName) });
  }
  const layout = layoutMap(runs, { width, height, sectorSize, mix, name: basename(name), currentPos: m.currentPos, overlay });
  const bytes = type === '.png' ? await encodePng(drawMapPixels(layout)) : drawMapSvg(layout);
  await writePicture(out, bytes);
  io.stdout(`${values.output}: ${width}x${height}, ${layout.cellCount} cells of ${layout.bytesPerCell} bytes over ${layout.size} bytes\n`);
  return 0;
}

/** Write `data` to `path` through a temporary file and a rename: never a half picture. */
async function writePicture(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let renamed = false;
  try {
    const fh = await open(tmp, 'w', 0o666);
    try {
      await fh.writeFile(data);
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
  } catch (err) {
    throw new MapfileError('ERR_RENDER_WRITE', `${path}: The picture cannot be written (${(err as Error).message}).`, { hint: 'Check the folder exists, its permissions and free space.', file: path, cause: err });
  } finally {
    if (!renamed) await rm(tmp, { force: true });
  }
}
