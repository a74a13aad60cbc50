// Reads text back from a picture of the guest's screen: each 8x16 cell's lit pixels compared with
// the console font's glyphs (src/guest/font.ts, the font the guest's fbcon draws with). The
// test reads what the canvas shows, so what it finds there went guest → VRAM → host → page.
import { PNG } from 'pngjs';
import { VGA8x16 } from '../src/guest/font.js';

const CELL_W = VGA8x16.width;
const CELL_H = VGA8x16.height;

/** Glyph bits (16 bytes, bit 7 leftmost) → the printable ASCII character drawn with them. */
const GLYPHS: ReadonlyMap<string, string> = (() => {
  const m = new Map<string, string>();
  for (let c = 0x7e; c >= 0x20; c--) m.set(VGA8x16.glyph(c).join(','), String.fromCharCode(c));
  return m;
})();

/** The screen's text, a line per row of cells, trailing blanks trimmed; '\u25a1' where no glyph matches. */
export function screenText(png: Uint8Array): string[] {
  const img = PNG.sync.read(Buffer.from(png));
  // The console draws grey (0xaa) on black: a pixel is lit when it is nearer the grey.
  const lit = (x: number, y: number) => img.data[(y * img.width + x) * 4]! > 0x55;
  const lines: string[] = [];
  for (let row = 0; row < Math.floor(img.height / CELL_H); row++) {
    let line = '';
    for (let col = 0; col < Math.floor(img.width / CELL_W); col++) {
      const bits: number[] = [];
      for (let y = 0; y < CELL_H; y++) {
        let b = 0;
        for (let x = 0; x < CELL_W; x++) if (lit(col * CELL_W + x, row * CELL_H + y)) b |= 0x80 >> x;
        bits.push(b);
      }
      line += GLYPHS.get(bits.join(',')) ?? '\u25a1';
    }
    lines.push(line.trimEnd());
  }
  return lines;
}
