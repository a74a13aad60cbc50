// A VM whose guest runs in a Web Worker (DESIGN.md principle 4): the host — partition, VMBus
// server, devices — stays in the page, the guest kernel runs in the worker over the same guest
// RAM (a SharedArrayBuffer), and traps cross in the control block of src/vm/threaded/protocol.ts.
// Node's host loop (threaded/machine.ts) sleeps with Atomics.wait, which a page may not: this one
// serves traps in slices of a few milliseconds and lets the page draw in between; the guest
// thread, which may wait, waits for the answers meanwhile.
import { cpuPort } from '../../../src/hypervisor/cpu.js';
import type { HeartbeatHost } from '../../../src/devices/heartbeat/host.js';
import type { KvpHost } from '../../../src/devices/kvp/host.js';
import type { KeyboardHost } from '../../../src/devices/keyboard/host.js';
import type { MouseHost } from '../../../src/devices/mouse/host.js';
import type { SynthvidHost } from '../../../src/devices/video/host.js';
import { Host } from '../../../src/vm/host.js';
import type { MachineConfig } from '../../../src/vm/machine.js';
import type { GuestThreadData } from '../../../src/vm/threaded/guest-main.js';
import { ControlBlock, controlBytes, W } from '../../../src/vm/threaded/protocol.js';
import { TrapServer } from '../../../src/vm/threaded/trap-server.js';
import { CONTROL_KINDS } from '../model/control-plane.js';
import { liveChannels } from './channels.js';
import { CMD_WORDS, Cmd, StreamCmd, type GuestWorkerArgs, type WorkerMessage } from './worker-protocol.js';
import { ECHO_TIMEOUT_MS, sendEcho } from './hvsock-echo.js';
import { hostHvsock } from '../../../src/vm/hvsock-sides.js';
import type { VmbusSnapshot } from '../../../src/vmbus/client/snapshot.js';
import { PacedSession } from './paced.js';
import type { EchoResult, LiveChannel, LiveSession, StreamStatus } from './session.js';
import type { ScreenDevices } from '../views/screen.js';
import { offerStream } from './stream.js';

/** Wall time one slice of host work may take. */
const SLICE_MS = 6;
/** A channel's ring is polled this long after it last had packets (threaded/machine.ts's RING_POLL_NS). */
const RING_POLL_NS = 1_000_000;
/** "As fast as it goes" for a guest in a worker: virtual time still follows the wall clock. */
const FASTEST = 100;

