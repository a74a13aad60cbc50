// The enlightened guest kernel: a model of Linux 6.1 booting on Hyper-V. It performs Linux's
// detection and init sequence for its architecture (tlfs.md §1.12 x86, §3.3 arm64), prints
// Linux's lines with kernel-log timestamps, and takes interrupts as Linux's handlers do. It
// reaches the hypervisor only through its CPUs (traps) and its own RAM.
import type { GuestCpu } from '../hypervisor/cpu-interface.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { Hints, MiscX64, PrivHigh, PrivLow } from '../tlfs/cpuid.js';
import { linuxGuestOsId } from '../tlfs/pages.js';
import { HV_MESSAGE_SIZE, HvMessageType, SintIndex } from '../tlfs/synic.js';
import { VmbusClient, type ClientOptions } from '../vmbus/client/client.js';
import { VmbusError } from '../vmbus/client/errors.js';
import type { VmbusSnapshot } from '../vmbus/client/snapshot.js';
import { cpuOps, GuestPanic, type AnyCpuOps } from './arch.js';
import { bootArm64 } from './hyperv/arm64.js';
import type { MsHyperV } from './hyperv/common.js';
import { readSlot, signalEom, synicDisable, synicEnable, type SynicPages } from './hyperv/synic.js';
import { HYPERV_STIMER0_VECTOR, ReferenceClock, Stimer0Clockevent } from './hyperv/timer.js';
import { apicEoi, bootX86 } from './hyperv/x86.js';
import { KernelLog, LOG_BUF_BYTES } from './klog.js';
import { PageAllocator } from './mm.js';
import { MemoryDemand } from './memory-demand.js';
import type { HvBalloonOptions } from '../devices/balloon/guest.js';
import { MmioAllocator } from './mmio.js';
import { vmbusMmioWindow } from '../memory/layout.js';
import { KernelVmbusTransport } from './vmbus.js';
import { cpuDown, cpuUp, type HotplugResult } from './hotplug.js';
import { kexec, panic, type PanicOptions } from './revoke.js';
import { KernelServices } from './services.js';
import type { GuestFiles, GuestModule } from '../devices/device.js';
import type { GuestNetConfig } from '../devices/network/netvsc/module.js';

/** One SINT's slot of event flags: 2048 bits (tlfs.md §5.6). */
const HV_EVENT_FLAGS_BYTES = 256;

/** What the machine gives the kernel: its RAM, its CPUs in firmware order, and time. */
export interface GuestPlatform {
  readonly memory: GuestMemory;
  /** CPUs in ACPI MADT order: Linux CPU n is cpus[n]. */
  readonly cpus: readonly GuestCpu[];
  /** Their APIC ids (MPIDRs on arm64) from the same table. */
  readonly apicIds?: readonly number[];
  /**
   * Lets `ns` of virtual time pass for kernel work the model does not run; the machine takes
   * interrupts (through `Kernel.takeInterrupts`) as they become due.
   */
  elapse(ns: number): void;
  /**
   * Lets up to `ns` pass the same way, returning as soon as `done()` holds (after an interrupt
   * the kernel took): wait_for_completion with a bound. Returns `done()`.
   */
  waitUntil(done: () => boolean, ns: number): boolean;
  /** ACPI FADT hypervisor_id ("MsHyperV" on Hyper-V), which arm64 Linux checks. */
  readonly fadtHypervisorId?: string;
  /** The real-time clock read at boot, ns since the Unix epoch. */
  rtcNs?(): bigint;
  /** ACPI S5 or reset: the kernel is done with the machine. */
  powerOff?(kind: 'poweroff' | 'reboot'): void;
  /** The guest's file tree (its disk); in memory when not given. */
  readonly files?: GuestFiles;
  /**
   * Make sure the machine looks at the kernel again after `ns` of virtual time, even if nothing
   * else happens then: the kernel's timer wheel (delayed work) has work due.
   */
  wakeAfter?(ns: number): void;
}

