// The framebuffer console (Linux's fbcon over the VT layer, drivers/video/fbdev/core/fbcon.c and
// drivers/tty/vt/vt.c, reduced): a grid of character cells drawn with the 8x16 console font into
// a registered frame buffer, light grey on black, with an underline cursor. It shows the kernel
// log (console_loglevel 7: everything but debug) and whatever a tty writes to it. Each write
// damages the lines it changed; a scroll damages the whole screen. The driver decides when the
// damage reaches the device (hyperv_fb's throttled update work).
import type { Framebuffer } from '../devices/framebuffer.js';
import { VGA8x16, type ConsoleFont } from './font.js';
import { formatRecord, type LogRecord } from './klog.js';

/** VGA's default attribute 0x07: grey (0xaa per channel) on black, as XRGB8888. */
export const FBCON_FG = 0x00aaaaaa;
export const FBCON_BG = 0x00000000;
/** fbcon's CUR_UNDERLINE cursor on a font taller than 10 lines: the cell's last 2 lines. */
export const CURSOR_LINES = 2;
/** Tab stops every 8 columns (vt.c's default tab_stop). */
const TAB = 8;

export class Fbcon {
  cols = 0;
  rows = 0;
  /** The cursor: the cell the next character goes to. */
  row = 0;
  col = 0;
  /** Characters written since the console started. */
  written = 0;
  /** Scrolls since the console started. */
  scrolls = 0;
  private needWrap = false;
  /** The characters on screen, one string per row (for redraw after a mode change). */
  private grid: string[][] = [];
  private words!: Uint32Array;
  private pitch = 0;
  private dirtyTop = Infinity;
  private dirtyBottom = -1;

  constructor(
    readonly fb: Framebuffer,
    readonly font: ConsoleFont = VGA8x16,
  ) {
    this.layout();
    fb.onModeChange(() => this.layout());
  }

  /** "Console: switching to colour frame buffer device 128x48" (vt.c do_bind_con_driver). */
  get banner(): string {
    return `Console: switching to colour frame buffer device ${this.cols}x${this.rows}`;
  }

  /** Lays the grid out for the current mode, keeps the last lines that fit, redraws everything. */
  private layout(): void {
    const m = this.fb.mode;
    this.pitch = m.stride / 4;
    this.words = new Uint32Array(this.fb.screen.buffer, this.fb.screen.byteOffset, Math.floor(this.fb.screen.byteLength / 4));
    const oldRows = this.grid;
    this.cols = Math.floor(m.width / this.font.width);
    this.rows = Math.floor(m.height / this.font.height);
    const used = oldRows.slice(0, this.row + 1).slice(-this.rows);
    this.grid = Array.from({ length: this.rows }, (_, r) => {
      const line = used[r] ?? [];
      return Array.from({ length: this.cols }, (_, c) => line[c] ?? ' ');
    });
    this.row = Math.max(0, Math.min(used.length - 1, this.rows - 1));
    this.col = Math.min(this.col, this.cols - 1);
    this.needWrap = false;
    this.words.fill(FBCON_BG);
    for (let r = 0; r < this.rows; r++) for (let c = 0; c < this.cols; c++) this.drawCell(r, c);
    this.drawCursor(true);
    this.fb.damage(0, 0, m.width, m.height);
  }

  /** Text as a tty would write it: \n (as CR LF), \r, \b, \t, printable characters; other controls are ignored. */
  write(text: string): void {
    if (this.rows === 0 || this.cols === 0) return;
    this.drawCursor(false);
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      this.written++;
      if (ch === '\n') this.newline();
      else if (ch === '\r') {
        this.col = 0;
        this.needWrap = false;
      } else if (ch === '\b') {
        if (this.col > 0) this.col--;
        this.needWrap = false;
      } else if (ch === '\t') {
        this.col = Math.min(this.cols - 1, (Math.floor(this.col / TAB) + 1) * TAB);
      } else if (cp >= 0x20 && cp !== 0x7f) {
        if (this.needWrap) this.newline();
        this.grid[this.row]![this.col] = ch;
        this.drawCell(this.row, this.col);
        if (this.col === this.cols - 1) this.needWrap = true;
        else this.col++;
      }
    }
    this.drawCursor(true);
    this.flushDamage();
  }

  /** The screen's text, one string per row, trailing blanks trimmed. */
  text(): string[] {
    return this.grid.map((r) => r.join('').trimEnd());
  }

  private newline(): void {
    this.col = 0;
    this.needWrap = false;
    if (this.row < this.rows - 1) {
      this.row++;
      return;
    }
    this.scroll();
  }

  /** Moves every line up by one cell and clears the last (fbcon's redraw scroll). */
  private scroll(): void {
    this.scrolls++;
    const lineWords = this.pitch * this.font.height;
    const rowsWords = lineWords * this.rows;
    this.words.copyWithin(0, lineWords, rowsWords);
    this.words.fill(FBCON_BG, rowsWords - lineWords, rowsWords);
    this.grid.shift();
    this.grid.push(Array.from({ length: this.cols }, () => ' '));
    this.markRows(0, this.rows);
  }

  private drawCell(row: number, col: number): void {
    const f = this.font;
    const cp = this.grid[row]![col]!.codePointAt(0)!;
    const glyph = f.glyph(cp);
    const w = this.words;
    let at = row * f.height * this.pitch + col * f.width;
    for (let y = 0; y < f.height; y++, at += this.pitch) {
      const bits = glyph[y]!;
      for (let x = 0; x < f.width; x++) w[at + x] = bits & (0x80 >> x) ? FBCON_FG : FBCON_BG;
    }
    this.markRows(row, row + 1);
  }

  /** Draws (or erases, by redrawing the cell) the underline cursor. */
  private drawCursor(on: boolean): void {
    if (this.rows === 0) return;
    const { row, col } = this;
    this.drawCell(row, col);
    if (!on) return;
    const f = this.font;
    let at = (row * f.height + f.height - CURSOR_LINES) * this.pitch + col * f.width;
    for (let y = 0; y < CURSOR_LINES; y++, at += this.pitch) this.words.fill(FBCON_FG, at, at + f.width);
  }

  private markRows(top: number, bottom: number): void {
    this.dirtyTop = Math.min(this.dirtyTop, top);
    this.dirtyBottom = Math.max(this.dirtyBottom, bottom);
  }

  /** The changed lines, whole width, as one damaged rectangle. */
  private flushDamage(): void {
    if (this.dirtyBottom < 0) return;
    const h = this.font.height;
    this.fb.damage(0, this.dirtyTop * h, this.fb.mode.width, (this.dirtyBottom - this.dirtyTop) * h);
    this.dirtyTop = Infinity;
    this.dirtyBottom = -1;
  }
}

/** Whether printk shows a record on the console at console_loglevel 7 (all but debug; never hvkit's notes). */
export const onConsole = (r: LogRecord): boolean => r.level !== 'debug' && !r.annotation;

/** The line a kernel log record prints on the console. */
export const consoleLine = (r: LogRecord): string => `${formatRecord(r)}\n`;
