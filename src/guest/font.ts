// The console font: the public-domain IBM PC 8x8 glyphs (font8x8, from the simple-bitmap-font
// package, CC0) drawn 8x16 by doubling each row, the cell size of Linux's default VGA 8x16 font.
// Glyphs are kept as 16 bytes each, bit 7 the leftmost pixel, for code points 0–255 (ASCII and
// Latin-1); anything else is drawn as '?'.
import BitmapFont from 'simple-bitmap-font';

export interface ConsoleFont {
  readonly width: number;
  readonly height: number;
  /** `height` bytes for the character's cell, bit 7 the leftmost pixel. */
  glyph(codePoint: number): Uint8Array;
}

const WIDTH = 8;
const HEIGHT = 16;
const GLYPHS = 256;

let table: Uint8Array | undefined;

function build(): Uint8Array {
  const src = new BitmapFont();
  const out = new Uint8Array(GLYPHS * HEIGHT);
  for (let c = 0; c < GLYPHS; c++) {
    // 0x80–0x9f are C1 controls: the package has no glyphs for them.
    if (c >= 0x80 && c < 0xa0) continue;
    const rows = src.font8x8_allChars[src.getIndexForLetter(String.fromCharCode(c))] ?? [];
    for (let r = 0; r < 8; r++) {
      let byte = rows[r] ?? 0;
      // font8x8 has bit 0 leftmost; the console's cells have bit 7 leftmost, as VGA fonts do.
      let rev = 0;
      for (let b = 0; b < 8; b++, byte >>= 1) rev = (rev << 1) | (byte & 1);
      out[c * HEIGHT + 2 * r] = rev;
      out[c * HEIGHT + 2 * r + 1] = rev;
    }
  }
  return out;
}

/** The 8x16 console font (built once, on first use). */
export const VGA8x16: ConsoleFont = {
  width: WIDTH,
  height: HEIGHT,
  glyph(codePoint: number): Uint8Array {
    table ??= build();
    const c = codePoint >= 0 && codePoint < GLYPHS ? codePoint : 0x3f;
    return table.subarray(c * HEIGHT, (c + 1) * HEIGHT);
  },
};