export interface KernelOptions {
  /** Run the VMBus driver's SynIC set-up (vmbus_bus_init up to vmbus_connect). */
  vmbusSynic: boolean;
  /** Then connect to the host's VMBus and ask for its offers (vmbus_connect, vmbus_request_offers). */
  vmbus: boolean;
  /** VMBus client settings: versions to try, the bound on waits, isolation. */
  vmbusClient: Partial<ClientOptions>;
  /** LINUX_VERSION_CODE of the modelled kernel. */
  version: readonly [number, number, number];
  /** VMBus driver modules, initialised in this order once VMBus is connected. */
  modules: readonly GuestModule[];
  hostname: string;
  /** Size of the kernel log ring and of the journal, bytes (log_buf_len). */
  logBufBytes: number;
  /** The network configuration the built-in modules get: the ip= boot parameter for eth0, addresses for the rest. */
  network?: GuestNetConfig;
  /** hv_balloon's module parameters for the built-in modules. */
  balloon?: HvBalloonOptions;
}

export const DEFAULT_KERNEL: KernelOptions = { vmbusSynic: true, vmbus: true, vmbusClient: {}, version: [6, 1, 192], modules: [], hostname: 'hvkit', logBufBytes: LOG_BUF_BYTES };

/** How long after delayed work falls due the kernel asks to be woken: one 100 ns reference tick. */
const WAKE_SLACK_NS = 100;

/** x86 HYPERVISOR_CALLBACK_VECTOR: VMBus and message-mode stimer0 interrupts (irq_vectors.h). */
export const HYPERVISOR_CALLBACK_VECTOR = 0xf3;
/** arm64: the VMBus per-CPU interrupt comes from ACPI; the model's firmware names this PPI (UNVERIFIED value). */
export const ARM64_VMBUS_PPI = 18;

export interface CpuState {
  /** Linux CPU number. */
  readonly index: number;
  readonly ops: AnyCpuOps;
  online: boolean;
  /** hv_vp_index[cpu]: VP_INVAL until read from the VP_INDEX register. */
  vpIndex: number;
  /** The per-CPU hypercall input page (hyperv_pcpu_input_arg). */
  inputPage?: number;
  vpAssistPage?: number;
  synic?: SynicPages;
  clockevent?: Stimer0Clockevent;
  /** Interrupts taken, by vector. */
  readonly irqs: Map<number, number>;
  /** Stopped by another CPU (smp_send_stop at kexec or panic): takes nothing any more. */
  stopped?: boolean;
}

/** `kexec`: the kernel handed the machine to another one (which hvkit does not run). */
export type KernelStage = 'off' | 'booting' | 'booted' | 'panicked' | 'kexec' | 'halted';

