// A VM in the page's own thread: a Machine whose virtual time follows the wall clock times the
// chosen speed, run in slices of a few milliseconds between which the page draws (Machine's
// pacer sleeps with Atomics.wait, which a page may not: the slicing here does the pacing).
import { StreamDriver } from '../../../src/devices/stream/guest.js';
import type { StreamDevice } from '../../../src/devices/stream/host.js';
import type { HeartbeatHost } from '../../../src/devices/heartbeat/host.js';
import type { KvpHost } from '../../../src/devices/kvp/host.js';
import type { KeyboardHost } from '../../../src/devices/keyboard/host.js';
import type { MouseHost } from '../../../src/devices/mouse/host.js';
import type { SynthvidHost } from '../../../src/devices/video/host.js';
import { Machine, type MachineConfig } from '../../../src/vm/machine.js';
import { CONTROL_KINDS } from '../model/control-plane.js';
import { liveChannels } from './channels.js';
import { guestHvsock, hostHvsock } from '../../../src/vm/hvsock-sides.js';
import { listenEcho, sendEcho } from './hvsock-echo.js';
import { afterNextFrame, NO_FRAMES_MS, PacedSession } from './paced.js';
import type { EchoResult, LiveChannel, LiveSession, StreamStatus } from './session.js';
import type { ScreenDevices } from '../views/screen.js';
import { offerStream, STREAM_MAX_DATA, streamRingBytes } from './stream.js';

/** Wall time one slice of VM work may take. */
const SLICE_MS = 8;
/**
 * VM work stops this long after a frame began, so that the page's drawing of the next frame
 * finds the thread free: slices run after each frame, up to here, then wait for the next frame
 * (in a hidden page, with no frames, slices run back to back).
 */
const FRAME_WORK_MS = 7;

/** Wall time one slice of the boot may take; a slice runs just after each frame. */
const BOOT_SLICE_MS = 10;

export class InThreadSession extends PacedSession implements LiveSession {
  readonly mode = 'in-thread';
  readonly machine: Machine;
  readonly kvp: KvpHost | undefined;
  readonly heartbeat: HeartbeatHost | undefined;
  readonly screen: ScreenDevices;
  stream: LiveSession['stream'];
  /** How many slices ran, and the wall time they took (the page's share of the thread). */
  slices = 0;
  busyMs = 0;
  /** When the last animation frame began, and whether a slice waits for the next one. */
  private frameAt = 0;
  private waitingForFrame = false;
  private frameRequest = 0;
  private readonly unsubscribe: () => void;
  /** Aborted by dispose: a boot in progress stops at its next slice. */
  private readonly booting = new AbortController();

  constructor(config: MachineConfig, opts: { speed: number; stream: boolean }) {
    super(opts.speed);
    this.machine = new Machine(config);
    const m = this.machine;
    this.kvp = m.host.device<KvpHost>('kvp');
    this.heartbeat = m.host.device<HeartbeatHost>('heartbeat');
    this.screen = { video: m.host.device<SynthvidHost>('video'), keyboard: m.host.device<KeyboardHost>('keyboard'), mouse: m.host.device<MouseHost>('mouse') };
    // Messages and signals only: a listener for packets would have every ring packet hexed.
    this.unsubscribe = m.partition.events.on((e) => this.plane.apply(e), { kinds: CONTROL_KINDS });
    m.kernel.log.onRecord((r) => {
      this.log.push(r);
      this.onChange();
    });
    const dev = opts.stream && m.vmbus ? offerStream(m.vmbus.server) : undefined;
    this.stream = dev ? this.streamControl(dev, m.partition.memory.pageSize) : undefined;
    const onFrame = (): void => {
      this.frameAt = performance.now();
      if (this.waitingForFrame) {
        this.waitingForFrame = false;
        this.schedule(true);
      }
      if (this.state === 'booting' || this.state === 'running' || this.state === 'paused') this.frameRequest = requestAnimationFrame(onFrame);
    };
    this.frameRequest = requestAnimationFrame(onFrame);
  }

