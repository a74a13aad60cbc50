// The guest's console tty: a canonical line discipline (Linux drivers/tty/n_tty.c with the
// default termios: ICRNL, ECHO, ECHOE, ECHOCTL, ECHOK, ISIG) and a small shell behind it that runs
// a few commands. Output goes to sinks (TtySink): the tty keeps its own screen text (the last
// SCREEN_LINES lines) and a framebuffer console can be added as another sink. Nothing here knows
// about video or devices; what the commands report comes from TtySystem.
import { LSVMBUS_CLASS_DESCRIPTIONS } from './lsvmbus-classes.js';
import type { VmbusSnapshot } from '../vmbus/client/snapshot.js';

/** Where the tty's output goes: each call gets text as the tty writes it (with \n, \b, \r). */
export type TtySink = (text: string) => void;

/** What the shell's commands read or do. */
export interface TtySystem {
  readonly system: { hostname: string; kernelRelease: string; arch: string };
  /** RAM as the kernel counts it, bytes; undefined where the kernel does not say. */
  meminfo(): { totalBytes: number; usedBytes: number } | undefined;
  vmbus(): VmbusSnapshot | undefined;
  /** systemctl poweroff: an orderly power-down. */
  poweroff(): void;
}

/** Lines of screen text kept (a console's scrollback). */
export const SCREEN_LINES = 200;
/** Columns before a line wraps (an 80-column console). */
export const SCREEN_COLUMNS = 80;
/** N_TTY_BUF_SIZE: a canonical line holds at most this many characters less one; the rest are dropped. */
export const N_TTY_BUF_SIZE = 4096;


const HELP = ['commands: echo [TEXT…], free, help, lsvmbus, poweroff, uname [-a|-n|-r|-m|-s]'];

export class Tty {
  private readonly sinks: TtySink[] = [];
  /** Screen text: finished lines and the line the cursor is on. */
  private readonly lines: string[] = [];
  private current: string[] = [];
  private cursor = 0;
  /** The canonical line being edited. */
  private line = '';
  /** Screen lines finished since the start (the screen keeps the last SCREEN_LINES). */
  linesWritten = 0;
  /** Characters dropped because the line was full. */
  overruns = 0;
  /** Commands run, in order (bounded like the screen). */
  readonly history: string[] = [];
  private halted = false;

  constructor(private readonly sys: TtySystem) {}

  get prompt(): string {
    return `root@${this.sys.system.hostname}:~# `;
  }

  /** Adds an output sink (the framebuffer console); it sees output from now on. Returns its removal. */
  addSink(sink: TtySink): () => void {
    this.sinks.push(sink);
    return () => {
      const i = this.sinks.indexOf(sink);
      if (i >= 0) this.sinks.splice(i, 1);
    };
  }

  /** The shell starts: its first prompt. */
  start(): void {
    this.write(this.prompt);
  }

  /** Writes to the screen and every sink. */
  write(text: string): void {
    this.render(text);
    for (const s of this.sinks) s(text);
  }

  /** Characters from the keyboard, through the line discipline. */
  input(chars: string): void {
    for (const ch of chars) {
      if (this.halted) return;
      this.receive(ch === '\r' ? '\n' : ch);
    }
  }

  private receive(c: string): void {
    const code = c.charCodeAt(0);
    if (c === '\n') {
      this.write('\n');
      const line = this.line;
      this.line = '';
      return this.run(line);
    }
    if (code === 0x7f || code === 0x08) {
      // VERASE with ECHOE: the last character goes, with as many columns as its echo took.
      if (!this.line) return;
      const last = this.line.at(-1)!;
      this.line = this.line.slice(0, -1);
      this.write(isControl(last) ? '\b \b\b \b' : '\b \b');
      return;
    }
    if (code === 0x15) {
      // VKILL with ECHOK: erase the whole line.
      const width = [...this.line].reduce((n, x) => n + (isControl(x) ? 2 : 1), 0);
      this.line = '';
      this.write('\b \b'.repeat(width));
      return;
    }
    if (code === 0x03) {
      // VINTR with ISIG: the shell drops the line and prompts again.
      this.line = '';
      this.write(`^C\n${this.prompt}`);
      return;
    }
    if (this.line.length >= N_TTY_BUF_SIZE - 1) {
      this.overruns++;
      return;
    }
    this.line += c;
    this.write(isControl(c) ? `^${String.fromCharCode(code === 0x7f ? 0x3f : code + 0x40)}` : c);
  }