export class Kernel {
  readonly log: KernelLog;
  /** User space's syslog (the daemons' lines), kept apart from the kernel log as journald does. */
  readonly journal: KernelLog;
  readonly mm: PageAllocator;
  /** A user-space workload that wants memory (`memory demand` in a VM script). */
  readonly memoryDemand: MemoryDemand;
  /** The VMBus MMIO window's allocator (vmbus_allocate_mmio). */
  readonly mmio: MmioAllocator;
  readonly cpus: CpuState[];
  readonly refClock: ReferenceClock;
  readonly options: KernelOptions;
  stage: KernelStage = 'off';
  /** Found Hyper-V and took the enlightened paths. */
  onHyperV = false;
  ms: MsHyperV | undefined;
  /** hv_max_vp_index: the highest VP index any online CPU reported. */
  hvMaxVpIndex = 0;
  /** GPA of the hypercall page (x86), once enabled. */
  hypercallPage: number | undefined;
  /** The clocksource in use after boot. */
  clocksource = 'jiffies';
  /** The VMBus driver, once vmbus_bus_init ran. */
  vmbus: VmbusClient | undefined;
  /** What the kernel lends its drivers (clock, log, shutdown). */
  readonly services: KernelServices;
  /** How the kernel ended, once halted: power off or restart. */
  haltedBy: 'poweroff' | 'reboot' | 'hibernate' | undefined;
  /** Delayed work not yet run, by due time (sched_clock ns). */
  private readonly timers: { due: number; work: () => void; done: boolean }[] = [];
  /** An orderly shutdown a driver asked for, run from process context (the work queue). */
  private pendingShutdown: 'poweroff' | 'reboot' | 'hibernate' | undefined;
  /** The CPU the kernel is running on: the one taking an interrupt, else the boot CPU. */
  currentCpu = 0;
  /** hv_panic_page: the kmsg dumper's buffer, when CRASH_CTL offers CRASH_NOTIFY_MSG. */
  panicPage: number | undefined;
  /** sysctl kernel.hyperv_record_panic_msg: on, except in isolated VMs (the host is not trusted with the log). */
  recordPanicMsg = true;
  /**
   * The registers hyperv_report_panic reads. The model runs no kernel text, so these are fixed
   * model values in the x86-64 kernel text and stack ranges, not a real backtrace.
   */
  readonly panicRegs = { pc: 0xffff_ffff_8100_0000n, ax: 0n, sp: 0xffff_c900_0000_0000n };
  /** sched_clock: a counter reading and its rate, or nothing before the clocksource is up. */
  private schedClockBase: { read: () => bigint; base: bigint; nsPerUnit: number; lastRead: bigint; lastNs: number } | undefined;

  constructor(
    readonly platform: GuestPlatform,
    options: Partial<KernelOptions> = {},
  ) {
    this.options = { ...DEFAULT_KERNEL, ...options };
    this.log = new KernelLog(() => this.schedClock(), this.options.logBufBytes);
    this.journal = new KernelLog(() => this.schedClock(), this.options.logBufBytes);
    // The kernel image and early allocations occupy the first 16 MiB (or a quarter of small RAM).
    // RAM ends where the VMBus MMIO window (the firmware's _CRS for VMBus) begins.
    this.mmio = new MmioAllocator(vmbusMmioWindow(platform.memory.size));
    this.mm = new PageAllocator(platform.memory, Math.min(16 << 20, platform.memory.size / 4), this.mmio.window?.base);
    this.refClock = new ReferenceClock(platform.memory);
    this.cpus = platform.cpus.map((cpu, index) => ({ index, ops: cpuOps(cpu, this.log), online: index === 0, vpIndex: 0xffffffff, irqs: new Map() }));
    this.services = new KernelServices(this);
    this.memoryDemand = new MemoryDemand(this.mm, (ns, work) => this.delayedWork(ns, work));
  }

  /** /proc/meminfo's MemTotal and MemFree, in kB as it prints them. */
  meminfo(): MemInfo {
    const kb = this.mm.pageSize / 1024;
    return { MemTotal: this.mm.totalPages * kb, MemFree: this.mm.freePageCount * kb, Committed_AS: this.mm.committedPages * kb };
  }

  get arch(): GuestCpu['arch'] {
    return this.cpus[0]!.ops.cpu.arch;
  }

  get bsp(): CpuState {
    return this.cpus[0]!;
  }

  /** hv_is_isolation_supported(): the host said the partition is isolated (SNP, TDX, VBS). */
  get isolated(): boolean {
    return ((this.ms?.privHigh ?? 0) & PrivHigh.ISOLATION) !== 0;
  }

  /** hv_generate_guest_id(LINUX_VERSION_CODE). */
  get guestOsId(): bigint {
    const [a, b, c] = this.options.version;
    return linuxGuestOsId(a, b, c);
  }

