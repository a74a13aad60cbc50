// The kernel services under Linux 6.1's real VMBus code compiled to WebAssembly (issue 17): the
// answers to the imports that hvkit's shim (linux/shim/hvkit.h) declares. The module's memory is
// the guest's RAM (GPA = wasm address); its traps go to the partition's x86-32 CPU interface
// (RDMSR, WRMSR, CPUID, a CALL of the hypercall page); its waits run the machine; its printk
// lines are this guest's kernel log. Platform-neutral: the caller loads the module.
import type { X86_32Cpu } from '../../hypervisor/cpu-interface.js';
import { HvMsr } from '../../tlfs/msr.js';
import { GuestPanic, X86_32Ops } from '../arch.js';
import { KernelLog, LOG_LEVELS, type LogLevel } from '../klog.js';
import { BoundedLog } from '../../tlfs/bounded-log.js';
import { RamAllocator } from './ram-allocator.js';
import { wasm, type WasmGlobal, type WasmMemory, type WasmModule } from './wasm.js';
import { HyperVCpuid, Hints } from '../../tlfs/cpuid.js';
import { LinuxCharDevices, type ChardevExports } from './chardev.js';
import { parseLinuxSnapshot } from './snapshot.js';
import type { VmbusSnapshot } from '../../vmbus/client/snapshot.js';

/** The guest's RAM, the wasm memory's size (scripts/linux/build.ts links the module for it). */
export const LINUX_RAM_BYTES = 64 * 1024 * 1024;

/** x86's vector for the Hyper-V callback (arch/x86/include/asm/irq_vectors.h). */
export const HYPERVISOR_CALLBACK_VECTOR = 0xf3;

/** How long a wait without a timeout (wait_for_completion) may last before the guest is declared hung. */
export const HANG_NS = 60e9;

/**
 * How long user space takes to stop once orderly_poweroff/orderly_reboot ran it (the model's
 * kernel.shutdown lets the same time pass before "reboot: Power down", src/guest/kernel.ts).
 */
export const USERSPACE_SHUTDOWN_NS = 500_000_000;

/** cpu_relax() in a spin loop lets this much virtual time pass. */
const RELAX_NS = 1_000;

/** The largest buffer a VMBus snapshot may take (2048 channels of about 120 bytes each, and more). */
const SNAPSHOT_MAX_BYTES = 1 << 20;

/** Bus events kept (device added, driver bound, ...). */
const MAX_EVENTS = 1024;

/** What the guest needs from the machine it runs on. */
export interface LinuxGuestPlatform {
  readonly cpu: X86_32Cpu;
  /** The shared wasm memory the partition adopted as RAM. */
  readonly memory: WasmMemory;
  now(): number;
  /** Runs the machine (the host, the clock, this guest's interrupts and work) for up to `ns`, until `done()`. */
  waitUntil(done: () => boolean, ns: number): boolean;
  /** Make sure the machine calls runWork() once virtual time reaches `ns`: a timer is due then. */
  wakeAt(ns: number): void;
}

/** A wait_for_completion that never completed. */
export class GuestHang extends Error {
  override readonly name = 'GuestHang';
}

interface ShimExports extends ChardevExports {
  hvkit_vmbus_snapshot(buf: number, size: number): number;
  hvkit_start(): number;
  hvkit_interrupt(): void;
  hvkit_irqs_enabled(): number;
  hvkit_run_deferred(): number;
  hvkit_hv_utils_init(): number;
  hvkit_hv_utils_exit(): void;
  hvkit_vmbus_exit(): void;
  __heap_base: WasmGlobal;
}

/** KERN_SOH followed by the level digit (include/linux/kern_levels.h). */
const KERN_SOH = '\x01';

/** Linux's default level for a printk without one (CONFIG_MESSAGE_LOGLEVEL_DEFAULT, linux/include/generated/autoconf.h). */
const DEFAULT_LEVEL: LogLevel = 'warn';

export class LinuxGuest {
  readonly log: KernelLog;
  /** The shim's bus events: "added <device>", "bound <device> <driver>", "removed <device>". */
  readonly events: BoundedLog<string> = new BoundedLog(MAX_EVENTS);
  readonly ram: RamAllocator;
  /** User space's syslog (the daemons' lines), kept apart from the kernel log as journald does. */
  readonly journal: KernelLog;
  /** The module's misc character devices, as user space opens them (/dev/vmbus/hv_kvp). */
  readonly chardevs: LinuxCharDevices;
  private readonly ops: X86_32Ops;
  private readonly exports: ShimExports;
  private readonly bytes: Uint8Array;
  private readonly words: Int32Array;
  private readonly decoder = new TextDecoder();
  private started = false;
  private utilsLoaded = false;
  private aeoiDeprecated: boolean | undefined;
  /** The last clock setting (do_settimeofday64): the time set and the virtual time it was set at. */
  private lastSet: { ns: bigint; at: bigint } | undefined;
  /** orderly_poweroff or orderly_reboot asked user space to end the system, at this virtual time. */
  shutdownRequest: { readonly kind: 'poweroff' | 'reboot'; readonly atNs: number } | undefined;