  private run(line: string): void {
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (words.length) {
      this.history.push(line.trim());
      if (this.history.length > SCREEN_LINES) this.history.shift();
    }
    const out = words.length ? this.command(words) : [];
    for (const l of out) this.write(`${l}\n`);
    if (!this.halted) this.write(this.prompt);
  }

  private command([cmd, ...args]: string[]): string[] {
    const s = this.sys.system;
    switch (cmd) {
      case 'help':
        return HELP;
      case 'echo':
        return [args.join(' ')];
      case 'uname': {
        const parts: Record<string, string> = { s: 'Linux', n: s.hostname, r: s.kernelRelease, v: '#1 SMP', m: s.arch };
        if (args.length === 0) return ['Linux'];
        if (args.length === 1 && args[0] === '-a') return [`Linux ${s.hostname} ${s.kernelRelease} #1 SMP ${s.arch} GNU/Linux`];
        const flags = args.map((a) => (/^-[snrvm]+$/.test(a) ? a.slice(1) : undefined));
        if (flags.some((f) => f === undefined)) return [`uname: invalid option -- '${args.find((a) => !/^-[snrvm]+$/.test(a))!.replace(/^-+/, '')}'`, "Try 'uname --help' for more information."];
        const want = new Set(flags.join(''));
        return [['s', 'n', 'r', 'v', 'm'].filter((f) => want.has(f)).map((f) => parts[f]).join(' ')];
      }
      case 'free': {
        const m = this.sys.meminfo();
        if (!m) return ['free: /proc/meminfo: No such file or directory'];
        const kib = (b: number) => Math.floor(b / 1024);
        const total = kib(m.totalBytes);
        const used = Math.min(total, kib(m.usedBytes));
        const col = (v: string | number) => String(v).padStart(12);
        return [
          `${' '.repeat(15)}total        used        free      shared  buff/cache   available`,
          `${'Mem:'.padEnd(8)}${col(total)}${col(used)}${col(total - used)}${col(0)}${col(0)}${col(total - used)}`,
          `${'Swap:'.padEnd(8)}${col(0)}${col(0)}${col(0)}`,
        ];
      }
      case 'lsvmbus': {
        const v = this.sys.vmbus();
        if (!v || v.state !== 'connected') return ["/sys/bus/vmbus/devices doesn't exist: exiting..."];
        return [...v.devices].sort((a, b) => a.id - b.id).map((d) => `VMBUS ID ${String(d.id).padStart(2)}: Class_ID = {${d.classId}} - ${LSVMBUS_CLASS_DESCRIPTIONS.get(d.classId) ?? 'Unknown'}`);
      }
      case 'poweroff':
        this.halted = true;
        this.sys.poweroff();
        return [];
      default:
        return [`-sh: ${cmd}: command not found`];
    }
  }

  /** The screen as a terminal would show it: \n ends a line, \b moves back, \r goes to column 0. */
  private render(text: string): void {
    for (const c of text) {
      if (c === '\n') {
        this.newline();
      } else if (c === '\r') {
        this.cursor = 0;
      } else if (c === '\b') {
        if (this.cursor > 0) this.cursor--;
      } else {
        if (this.cursor >= SCREEN_COLUMNS) this.newline();
        this.current[this.cursor++] = c;
      }
    }
  }

  private newline(): void {
    this.lines.push(this.current.join('').trimEnd());
    this.linesWritten++;
    if (this.lines.length > SCREEN_LINES) this.lines.splice(0, this.lines.length - SCREEN_LINES);
    this.current = [];
    this.cursor = 0;
  }

  /** The last `n` screen lines, the cursor's line last (as the screen shows them). */
  screen(n = SCREEN_LINES): string[] {
    return [...this.lines, this.current.join('')].slice(-n);
  }

  state(): TtyState {
    return { screen: this.screen(), line: this.line, halted: this.halted, overruns: this.overruns, history: [...this.history] };
  }
}

export interface TtyState {
  screen: string[];
  /** The line being typed, not yet entered. */
  line: string;
  halted: boolean;
  overruns: number;
  history: string[];
}

const isControl = (c: string): boolean => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f;