  /**
   * Boots in slices (Machine.bootAsync: the kernel's boot steps, the page drawing in between),
   * then runs. Resolves once booted, failed or disposed.
   */
  async boot(): Promise<void> {
    // Disposed before its turn came (another Boot click): nothing to do.
    if (this.state !== 'booting') return;
    try {
      await this.machine.bootAsync({ signal: this.booting.signal, sliceMs: BOOT_SLICE_MS, pause: afterNextFrame });
    } catch (e) {
      return this.fail(e);
    }
    // Disposed while it booted.
    if (this.state !== 'booting') return;
    if (this.checkExit()) return;
    this.run();
  }

  nowNs(): number {
    return this.machine.nowNs;
  }

  vps() {
    return this.machine.partition.state().vps;
  }

  channels(): LiveChannel[] {
    return liveChannels(this.machine.vmbus?.server, this.machine.kernel.vmbus?.snapshot());
  }

  protected shutdownGuest(kind: 'shutdown' | 'restart'): boolean {
    return this.machine.host.shutdownGuest(kind);
  }

  /**
   * A guest echo listener on `port` (as socat VSOCK-LISTEN:port EXEC:cat would be) and a host
   * connection through it, as `hvkit run --script 'hvsock echo PORT TEXT'` makes; the VM keeps
   * running meanwhile, so this settles as the guest answers (or fails after 10 s of wall time).
   */
  hvsockEcho(port: number, text: string): Promise<EchoResult> {
    let listener: { close(): void };
    try {
      listener = listenEcho(guestHvsock(this.machine), port);
    } catch (e) {
      return Promise.resolve({ ok: false, error: e instanceof Error ? e.message : String(e) });
    }
    return sendEcho(hostHvsock(this.machine), port, text).finally(() => listener.close());
  }

  dispose(): void {
    this.stopPacing();
    this.booting.abort();
    cancelAnimationFrame(this.frameRequest);
    this.unsubscribe();
    this.machine.host.dispose();
  }

  protected tick(): void {
    if (this.state !== 'running') return;
    const m = this.machine;
    const start = performance.now();
    const target = this.paceTarget(start);
    const want = this.sliceNs(target);
    if (want <= 0) return this.schedule(false);
    const framesRun = start - this.frameAt < NO_FRAMES_MS;
    const frameEnd = this.frameAt + FRAME_WORK_MS;
    if (framesRun && start >= frameEnd) {
      this.waitingForFrame = true;
      return;
    }
    const end = framesRun ? Math.min(start + SLICE_MS, frameEnd) : start + SLICE_MS;
    try {
      m.waitUntil(() => m.exit !== undefined || performance.now() >= end, want);
    } catch (e) {
      return this.fail(e);
    }
    const now = performance.now();
    this.slices++;
    this.busyMs += now - start;
    if (this.checkExit()) return;
    this.slipIfLate(target);
    this.onChange();
    this.schedule(m.nowNs < target);
  }

  /** Whether the guest powered off or asked for a restart: the machine is then over. */
  private checkExit(): boolean {
    const exit = this.machine.exit;
    if (!exit) return false;
    this.ended(exit.kind === 'poweroff' ? 'the guest powered off' : 'the guest restarts');
    return true;
  }

  private streamControl(dev: StreamDevice, pageSize: number): NonNullable<LiveSession['stream']> {
    let drv: StreamDriver | undefined;
    return {
      start: () => {
        if (drv || !this.machine.kernel.vmbus) return;
        drv = new StreamDriver({ seed: 11, maxData: STREAM_MAX_DATA, ringBytes: streamRingBytes(pageSize) });
        this.machine.kernel.vmbus.registerDriver(drv);
        this.onChange();
      },
      stop: () => {
        drv?.stop();
        this.onChange();
      },
      status: (): StreamStatus => ({
        running: drv !== undefined && !drv.end.stopping,
        framesOut: (drv?.stats.framesOut ?? 0) + dev.stats.framesOut,
        framesIn: (drv?.stats.framesIn ?? 0) + dev.stats.framesIn,
        errors: (drv?.stats.errors.length ?? 0) + dev.stats.errors.length,
      }),
    };
  }
}