export class WorkerSession extends PacedSession implements LiveSession {
  readonly mode = 'worker';
  readonly host: Host;
  readonly kvp: KvpHost | undefined;
  readonly heartbeat: HeartbeatHost | undefined;
  readonly screen: ScreenDevices;
  stream: LiveSession['stream'];
  private readonly block: ControlBlock;
  private readonly traps: TrapServer;
  private readonly apicIds: number[];
  private readonly commands = new Int32Array(new SharedArrayBuffer(CMD_WORDS * 4));
  /** The guest's view of its channels, as the worker last posted it. */
  private guestChannels: VmbusSnapshot | undefined;
  /** Echo requests waiting for the worker's answer, by request number. */
  private readonly echoWaits = new Map<number, (error: string | undefined) => void>();
  private echoReq = 0;
  private worker: Worker | undefined;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly config: MachineConfig,
    opts: { speed: number; stream: boolean },
  ) {
    super(opts.speed);
    this.host = new Host({ ...config, vmbus: { pollNs: RING_POLL_NS * this.speed } });
    this.kvp = this.host.device<KvpHost>('kvp');
    this.heartbeat = this.host.device<HeartbeatHost>('heartbeat');
    this.screen = { video: this.host.device<SynthvidHost>('video'), keyboard: this.host.device<KeyboardHost>('keyboard'), mouse: this.host.device<MouseHost>('mouse') };
    const vps = [...this.host.partition.vps].sort((a, b) => a.apicId - b.apicId);
    this.apicIds = vps.map((vp) => vp.apicId);
    this.block = new ControlBlock(new SharedArrayBuffer(controlBytes(vps.length)), vps.length);
    this.traps = new TrapServer(
      this.block,
      vps.map((vp) => ({ vp, port: cpuPort(vp) })),
    );
    // Messages and signals only: a listener for packets would have every ring packet hexed.
    this.unsubscribe = this.host.partition.events.on((e) => this.plane.apply(e), { kinds: CONTROL_KINDS });
    const dev = opts.stream && this.host.vmbus ? offerStream(this.host.vmbus.server) : undefined;
    this.stream = dev
      ? {
          start: () => this.command(StreamCmd.START),
          stop: () => this.command(StreamCmd.STOP),
          status: (): StreamStatus => ({ running: Atomics.load(this.commands, Cmd.STREAM) === StreamCmd.START, framesOut: dev.stats.framesOut, framesIn: dev.stats.framesIn, errors: dev.stats.errors.length }),
        }
      : undefined;
  }

  boot(): void {
    if (this.state !== 'booting') return;
    const p = this.host.partition;
    const args: GuestWorkerArgs = { commands: this.commands.buffer as SharedArrayBuffer, pageSize: p.memory.pageSize };
    const data: GuestThreadData = {
      control: this.block.buffer,
      memory: p.memory.buffer,
      memorySize: p.memory.size,
      memoryPresent: p.memory.presentCell,
      pageSize: p.memory.pageSize,
      arch: p.arch,
      cpus: this.block.slots.length,
      kernel: { ...this.config.kernel, modules: undefined },
      builtinModules: true,
      rtcNs: this.host.wallClockNs(),
      apicIds: this.apicIds,
      workload: 'idle',
      args,
      speed: this.speed,
    };
    this.worker = new Worker(new URL('./guest-worker.ts', import.meta.url), { type: 'module', name: 'hvkit guest' });
    this.worker.onmessage = (ev: MessageEvent<WorkerMessage>) => this.onGuest(ev.data);
    this.worker.onerror = (ev) => this.fail(`the guest worker failed: ${ev.message}`);
    this.worker.postMessage(data);
    this.run();
  }

  nowNs(): number {
    return this.host.partition.clock.nowNs;
  }

  vps() {
    return this.host.partition.state().vps;
  }

  channels(): LiveChannel[] {
    // The guest's view (state, target CPU, interrupts) as the worker posts it; the rings read live through the host's mapping.
    return liveChannels(this.host.vmbus?.server, this.guestChannels);
  }

  protected override clampSpeed(speed: number): number {
    return Math.min(speed, FASTEST);
  }

  protected shutdownGuest(kind: 'shutdown' | 'restart'): boolean {
    return this.host.shutdownGuest(kind);
  }

  dispose(): void {
    this.stopPacing();
    this.stopServing();
    this.unsubscribe();
    this.worker?.terminate();
    this.host.dispose();
  }

  private command(what: number): void {
    Atomics.store(this.commands, Cmd.STREAM, what);
    Atomics.add(this.commands, Cmd.SEQ, 1);
    this.onChange();
  }

  /**
   * The echo box with the guest in the worker: the worker starts a guest echo listener on `port`
   * (commands block), and once it says it listens, the page's host connects through it.
   */
  async hvsockEcho(port: number, text: string): Promise<EchoResult> {
    if (this.state !== 'running') return { ok: false, error: `the VM is ${this.state}` };
    const req = ++this.echoReq;
    const listening = new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.echoWaits.delete(req);
        resolve(`the guest did not listen within ${ECHO_TIMEOUT_MS / 1000} s`);
      }, ECHO_TIMEOUT_MS);
      this.echoWaits.set(req, (error) => {
        clearTimeout(timer);
        resolve(error);
      });
    });
    Atomics.store(this.commands, Cmd.ECHO_PORT, port);
    Atomics.store(this.commands, Cmd.ECHO_REQ, req);
    Atomics.add(this.commands, Cmd.SEQ, 1);
    const error = await listening;
    if (error !== undefined) return { ok: false, error };
    try {
      return await sendEcho(hostHvsock({ host: this.host, partition: this.host.partition, vmbus: this.host.vmbus }), port, text);
    } catch (e) {
      return { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
  }

  private onGuest(m: WorkerMessage): void {
    if (m.type === 'guest-channels') {
      this.guestChannels = m.snapshot;
      this.onChange();
    } else if (m.type === 'echo-listening') {
      const wait = this.echoWaits.get(m.req);
      this.echoWaits.delete(m.req);
      wait?.(m.error);
    } else if (m.type === 'log') {
      this.log.push(m.record);
      this.onChange();
    } else if (m.type === 'report') {
      const halted = m.report.result;
      if (this.state === 'running' || this.state === 'paused') {
        if (m.report.error && halted === undefined) return this.fail(m.report.error.split('\n')[0]!);
        this.stopServing();
        this.ended(halted === 'reboot' ? 'the guest restarts' : halted === 'poweroff' ? 'the guest powered off' : `the guest stopped (${String(halted)})`);
      }
    }
  }

  private stopServing(): void {
    const h = this.block.header;
    Atomics.store(h, W.HOST_STOPPED, 1);
    for (const s of this.block.slots) Atomics.notify(s.words, 0);
    Atomics.add(h, W.DOORBELL, 1);
    Atomics.notify(h, W.DOORBELL);
  }

  protected override fail(e: unknown): void {
    this.stopServing();
    super.fail(e);
  }

  /** One slice of the host loop: answer traps, move virtual time, poll rings, publish interrupts. */
  protected tick(): void {
    if (this.state !== 'running') return;
    const clock = this.host.partition.clock;
    const server = this.host.vmbus?.server;
    const h = this.block.header;
    const end = performance.now() + SLICE_MS;
    let served = 0;
    try {
      for (let now = performance.now(); now < end; now = performance.now()) {
        Atomics.add(h, W.HOST_BEAT, 1);
        let n = this.traps.serveAll();
        clock.advanceTo(this.paceTarget(now));
        if (server?.polling) n += server.poll(clock.nowNs);
        this.traps.publishInterrupts();
        served += n;
        if (Atomics.load(h, W.GUEST_DONE)) break;
        if (n === 0) for (let spin = 0; spin < 200 && !this.traps.pending(); spin++);
      }
    } catch (e) {
      return this.fail(e);
    }
    if (served) this.onChange();
    this.schedule(true);
  }
}
