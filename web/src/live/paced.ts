// What the page's live sessions share: their state and controls, and the pacing of a VM whose
// virtual time follows the page's wall clock times the chosen speed, worked in slices between
// which the page draws and takes input. A slice is scheduled by a message, which runs after the
// page's pending work but without the 4 ms clamp of nested timeouts.
import type { LogRecord } from '../../../src/guest/klog.js';
import { ControlPlane } from '../model/control-plane.js';
import type { SessionState } from './session.js';

/** Virtual time one slice may cover at most (speed "as fast as it goes"). */
const MAX_SLICE_NS = 50e6;
/** A machine this far behind its schedule (wall ms) lets its clock slip instead of catching up. */
const MAX_LAG_MS = 250;
/** Frames this far apart mean the page is hidden (no frames come). */
export const NO_FRAMES_MS = 100;

/**
 * Resolves just after the page's next frame (or after NO_FRAMES_MS when no frame comes: a hidden
 * page), so that each slice of work leaves the rest of the frame to the page.
 */
export function afterNextFrame(): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, NO_FRAMES_MS);
    requestAnimationFrame(() => {
      clearTimeout(timer);
      setTimeout(resolve, 0);
    });
  });
}

/** An error as one line: its name and message. */
const describeError = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

export abstract class PacedSession {
  readonly plane = new ControlPlane();
  readonly log: LogRecord[] = [];
  state: SessionState = 'booting';
  /** What stopped it: a power-off, a restart, an error. */
  reason = '';
  speed: number;
  /** Called whenever something changed (the page redraws at its next frame). */
  onChange: () => void = () => {};
  /** The wall and virtual times the pacing counts from, moved on each resume and change of speed. */
  private origin = { wallMs: 0, ns: 0 };
  private readonly wake = new MessageChannel();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(speed: number) {
    this.speed = this.clampSpeed(speed);
    this.wake.port1.onmessage = () => this.tick();
  }

  abstract nowNs(): number;
  /** One slice of work, while running; it schedules the next. */
  protected abstract tick(): void;
  /** The host's request through the shutdown IC. */
  protected abstract shutdownGuest(kind: 'shutdown' | 'restart'): boolean;

  /** The speed this kind of session can keep. */
  protected clampSpeed(speed: number): number {
    return speed;
  }

  pause(): void {
    if (this.state !== 'running') return;
    this.state = 'paused';
    this.onChange();
  }

  resume(): void {
    if (this.state !== 'paused') return;
    this.run();
  }

  setSpeed(speed: number): void {
    this.speed = this.clampSpeed(speed);
    this.rebase();
    this.onChange();
  }

  /** Asks the guest to shut down or restart through the shutdown IC. */
  shutdown(kind: 'shutdown' | 'restart'): boolean {
    if (this.state !== 'running' && this.state !== 'paused') return false;
    return this.shutdownGuest(kind);
  }

  /** Running from now on: the pacing counts from here, and the first slice comes at once. */
  protected run(): void {
    this.state = 'running';
    this.rebase();
    this.onChange();
    this.schedule(true);
  }

  /** The next slice: at once after the page's pending work (busy), or in a couple of milliseconds. */
  protected schedule(busy: boolean): void {
    if (busy) this.wake.port2.postMessage(0);
    else this.timer = setTimeout(() => this.tick(), 2);
  }

  /** The next slice after a timeout, so that the page's frames and input come first. */
  protected scheduleAfterPage(): void {
    this.timer = setTimeout(() => this.tick(), 0);
  }

  /** Where the pacing wants virtual time now (a whole slice on, as fast as it goes). */
  protected paceTarget(wallMs: number): number {
    return this.speed === Infinity ? this.nowNs() + MAX_SLICE_NS : this.origin.ns + (wallMs - this.origin.wallMs) * 1e6 * this.speed;
  }

  /** The virtual time a slice aiming at `target` may cover: at most MAX_SLICE_NS, nothing if ahead. */
  protected sliceNs(target: number): number {
    return Math.min(target - this.nowNs(), MAX_SLICE_NS);
  }

  /** After a slice: a machine too far behind `target` lets its clock slip rather than race to catch up. */
  protected slipIfLate(target: number): void {
    if (this.speed !== Infinity && (target - this.nowNs()) / 1e6 / this.speed > MAX_LAG_MS) this.rebase();
  }

  /** Virtual time follows the wall clock from here. */
  protected rebase(): void {
    this.origin = { wallMs: performance.now(), ns: this.nowNs() };
  }

  /** The guest is over (it powered off or restarts): the session stops. */
  protected ended(reason: string): void {
    this.state = 'off';
    this.reason = reason;
    this.onChange();
  }

  protected fail(e: unknown): void {
    this.state = 'failed';
    this.reason = describeError(e);
    this.onChange();
  }

  /** Stops the pacing for good (dispose): no slice runs after this. */
  protected stopPacing(): void {
    if (this.state !== 'failed') this.state = 'off';
    clearTimeout(this.timer);
    this.wake.port1.close();
  }
}
