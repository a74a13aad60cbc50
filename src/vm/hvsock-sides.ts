// A machine's two hv_sock ends, platform-neutral (hvsock-stream.ts wraps them in Node streams, the
// browser app's echo box uses them as they are): the host's provider and the guest kernel's
// transport.
import type { Partition } from '../hypervisor/partition.js';
import type { hvSockModule, HvSockGuest } from '../devices/hvsock/guest.js';
import { HvsockHost, type HvsockHostOptions } from '../devices/hvsock/host.js';
import type { PartitionVmbus } from '../vmbus/server/partition-io.js';
import type { Host } from './host.js';
import type { Machine } from './machine.js';

/** What the host-side helpers need of a machine: a `Machine` or a `ThreadedMachine`. */
export interface HostSide {
  readonly host: Host;
  readonly partition: Partition;
  readonly vmbus: PartitionVmbus | undefined;
}

/**
 * The machine's host hv_sock provider, made on first use (the VM id given, or a fixed one) and
 * handed to the host so that its dispose closes it.
 */
export function hostHvsock(m: HostSide, options: HvsockHostOptions & { vmId?: string } = {}): HvsockHost {
  const existing = m.host.device<HvsockHost>('hvsock');
  if (existing) return existing;
  const ctx = m.host.context;
  if (!ctx) throw new Error('the machine has no VMBus');
  const h = new HvsockHost(ctx, options.vmId ?? '6876736b-0000-4000-8000-00000000766d', { connectionsPerService: m.host.budget.hvsockConnectionsPerService, ...options });
  m.host.adopt(h);
  return h;
}

/** The guest kernel's hv_sock transport: the hv_sock module's, once the kernel loaded it at boot. */
export function guestHvsock(m: Pick<Machine, 'kernel'>): HvSockGuest {
  const mod = m.kernel.options.modules.find((x) => x.name === 'hv_sock') as ReturnType<typeof hvSockModule> | undefined;
  const g = mod?.instance;
  if (!g) throw new Error(m.kernel.vmbus?.status === 'connected' ? 'the guest has no hv_sock (VMBus before 4.0, or no hv_sock module)' : 'the guest has no VMBus connection: boot the machine first');
  return g;
}

