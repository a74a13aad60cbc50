// The workload of `hvkit run --threads`: after boot, run on for some virtual time or until the
// kernel halts, then report the VMBus snapshot and interfaces (for --sysfs), the guest's NICs (for
// --json) and how far the kernel got.
import type { KernelStage } from '../../../guest/kernel.js';
import { STORAGE_MODULE_NAME, type ScsiHostSnapshot, type StorageModule } from '../../../devices/storage/guest.js';
import type { VmbusSnapshot } from '../../../vmbus/client/snapshot.js';
import { kernelNetInterfaces, kernelNetState, type NetInterface } from '../../network.js';
import type { GuestContext } from '../guest-context.js';

export interface RunArgs {
  /** 'booted': stop now; a number: seconds of virtual time; 'shutdown': until the kernel halts (at most `limitSeconds`). */
  until: 'booted' | 'shutdown' | number;
  limitSeconds: number;
}

export interface RunResult {
  stage: KernelStage;
  /** The devices as they were once boot finished. */
  booted: VmbusSnapshot | undefined;
  /** The SCSI hosts and disks then (for --sysfs). */
  storage: ScsiHostSnapshot[];
  /** The network interfaces then (for --sysfs). */
  nets: NetInterface[];
  /** The guest's side of each NIC at the end (for --json). */
  network: Record<string, unknown>[];
}

export default function run(ctx: GuestContext<RunArgs>): RunResult {
  const { kernel, args } = ctx;
  const booted = kernel.vmbus?.snapshot();
  const mod = kernel.options.modules.find((m) => m.name === STORAGE_MODULE_NAME) as StorageModule | undefined;
  const storage = mod?.storage?.snapshot() ?? [];
  const nets = kernelNetInterfaces(kernel);
  if (typeof args.until === 'number') ctx.waitUntil(() => false, args.until * 1e9);
  else if (args.until === 'shutdown') ctx.waitUntil(() => kernel.stage === 'halted', args.limitSeconds * 1e9);
  return { stage: kernel.stage, booted, storage, nets, network: kernelNetState(kernel) };
}
