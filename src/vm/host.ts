// The host side of a VM, the same whether the guest runs on this thread or in a worker: the
// partition, its VMBus server at the release's version, and the device back ends it offers.
import { Partition, type PartitionConfig } from '../hypervisor/partition.js';
import { BoundedLog } from '../tlfs/bounded-log.js';
import type { HostContext, HostDevice } from '../devices/device.js';
import { attachDevices, type DeviceSpec } from '../devices/registry.js';
import type { ShutdownHost, ShutdownKind } from '../devices/shutdown/host.js';
import { attachVmbusServer, type PartitionVmbus } from '../vmbus/server/partition-io.js';
import type { ServerOptions } from '../vmbus/server/server.js';
import { makeVersion } from '../vmbus/wire/constants.js';
import { serverPart, vmBudget, type VmBudget } from './budget.js';

export interface HostConfig extends Partial<PartitionConfig> {
  /** The host's VMBus server: on (the release's highest version), off, or these options. */
  vmbus?: boolean | Partial<ServerOptions>;
  /** Devices the host offers, in order: Hyper-V's default set unless given (`[]` for none). */
  devices?: readonly DeviceSpec[];
  /** The host's wall clock at virtual time 0, UTC ns since 1970. */
  wallClockStartNs?: bigint;
  /** Bounds on what the guest can make the host hold (budget.ts); the defaults where not given. */
  budget?: Partial<VmBudget>;
}

/** 2026-01-01T00:00:00Z: where the host's clock and the guest's RTC start unless told otherwise. */
export const DEFAULT_WALL_CLOCK_START_NS = 1_767_225_600_000_000_000n;

/** How often shutdownGuest looks whether the guest's shutdown IC is up. */
const SHUTDOWN_POLL_NS = 10_000_000;

/** arm64 guests see the generic timer's counter; hvkit gives it the 25 MHz common on Arm servers. */
const ARM64_COUNTER_HZ = 25_000_000;

export class Host {
  readonly partition: Partition;
  /** The host's VMBus, when the machine has one. */
  readonly vmbus: PartitionVmbus | undefined;
  /** The device back ends, in offer order. */
  readonly devices: HostDevice[] = [];
  /** Host-side log lines (device back ends), with their virtual time: the most recent ones, and a count of all. */
  readonly log: BoundedLog<{ ns: number; text: string }>;
  readonly budget: VmBudget;
  readonly wallClockStartNs: bigint;
  private shutdownPoll: { cancel(): void } | undefined;
  /** What the host's device back ends get (undefined without VMBus). */
  readonly context: HostContext | undefined;

  constructor(config: HostConfig) {
    const { vmbus, devices, wallClockStartNs, budget, ...partition } = config;
    this.wallClockStartNs = wallClockStartNs ?? DEFAULT_WALL_CLOCK_START_NS;
    this.budget = vmBudget(budget);
    this.log = new BoundedLog(this.budget.hostLogLines);
    this.partition = new Partition({ ...(partition.arch === 'arm64' ? { tscHz: ARM64_COUNTER_HZ } : {}), hostFaults: this.budget.hostFaults, ...partition });
    if (vmbus === false) {
      this.context = undefined;
      return;
    }
    const v = this.partition.release.vmbusVersion;
    this.vmbus = attachVmbusServer(this.partition, { maxVersion: makeVersion(v.major, v.minor), budget: serverPart(this.budget), ...(typeof vmbus === 'object' ? vmbus : {}) });
    const clock = this.partition.clock;
    const ctx: HostContext = (this.context = {
      server: this.vmbus.server,
      release: this.partition.release.id,
      now: () => clock.nowNs,
      // Device timers are host code the clock enters: what they throw is recorded, not propagated.
      schedule: (at, f) => clock.schedule(at, this.partition.guard('device timer', f)),
      log: (text) => void this.log.push({ ns: clock.nowNs, text }),
      wallClockNs: () => this.wallClockNs(),
      referenceTime: () => this.partition.referenceTime.now(),
      fault: (where, error) => this.partition.hostFault(where, error),
      memory: this.partition.memory,
    });
    this.devices.push(...attachDevices(ctx, devices));
  }

  /**
   * The host's wall clock: the configured start (by default the instant the guest's RTC reads
   * at boot, so that both agree) plus the virtual time since.
   */
  wallClockNs(): bigint {
    return this.wallClockStartNs + BigInt(Math.floor(this.partition.clock.nowNs));
  }

  /** The first device of a type, typed by the caller. */
  device<T extends HostDevice>(type: string): T | undefined {
    return this.devices.find((d) => d.type === type) as T | undefined;
  }

  /**
   * Stop-VM: asks the guest, through the shutdown IC, to shut down as soon as the IC is up
   * (polling every 10 ms of virtual time). False if the VM has no shutdown device.
   */
  shutdownGuest(kind: ShutdownKind = 'shutdown'): boolean {
    const sd = this.device<ShutdownHost>('shutdown');
    if (!sd) return false;
    const clock = this.partition.clock;
    const attempt = (): void => {
      this.shutdownPoll = undefined;
      if (sd.phase === 'ready') sd.request(kind, false, 'hvkit: shutdown requested');
      else if (sd.phase !== 'failed') this.shutdownPoll = this.context!.schedule(clock.nowNs + SHUTDOWN_POLL_NS, attempt);
      else this.log.push({ ns: clock.nowNs, text: 'shutdown: the IC failed to negotiate; nobody to ask' });
    };
    attempt();
    return true;
  }

  /** Adds a back end made after the VM was (the hv_sock provider, on first use), so dispose reaches it. */
  adopt(device: HostDevice): void {
    this.devices.push(device);
  }

  /** Stops the back ends' own timers and the shutdown poll. */
  dispose(): void {
    this.shutdownPoll?.cancel();
    this.shutdownPoll = undefined;
    for (const d of this.devices) d.dispose?.();
  }
}
