// The guest's kernel log: Linux's printk levels and dmesg's "[%5lu.%06lu] " timestamps
// (kernel/printk/printk.c print_time), taken from the guest's own sched_clock. Like Linux's, it
// is a ring of fixed size: the oldest records make room for new ones (printk_ringbuffer.c).
import { BoundedLog } from '../tlfs/bounded-log.js';

export type LogLevel = 'emerg' | 'alert' | 'crit' | 'err' | 'warn' | 'notice' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug'];

export interface LogRecord {
  /** sched_clock at the time of the print, ns. */
  readonly ns: number;
  readonly level: LogLevel;
  readonly text: string;
  /** Set on lines hvkit adds to show a step Linux does silently; never a Linux line. */
  readonly annotation?: boolean;
}

/** "[    0.000000] " for a record at `ns`. */
export function timestamp(ns: number): string {
  const sec = Math.floor(ns / 1e9);
  const usec = Math.floor((ns % 1e9) / 1000);
  return `[${String(sec).padStart(5, ' ')}.${String(usec).padStart(6, '0')}]`;
}

export const formatRecord = (r: LogRecord): string => `${timestamp(r.ns)} ${r.text}`;

/** C's "%#x": 0 prints as "0", everything else as 0x + lower-case hex. */
export const hexAlt = (v: number | bigint): string => (BigInt(v) === 0n ? '0' : `0x${v.toString(16)}`);
export const hex = (v: number | bigint): string => `0x${v.toString(16)}`;

/** log_buf_len with CONFIG_LOG_BUF_SHIFT=17, Linux's default (init/Kconfig) and Debian's. */
export const LOG_BUF_BYTES = 1 << 17;

/**
 * Bytes a record takes in Linux's text ring: its text after an id word, in whole words
 * (printk_ringbuffer.c get_next_lpos/to_blk_size; one-byte characters assumed).
 */
const recordBytes = (r: LogRecord): number => 8 + Math.ceil(r.text.length / 8) * 8;

export class KernelLog {
  private readonly ring: BoundedLog<LogRecord>;
  private readonly listeners = new Set<(r: LogRecord) => void>();

  constructor(
    private readonly clock: () => number,
    bytes = LOG_BUF_BYTES,
  ) {
    this.ring = new BoundedLog(bytes, recordBytes);
  }

  /** The records still in the ring, oldest first. */
  get records(): LogRecord[] {
    return this.ring.items;
  }

  /** Records printed since boot, and those the ring no longer holds. */
  get printed(): number {
    return this.ring.total;
  }
  get dropped(): number {
    return this.ring.dropped;
  }

  onRecord(l: (r: LogRecord) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  printk(level: LogLevel, text: string, annotation = false): void {
    const r: LogRecord = { ns: this.clock(), level, text, ...(annotation ? { annotation } : {}) };
    this.ring.push(r);
    for (const l of this.listeners) l(r);
  }

  info(text: string): void {
    this.printk('info', text);
  }
  warn(text: string): void {
    this.printk('warn', text);
  }
  err(text: string): void {
    this.printk('err', text);
  }
  /** pr_debug: hidden at the default console level. */
  debug(text: string): void {
    this.printk('debug', text);
  }
  /** An hvkit line at debug level that shows a step Linux performs without printing. */
  note(text: string): void {
    this.printk('debug', `hvkit: ${text}`, true);
  }

  /** Lines as dmesg shows them at `level` and above. */
  lines(level: LogLevel = 'info'): string[] {
    const max = LOG_LEVELS.indexOf(level);
    return this.records.filter((r) => LOG_LEVELS.indexOf(r.level) <= max).map(formatRecord);
  }
}
