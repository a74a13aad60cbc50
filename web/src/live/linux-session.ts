// The real Linux 6.1 VMBus guest (issue 17: drivers/hv compiled to WebAssembly by
// `npm run build:linux`) in the page's own thread, on the same host as the model: a LinuxMachine
// booted step by step between frames, then run in slices with virtual time following the wall
// clock times the chosen speed. Its log is Linux's printk lines; its channel rows are Linux's own
// channel list (vmbus_connection.chn_list, read through the shim) beside the host's counters.
import type { HeartbeatHost } from '../../../src/devices/heartbeat/host.js';
import type { KvpHost } from '../../../src/devices/kvp/host.js';
import { LOG_LEVELS } from '../../../src/guest/klog.js';
import type { VmbusServer } from '../../../src/vmbus/server/server.js';
import type { VmbusSnapshot } from '../../../src/vmbus/client/snapshot.js';
import { LinuxMachine, type LinuxMachineConfig } from '../../../src/vm/linux-machine.js';
import type { MachineConfig } from '../../../src/vm/machine.js';
import { CONTROL_KINDS } from '../model/control-plane.js';
import { className } from '../model/classes.js';
import { afterNextFrame, PacedSession } from './paced.js';
import type { EchoResult, LiveChannel, LiveSession } from './session.js';

/** Wall time one slice of VM work may take: the page draws between slices. */
const SLICE_MS = 8;

/** What the page's panels cannot do with this guest, and why (shown beside each). */
export const LINUX_UNSUPPORTED = {
  worker: 'the real Linux guest runs in the page\'s thread only',
  hvsock: 'the real Linux guest\'s hv_sock (hyperv_transport.c) has no socket layer in the page yet',
  screen: 'the real Linux guest has no framebuffer or input drivers (only VMBus and hv_utils)',
  stream: 'the stream device is hvkit\'s own test device: Linux has no driver for it',
} as const;

/** The Machine configuration the form gives, as far as the Linux guest takes it: one x86 VP, the module's RAM. */
export function linuxConfig(config: MachineConfig): LinuxMachineConfig {
  return {
    ...(config.release ? { release: config.release } : {}),
    ...(config.devices ? { devices: config.devices } : {}),
    ...(config.budget ? { budget: config.budget } : {}),
  };
}

/** Linux's channel list as table rows, each beside what the host's server counts for its relid. */
export function linuxChannels(server: VmbusServer | undefined, linux: VmbusSnapshot): LiveChannel[] {
  const rows: LiveChannel[] = [];
  for (const d of linux.devices) {
    for (const c of d.channels) {
      const host = server?.channels.get(c.relid);
      const rings = host?.ringState();
      rows.push({
        relid: c.relid,
        className: `${className(d.classId)}${d.driver ? ` (${d.driver})` : ''}`,
        instance: d.instanceId,
        subChannel: c.subChannelIndex,
        state: host?.state ?? 'gone from the host',
        guestState: c.state,
        targetVp: c.targetVp,
        targetCpu: c.targetCpu,
        packetsIn: host?.packetsReceived ?? 0,
        packetsOut: host?.packetsSent ?? 0,
        signals: (host?.signalsReceived ?? 0) + (host?.signalsSent ?? 0),
        interrupts: c.interrupts,
        outbound: rings?.incoming,
        inbound: rings?.outgoing,
      });
    }
  }
  return rows.sort((a, b) => a.relid - b.relid);
}

export class LinuxSession extends PacedSession implements LiveSession {
  readonly mode = 'in-thread';
  readonly guest = 'linux';
  readonly machine: LinuxMachine;
  readonly kvp: KvpHost | undefined;
  readonly heartbeat: HeartbeatHost | undefined;
  readonly screen = { video: undefined, keyboard: undefined, mouse: undefined };
  readonly stream = undefined;
  private readonly unsubscribe: () => void;
  /** Aborted by dispose: a boot in progress stops before its next step. */
  private readonly booting = new AbortController();

  constructor(module: WebAssembly.Module, config: MachineConfig, opts: { speed: number }) {
    super(opts.speed);
    this.machine = new LinuxMachine(module, linuxConfig(config));
    const m = this.machine;
    this.kvp = m.host.device<KvpHost>('kvp');
    this.heartbeat = m.host.device<HeartbeatHost>('heartbeat');
    this.unsubscribe = m.partition.events.on((e) => this.plane.apply(e), { kinds: CONTROL_KINDS });
    m.guest.log.onRecord((r) => {
      this.log.push(r);
      this.onChange();
    });
    // hv_kvp_daemon's syslog, as `hvkit run --guest linux` shows it: warnings and errors.
    m.guest.journal.onRecord((r) => {
      if (LOG_LEVELS.indexOf(r.level) > LOG_LEVELS.indexOf('warn')) return;
      this.log.push({ ...r, text: `journal: ${r.text}` });
      this.onChange();
    });
  }

  /** Boots step by step (LinuxMachine.bootAsync, the page drawing in between), then runs. */
  async boot(): Promise<void> {
    if (this.state !== 'booting') return;
    let r: number | undefined;
    try {
      r = await this.machine.bootAsync({ signal: this.booting.signal, pause: afterNextFrame });
    } catch (e) {
      return this.fail(e);
    }
    if (this.state !== 'booting') return;
    if (r !== 0) return this.fail(new Error(`vmbus_bus_init or hv_utils returned ${String(r)}`));
    this.run();
  }

  nowNs(): number {
    return this.machine.nowNs;
  }

  vps() {
    return this.machine.partition.state().vps;
  }

  channels(): LiveChannel[] {
    return linuxChannels(this.machine.vmbus?.server, this.machine.guest.vmbusSnapshot());
  }

  /** Linux's shutdown_onchannelcallback then runs orderly_poweroff (or _reboot). */
  protected shutdownGuest(kind: 'shutdown' | 'restart'): boolean {
    return this.machine.host.shutdownGuest(kind);
  }

  hvsockEcho(): Promise<EchoResult> {
    return Promise.resolve({ ok: false, error: LINUX_UNSUPPORTED.hvsock });
  }

  dispose(): void {
    this.stopPacing();
    this.booting.abort();
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
    const end = start + SLICE_MS;
    try {
      m.waitUntil(() => m.haltedBy !== undefined || performance.now() >= end, want);
    } catch (e) {
      return this.fail(e);
    }
    if (this.checkExit()) return;
    this.slipIfLate(target);
    this.onChange();
    this.scheduleAfterPage();
  }

  /** Whether Linux powered off or asked for a restart (user space stopped after orderly_poweroff/_reboot). */
  private checkExit(): boolean {
    const how = this.machine.haltedBy;
    if (!how) return false;
    this.ended(how === 'poweroff' ? 'the guest powered off' : 'the guest restarts');
    return true;
  }
}