  constructor(
    module: WasmModule,
    private readonly platform: LinuxGuestPlatform,
  ) {
    this.log = new KernelLog(() => platform.now());
    this.journal = new KernelLog(() => platform.now());
    this.ops = new X86_32Ops(platform.cpu, this.log);
    const buffer = platform.memory.buffer as SharedArrayBuffer;
    this.bytes = new Uint8Array(buffer);
    this.words = new Int32Array(buffer);
    const instance = new wasm.Instance(module, { env: { memory: platform.memory }, hvkit: this.imports() });
    this.exports = instance.exports as unknown as ShimExports;
    const heapBase = Number(this.exports.__heap_base.value);
    this.ram = new RamAllocator(heapBase, buffer.byteLength);
    this.chardevs = new LinuxCharDevices({ exports: this.exports, ram: this.ram, bytes: this.bytes });
  }

  private text(ptr: number, len: number): string {
    return this.decoder.decode(this.bytes.slice(ptr >>> 0, (ptr >>> 0) + (len >>> 0)));
  }

  private imports(): Record<string, (...args: never[]) => unknown> {
    return {
      log: (ptr: number, len: number) => this.printk(this.text(ptr, len)),
      panic: (ptr: number, len: number) => {
        const msg = this.text(ptr, len);
        this.log.printk('emerg', `Kernel panic - not syncing: ${msg}`);
        throw new GuestPanic(msg);
      },
      event: (ptr: number, len: number) => {
        const text = this.text(ptr, len);
        this.events.push(text);
        this.chardevs.noteEvent(text);
        const set = /^settime (-?\d+)\.(\d{9})$/.exec(text);
        if ((text === 'poweroff' || text === 'reboot') && !this.shutdownRequest) {
          this.shutdownRequest = { kind: text, atNs: this.platform.now() };
          this.platform.wakeAt(this.platform.now() + USERSPACE_SHUTDOWN_NS);
        }
        if (set) this.lastSet = { ns: BigInt(set[1]!) * 1_000_000_000n + BigInt(set[2]!), at: BigInt(Math.floor(this.platform.now())) };
      },
      wake_user: () => this.chardevs.noteWake(),
      rdmsr: (msr: number) => this.ops.rdmsr(msr >>> 0),
      wrmsr: (msr: number, value: bigint) => {
        this.ops.wrmsr(msr >>> 0, value);
        // hyperv_init's write enables the hypercall page: later hypercalls CALL it.
        if (msr >>> 0 === HvMsr.HYPERCALL) this.ops.hypercallPage = value & 1n ? Number(BigInt.asUintN(64, value) >> 12n) * 4096 : undefined;
      },
      cpuid: (leaf: number, subleaf: number, out: number) => {
        const r = this.ops.x86.cpuid(leaf >>> 0, subleaf >>> 0);
        const at = (out >>> 0) / 4;
        this.words[at] = r.eax | 0;
        this.words[at + 1] = r.ebx | 0;
        this.words[at + 2] = r.ecx | 0;
        this.words[at + 3] = r.edx | 0;
      },
      hypercall: (control: bigint, input: number, output: number) => BigInt.asIntN(64, this.ops.hypercall(BigInt.asUintN(64, control), input >>> 0, output >>> 0)),
      fast_hypercall8: (control: bigint, input: bigint) => BigInt.asIntN(64, this.ops.fastHypercall8(Number(BigInt.asUintN(64, control) & 0xffffn), BigInt.asUintN(64, input))),
      wait_nonzero: (word: number, timeoutNs: bigint) => {
        const at = (word >>> 0) / 4;
        const done = () => Atomics.load(this.words, at) !== 0;
        if (done()) return 1;
        if (timeoutNs >= 0n) return this.platform.waitUntil(done, Number(timeoutNs)) ? 1 : 0;
        if (this.platform.waitUntil(done, HANG_NS)) return 1;
        this.log.printk('err', `hvkit: wait_for_completion at 0x${(word >>> 0).toString(16)} did not complete in ${HANG_NS / 1e9} s`, true);
        throw new GuestHang(`wait_for_completion at 0x${(word >>> 0).toString(16)} did not complete in ${HANG_NS / 1e9} s of virtual time`);
      },
      sleep_ns: (ns: bigint) => void this.platform.waitUntil(() => false, Number(ns)),
      relax: () => void this.platform.waitUntil(() => false, RELAX_NS),
      now_ns: () => BigInt(Math.floor(this.platform.now())),
      wake_at_ns: (ns: bigint) => this.platform.wakeAt(Number(BigInt.asUintN(64, ns))),
      alloc: (size: number, align: number) => this.ram.alloc(size >>> 0, align >>> 0),
      free: (ptr: number) => this.ram.release(ptr >>> 0),
    };
  }

  /** A printk line: its KERN_<level> prefix decides the level; a line without one is at the default. */
  private printk(line: string): void {
    let level = DEFAULT_LEVEL;
    let text = line;
    while (text.startsWith(KERN_SOH) && text.length >= 2) {
      const d = text.charCodeAt(1) - 48;
      if (d >= 0 && d < LOG_LEVELS.length) level = LOG_LEVELS[d]!;
      text = text.slice(2);
    }
    this.log.printk(level, text);
  }