  /** local_clock() in ns: 0 until a sched_clock source is registered, as in early boot. */
  schedClock(): number {
    const s = this.schedClockBase;
    if (!s) return 0;
    // The counter's last reading gives the last answer (no BigInt difference made again).
    const t = s.read();
    if (t === s.lastRead) return s.lastNs;
    const ns = Math.max(0, Number(t - s.base) * s.nsPerUnit);
    s.lastRead = t;
    s.lastNs = ns;
    return ns;
  }

  /** Starts sched_clock from a counter read now (hv_sched_clock_offset and the like). */
  startSchedClock(read: () => bigint, nsPerUnit: number): void {
    const base = read();
    this.schedClockBase = { read, base, nsPerUnit, lastRead: -1n, lastNs: 0 };
  }

  boot(): void {
    for (const _step of this.bootSteps());
  }

  /**
   * The boot as a sequence of steps, one between each phase (start_kernel's stages, each CPU
   * brought up, each driver module's init): running them all is boot(). A caller that must not
   * hold its thread for the whole boot (a page) runs a few at a time; nothing happens between
   * two steps that would not have happened in boot(), so the boot is the same event for event.
   */
  *bootSteps(): Generator<void, void, void> {
    if (this.stage !== 'off') throw new Error(`kernel already ${this.stage}`);
    this.stage = 'booting';
    const [a, b, c] = this.options.version;
    this.log.info(`Linux version ${a}.${b}.${c} (hvkit guest model) #1 SMP`);
    try {
      yield* this.arch === 'arm64' ? bootArm64(this) : bootX86(this);
      this.stage = 'booted';
      this.services.flushConsole();
    } catch (e) {
      if (!(e instanceof GuestPanic)) throw e;
      panic(this, e.message, { kdump: false });
    }
  }

  /** echo 0 > /sys/devices/system/cpu/cpuN/online. */
  cpuDown(index: number): HotplugResult {
    return cpuDown(this, index);
  }

  /** echo 1 > /sys/devices/system/cpu/cpuN/online. */
  cpuUp(index: number): HotplugResult {
    return cpuUp(this, index);
  }

  /** kexec -e: revoke everything shared with Hyper-V, then hand over (stage `kexec`). */
  kexec(): void {
    kexec(this);
  }

  /** panic(): crash reporting and the crash-kexec clean-up (see revoke.ts). */
  panic(message: string, options?: Partial<PanicOptions>): void {
    panic(this, message, options);
  }

  /** smp_init(): brings up the secondary CPUs with `online` for each. */
  *bringUpSecondaries(online: (cpu: CpuState) => void): Generator<void, void, void> {
    this.log.info('smp: Bringing up secondary CPUs ...');
    for (const cpu of this.cpus.slice(1)) {
      this.platform.elapse(2_000_000);
      cpu.online = true;
      online(cpu);
      cpu.ops.cpu.interruptsEnabled = true;
      yield;
    }
    const n = this.cpus.length;
    this.log.info(`smp: Brought up 1 node, ${n} CPU${n === 1 ? '' : 's'}`);
  }

  /**
   * The end of boot on both architectures: fs_initcall(clocksource_done_booting) switches to the
   * best clocksource, then the VMBus driver (a device initcall) sets up the SynIC on every CPU.
   */
  *lateInitcalls(): Generator<void, void, void> {
    this.platform.elapse(200_000_000);
    this.log.info(`clocksource: Switched to clocksource ${this.clocksource}`);
    if (!this.options.vmbusSynic) return;
    yield;
    this.platform.elapse(100_000_000);
    this.synicAlloc();
    for (const cpu of this.cpus) this.synicInit(cpu);
    yield;
    if (this.options.vmbus) yield* this.vmbusInit();
  }

