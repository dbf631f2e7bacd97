/**
 * PNG encoding of map pictures with pngjs. pngjs is loaded on first use, so importing
 * this package does not load it.
 */
import type { RgbaImage } from './render.js';

/**
 * Encode `image` (RGBA, 8 bits a channel) as a PNG file's bytes.
 * @throws Error if the pixel buffer does not match the size (a bug in the caller).
 */
export async function encodePng(image: RgbaImage): Promise<Buffer> {
  if (image.data.length !== image.width * image.height * 4) throw new Error(`internal: ${image.width}x${image.height} RGBA needs ${image.width * image.height * 4} bytes, got ${image.data.length}`);
  const { PNG } = await import('pngjs');
  const png = new PNG({ width: image.width, height: image.height });
  png.data = Buffer.from(image.data.buffer, image.data.byteOffset, image.data.length);
  // Map pictures are rows of flat colour repeated down each cell: the "up" filter and
  // plain deflate pack an 800x600 map into about 9 KB in 20 ms, where pngjs's default
  // (adaptive filters, RLE strategy, level 9) takes six times as long for 36 KB.
  return PNG.sync.write(png, { colorType: 6, filterType: 2, deflateStrategy: 0, deflateLevel: 6 });
}

/** Decode PNG bytes into RGBA pixels (for tests and tools). */
export async function decodePng(bytes: Uint8Array): Promise<RgbaImage> {
  const { PNG } = await import('pngjs');
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  return { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length) };
}