  /** ms_hyperv_init_platform, hyperv_init, then vmbus_bus_init (which connects and asks for offers). Returns its errno. */
  start(): number {
    if (this.started) throw new Error('the Linux guest is already started');
    this.started = true;
    return this.exports.hvkit_start();
  }

  /** module_init of hv_utils (hv_util.c): registers the integration-service driver, which probes its devices. Returns its errno. */
  loadUtils(): number {
    if (!this.started) throw new Error('start the Linux guest first');
    const r = this.exports.hvkit_hv_utils_init();
    this.utilsLoaded = r === 0;
    return r;
  }

  /**
   * rmmod hv_utils then rmmod hv_vmbus: the utilities' channels closed by their remove, then
   * vmbus_exit, whose vmbus_disconnect sends UNLOAD and waits for the host's answer (from VMBus
   * 3.0; older hosts do not take it back, vmbus_initiate_unload).
   */
  unload(): void {
    this.unloadUtils();
    this.exitVmbus();
  }

  /** rmmod hv_utils: module_exit unregisters the driver, whose remove closes each IC's channel. */
  unloadUtils(): void {
    if (!this.started) throw new Error('start the Linux guest first');
    if (this.utilsLoaded) this.exports.hvkit_hv_utils_exit();
    this.utilsLoaded = false;
  }

  /** rmmod hv_vmbus: vmbus_exit (UNLOAD from VMBus 3.0, then every channel freed and its relid released). */
  exitVmbus(): void {
    if (!this.started) throw new Error('start the Linux guest first');
    this.exports.hvkit_vmbus_exit();
  }

  /** Takes the CPU's deliverable interrupts while the kernel has them enabled; returns how many. */
  takeInterrupts(): number {
    const cpu = this.platform.cpu;
    let n = 0;
    for (;;) {
      cpu.interruptsEnabled = this.exports.hvkit_irqs_enabled() !== 0;
      const v = cpu.acceptInterrupt();
      if (v === undefined) return n;
      if (++n > 10_000) throw new GuestPanic(`interrupt storm on vector 0x${v.toString(16)}`);
      if (v === HYPERVISOR_CALLBACK_VECTOR) this.exports.hvkit_interrupt();
      else this.log.warn(`do_IRQ: 0.${v} No irq handler for vector`);
      // sysvec_hyperv_callback EOIs only when the host deprecates auto-EOI (hv.c programs the SINT
      // with auto_eoi = hv_recommend_using_aeoi()); other vectors always. The xAPIC EOI register,
      // as a 32-bit guest without APIC_ACCESS writes it.
      if (v !== HYPERVISOR_CALLBACK_VECTOR || this.deprecatesAutoEoi) cpu.apicWrite(0xb0, 0);
    }
  }

  /** ms_hyperv.hints' DEPRECATING_AEOI, read when the first interrupt needs it. */
  private get deprecatesAutoEoi(): boolean {
    return (this.aeoiDeprecated ??= (this.platform.cpu.cpuid(HyperVCpuid.ENLIGHTMENT_INFO).eax & Hints.DEPRECATING_AEOI) !== 0);
  }

  /** Runs the deferred work queued now (work items, tasklets, RCU callbacks); returns how many. */
  runWork(): number {
    return this.started ? this.exports.hvkit_run_deferred() : 0;
  }

  /**
   * CLOCK_REALTIME as the guest keeps it: the last time Linux set (do_settimeofday64, from time
   * sync) plus the virtual time since; before any, `bootWallClockNs` (the RTC at boot) plus uptime.
   */
  realtimeNs(bootWallClockNs: bigint): bigint {
    const now = BigInt(Math.floor(this.platform.now()));
    const s = this.lastSet;
    return s ? s.ns + (now - s.at) : bootWallClockNs + now;
  }

  /** Linux's own VMBus state: vmbus_connection and its channel list, read through the shim. */
  vmbusSnapshot(): VmbusSnapshot {
    if (!this.started) return { state: 'disconnected', version: '', devices: [] };
    for (let size = 16384; size <= SNAPSHOT_MAX_BYTES; size *= 4) {
      const at = this.ram.alloc(size, 8);
      if (!at) break;
      try {
        const n = this.exports.hvkit_vmbus_snapshot(at, size);
        if (n >= 0) return parseLinuxSnapshot(this.text(at, n));
      } finally {
        this.ram.release(at);
      }
    }
    throw new Error('the Linux guest\'s VMBus snapshot does not fit in the buffer');
  }

  /** Runs the user-space processes the kernel woke (a daemon with a message to read); returns how many. */
  runUserSpace(): number {
    return this.chardevs.runUserSpace();
  }

  /** A daemon's syslog line, into the journal as "<ident>: <text>". */
  syslog(ident: string, level: LogLevel, text: string): void {
    this.journal.printk(level, `${ident}: ${text}`);
  }
}