  /**
   * The rest of vmbus_bus_init: connect, then REQUESTOFFERS. Linux 6.1 does not wait for the
   * offers; they are handled by its work queues while boot goes on, here while time passes.
   */
  *vmbusInit(): Generator<void, void, void> {
    const client = new VmbusClient(new KernelVmbusTransport(this), { isolated: this.isolated, ...this.options.vmbusClient });
    this.vmbus = client;
    try {
      client.connect();
      client.requestOffers();
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      return;
    }
    this.platform.elapse(5_000_000);
    yield;
    // The drivers' module_init: each registration binds the devices already offered.
    for (const m of this.options.modules) {
      m.init(this.services, (d) => client.registerDriver(d), client);
      yield;
    }
  }

  /**
   * Runs in process context: due delayed work, the VMBus work queues (offers, rescinds), then a
   * requested shutdown. The machine calls it after every interrupt round and at the wake-ups
   * delayed work asks for. A kernel that panicked or left runs nothing.
   */
  runWork(): number {
    if (this.stage === 'panicked' || this.stage === 'halted' || this.stage === 'kexec') return 0;
    let n = this.runTimers();
    n += this.vmbus?.runWork() ?? 0;
    const kind = this.pendingShutdown;
    if (kind && this.stage === 'booted') {
      this.pendingShutdown = undefined;
      this.shutdown(kind);
      n++;
    }
    return n;
  }

  /** schedule_delayed_work for the kernel's drivers (see GuestServices). */
  delayedWork(delayNs: number, work: () => void): { cancel(): boolean } {
    const t = { due: this.schedClock() + Math.max(0, delayNs), work, done: false };
    this.timers.push(t);
    // A tick may not come (arm64 has no stimer tick here, and NO_HZ idles): ask for a wake-up
    // one reference-counter tick after the work falls due.
    this.platform.wakeAfter?.(Math.max(0, delayNs) + WAKE_SLACK_NS);
    return {
      cancel: () => {
        const pending = !t.done;
        t.done = true;
        return pending;
      },
    };
  }

  private runTimers(): number {
    if (this.timers.length === 0) return 0;
    const now = this.schedClock();
    const due = this.timers.filter((t) => !t.done && t.due <= now).sort((a, b) => a.due - b.due);
    for (let i = this.timers.length - 1; i >= 0; i--) if (this.timers[i]!.done || this.timers[i]!.due <= now) this.timers.splice(i, 1);
    for (const t of due) {
      if (t.done) continue;
      t.done = true;
      t.work();
    }
    return due.length;
  }

  /** orderly_poweroff / orderly_reboot / hibernate, asked for by a driver: runs from the work queue. */
  requestShutdown(kind: 'poweroff' | 'reboot' | 'hibernate'): void {
    this.pendingShutdown ??= kind;
  }

  /**
   * kernel_power_off / kernel_restart (kernel/reboot.c): userspace stops, devices shut down, then
   * "reboot: Power down" or "reboot: Restarting system" and the platform's ACPI call. Hibernation
   * writes its image and powers off the same way. Nothing is revoked from Hyper-V: the VM ends.
   */
  shutdown(kind: 'poweroff' | 'reboot' | 'hibernate'): void {
    if (this.stage !== 'booted') return;
    if (kind === 'hibernate') this.log.info('PM: hibernation: hibernation entry');
    this.platform.elapse(500_000_000);
    this.log.printk('emerg', kind === 'reboot' ? 'reboot: Restarting system' : 'reboot: Power down');
    for (const c of this.cpus) c.ops.cpu.interruptsEnabled = false;
    this.stage = 'halted';
    this.haltedBy = kind;
    this.platform.powerOff?.(kind === 'reboot' ? 'reboot' : 'poweroff');
  }

  // --- VMBus's SynIC set-up (drivers/hv/vmbus_drv.c vmbus_bus_init, hv.c) --------------------

  /** hv_synic_alloc(): a zeroed message page and event page per CPU. */
  synicAlloc(): void {
    for (const cpu of this.cpus) cpu.synic ??= { messagePage: this.mm.allocHvPage(), eventPage: this.mm.allocHvPage() };
  }

