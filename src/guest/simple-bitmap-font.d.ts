// Types for the parts of the simple-bitmap-font package (CC0) that src/guest/font.ts uses.
declare module 'simple-bitmap-font' {
  class BitmapFont {
    /** Every glyph: 8 rows of 8 bits, bit 0 the leftmost pixel. */
    font8x8_allChars: number[][];
    getIndexForLetter(letter: string): number;
  }
  export = BitmapFont;
}
