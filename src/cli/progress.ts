// A progress line for long runs on a terminal: virtual time, wall time and VMBus packets per
// second, redrawn in place below the log (cli-progress). The caller creates one only when the
// output is a terminal and not --json; it shows itself once the run has lasted `delayMs`.
import { MultiBar, type SingleBar } from 'cli-progress';

/** What the line shows, read at each redraw. */
export interface ProgressSource {
  /** Virtual time, ns. */
  virtualNs(): number;
  /** VMBus packets the host has read and written so far. */
  packets(): number;
}

/** The terminal: what cli-progress needs of a stream. */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  stream: ProgressStream;
  /** Wall-clock ms before the line appears (short runs never show one). */
  delayMs: number;
  /** Where the run stops in virtual time, when it is known: then a bar fills up. */
  endNs?: number;
  /** Redraws per second. */
  rate?: number;
}

const seconds = (ns: number) => (ns / 1e9).toFixed(1);

export class Progress {
  private multibar: MultiBar | undefined;
  private bar: SingleBar | undefined;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly startMs = performance.now();
  private last = { ms: this.startMs, packets: 0 };
  private rate = 0;

  constructor(
    private readonly source: ProgressSource,
    private readonly opts: ProgressOptions,
    /** Where a log line goes while no progress line is shown. */
    private readonly write: (line: string) => void,
  ) {
    this.last.packets = source.packets();
    this.timer = setInterval(() => this.redraw(), 1000 / (opts.rate ?? 4));
    this.timer.unref?.();
    if (opts.delayMs <= 0) this.redraw();
  }

  /** A log line, printed above the progress line. */
  print(line: string): void {
    if (this.multibar) this.multibar.log(`${line}\n`);
    else this.write(line);
  }

  /** Removes the line, leaving the log as if it had never been there. */
  stop(): void {
    clearInterval(this.timer);
    if (!this.multibar) return;
    this.multibar.update(); // prints the log lines it still holds
    this.multibar.stop();
    this.multibar = undefined;
  }

  private redraw(): void {
    const now = performance.now();
    if (!this.multibar) {
      if (now - this.startMs < this.opts.delayMs) return;
      const known = this.opts.endNs !== undefined;
      this.multibar = new MultiBar({
        stream: this.opts.stream as NodeJS.WritableStream,
        format: `${known ? '{bar} ' : ''}{virtual} s virtual${known ? ' of {end}' : ''} · {wall} s wall · {rate} packets/s`,
        hideCursor: true,
        clearOnComplete: true,
        gracefulExit: false,
        barsize: 20,
      });
      this.bar = this.multibar.create(this.opts.endNs ?? 1, 0, this.payload(now));
    }
    const packets = this.source.packets();
    if (now - this.last.ms >= 250) {
      this.rate = Math.round(((packets - this.last.packets) * 1000) / (now - this.last.ms));
      this.last = { ms: now, packets };
    }
    this.bar!.update(Math.min(this.source.virtualNs(), this.opts.endNs ?? 0), this.payload(now));
    this.multibar.update();
  }

  private payload(now: number): Record<string, string | number> {
    return { virtual: seconds(this.source.virtualNs()), end: seconds(this.opts.endNs ?? 0), wall: seconds((now - this.startMs) * 1e6), rate: this.rate };
  }
}