  /** hv_synic_init(): enable the registers, then stimer0 in message mode if not direct. */
  synicInit(cpu: CpuState): void {
    const x86 = this.arch !== 'arm64';
    const vector = x86 ? HYPERVISOR_CALLBACK_VECTOR : ARM64_VMBUS_PPI;
    // x86: auto-EOI unless Hyper-V recommends against it; arm64 has no auto-EOI.
    const autoEoi = x86 && !((this.ms?.hints ?? 0) & Hints.DEPRECATING_AEOI);
    synicEnable(cpu.ops, cpu.synic!, vector, autoEoi);
    this.log.note(`CPU${cpu.index}: SynIC on, message page 0x${cpu.synic!.messagePage.toString(16)}, event page 0x${cpu.synic!.eventPage.toString(16)}, SINT2 vector 0x${vector.toString(16)}${autoEoi ? ' auto-EOI' : ''}`);
    if (x86 && this.ms && this.ms.features & PrivLow.SYNTIMER && !(this.ms.miscFeatures & MiscX64.STIMER_DIRECT_MODE)) this.startClockevent(cpu, 'message');
  }

  /** hv_stimer_legacy_cleanup (a message-mode stimer0 goes with the SynIC), then hv_synic_disable_regs. */
  synicCleanup(cpu: CpuState): void {
    if (cpu.clockevent?.mode === 'message') {
      cpu.clockevent.shutdown();
      cpu.clockevent = undefined;
    }
    synicDisable(cpu.ops);
    this.log.note(`CPU${cpu.index}: SynIC off`);
  }

  /** Registers stimer0 as the CPU's clockevent; the tick programs it at once. */
  startClockevent(cpu: CpuState, mode: 'direct' | 'message'): void {
    const ce = new Stimer0Clockevent(cpu.ops, this.refClock, mode);
    cpu.clockevent = ce;
    ce.setOneshot();
    ce.onExpiry();
    this.log.note(`CPU${cpu.index}: stimer0 clockevent, ${mode === 'direct' ? `direct mode, vector 0x${HYPERV_STIMER0_VECTOR.toString(16)}` : 'message mode on SINT2'}`);
  }

  // --- Interrupts ------------------------------------------------------------------------------

  /**
   * Takes the interrupts `cpu` can take now (at most `limit`), running Linux's handler for each.
   * A caller waiting on something an interrupt completes passes a limit, so that a device that
   * keeps interrupting cannot keep it from looking.
   */
  takeInterrupts(index: number, limit = Infinity): number {
    const cpu = this.cpus[index];
    if (!cpu?.online || cpu.stopped || this.stage === 'halted' || this.stage === 'kexec' || this.stage === 'panicked') return 0;
    let n = 0;
    const outer = this.currentCpu;
    this.currentCpu = index;
    try {
      for (let v = n < limit ? cpu.ops.cpu.acceptInterrupt() : undefined; v !== undefined; v = n < limit ? cpu.ops.cpu.acceptInterrupt() : undefined) {
        cpu.irqs.set(v, (cpu.irqs.get(v) ?? 0) + 1);
        this.handleInterrupt(cpu, v);
        if (++n > 10_000) throw new GuestPanic(`CPU${index}: interrupt storm on vector 0x${v.toString(16)}`);
      }
    } finally {
      this.currentCpu = outer;
    }
    return n;
  }

  private handleInterrupt(cpu: CpuState, vector: number): void {
    const x86 = this.arch !== 'arm64';
    if (x86 && vector === HYPERV_STIMER0_VECTOR) {
      // sysvec_hyperv_stimer0: the clockevent handler, then the APIC EOI.
      cpu.clockevent?.onExpiry();
      apicEoi(this, cpu);
      return;
    }
    if (vector === (x86 ? HYPERVISOR_CALLBACK_VECTOR : ARM64_VMBUS_PPI)) {
      this.vmbusIsr(cpu);
      // sysvec_hyperv_callback EOIs only when auto-EOI is off; arm64 always EOIs at the GIC.
      if (!x86) (cpu.ops.cpu as { endOfInterrupt(): void }).endOfInterrupt();
      else if ((this.ms?.hints ?? 0) & Hints.DEPRECATING_AEOI) apicEoi(this, cpu);
      return;
    }
    this.log.warn(`do_IRQ: ${cpu.index}.${vector} No irq handler for vector`);
    if (x86) apicEoi(this, cpu);
  }

  /** vmbus_isr(): the channels' event flags first, then the SINT2 message slot. */
  private vmbusIsr(cpu: CpuState): void {
    if (!cpu.synic) return;
    const mem = this.platform.memory;
    if (this.vmbus) this.vmbus.onEvents(new Uint32Array(mem.buffer, cpu.synic.eventPage + SintIndex.VMBUS * HV_EVENT_FLAGS_BYTES, HV_EVENT_FLAGS_BYTES / 4));
    const slot = readSlot(mem, cpu.synic, SintIndex.VMBUS);
    if (slot.type === HvMessageType.NONE) return;
    if (slot.type === HvMessageType.TIMER_EXPIRED) {
      cpu.clockevent?.onExpiry();
    } else {
      // vmbus_on_msg_dpc works on a private copy: the host may rewrite the slot meanwhile.
      this.vmbus?.onMessage(mem.read(cpu.synic.messagePage + SintIndex.VMBUS * HV_MESSAGE_SIZE, HV_MESSAGE_SIZE));
    }
    signalEom(mem, cpu.ops, cpu.synic, SintIndex.VMBUS, slot.type);
  }

  /** The kernel's state as plain JSON data: what a debugger or `hvkit` would want to see. */
  state(): KernelState {
    return {
      stage: this.stage,
      arch: this.arch,
      onHyperV: this.onHyperV,
      clocksource: this.clocksource,
      hypercallPage: this.hypercallPage,
      tscPage: this.refClock.tscPage,
      vmbus: this.vmbus?.snapshot(),
      meminfo: this.meminfo(),
      ms: this.ms && (Object.fromEntries(Object.entries(this.ms).map(([k, v]) => [k, typeof v === 'bigint' ? `0x${v.toString(16)}` : v])) as KernelState['ms']),
      cpus: this.cpus.map((c) => ({
        cpu: c.index,
        online: c.online,
        vpIndex: c.vpIndex,
        inputPage: c.inputPage,
        vpAssistPage: c.vpAssistPage,
        synic: c.synic,
        clockevent: c.clockevent && { mode: c.clockevent.mode, ticks: c.clockevent.ticks },
        irqs: Object.fromEntries([...c.irqs].map(([v, n]) => [`0x${v.toString(16)}`, n])),
        ...(c.stopped ? { stopped: true } : {}),
      })),
    };
  }
}

/** What /proc/meminfo shows of the model's memory, kB. */
export interface MemInfo {
  MemTotal: number;
  MemFree: number;
  Committed_AS: number;
}

export interface KernelState {
  stage: KernelStage;
  arch: GuestCpu['arch'];
  onHyperV: boolean;
  clocksource: string;
  hypercallPage: number | undefined;
  tscPage: number | undefined;
  vmbus: VmbusSnapshot | undefined;
  meminfo: MemInfo;
  /** ms_hyperv, with 64-bit values as hex strings so the state is plain JSON. */
  ms: Record<keyof MsHyperV, number | string | boolean> | undefined;
  cpus: {
    cpu: number;
    online: boolean;
    vpIndex: number;
    inputPage: number | undefined;
    vpAssistPage: number | undefined;
    synic: SynicPages | undefined;
    clockevent: { mode: string; ticks: number } | undefined;
    irqs: Record<string, number>;
    stopped?: boolean;
  }[];
}
