// The network devices of a machine, from code: the host's NICs (netvsp) and the guest's
// hv_netvsc module (its interfaces, stacks, ping, raw sockets).
import type { NetvscGuest, netvscModule } from '../devices/network/netvsc/module.js';
import type { NetvspDevice } from '../devices/network/netvsp/netvsp.js';
import type { Machine } from './machine.js';

/** The guest's hv_netvsc module; throws if the guest has none or has not booted. */
export function guestNetwork(m: Machine): NetvscGuest {
  const mod = m.kernel.options.modules.find((x) => x.name === 'hv_netvsc') as ReturnType<typeof netvscModule> | undefined;
  const g = mod?.instance;
  if (!g) throw new Error(m.kernel.vmbus?.status === 'connected' ? 'the guest has no hv_netvsc module' : 'the guest has no VMBus connection: boot the machine first');
  return g;
}

/** The host's NICs, in offer order. */
export function hostNics(m: Machine): NetvspDevice[] {
  return m.devices.filter((d): d is NetvspDevice => d.type === 'network');
}

/** The guest's network interfaces as sysfs shows them (net/<name>/ under their VMBus device). */
export function netInterfaces(m: Machine): { busId: string; name: string; address: string; mtu: number; up: boolean; carrier: boolean; queues: number }[] {
  let g;
  try {
    g = guestNetwork(m);
  } catch {
    return [];
  }
  return g.devices.map((d) => ({ busId: d.busId, name: d.name, address: d.macString, mtu: d.mtu, up: d.up, carrier: d.carrier, queues: d.queues }));
}

/** Each NIC as both sides see it, for --json: the guest's interface and the host's device. */
export function netState(m: Machine): unknown[] {
  const hosts = hostNics(m);
  let guest: Record<string, unknown>[] = [];
  try {
    guest = guestNetwork(m).state();
  } catch {
    // no guest side
  }
  return hosts.map((h, i) => ({ host: h.state(), guest: guest[i] }));
}
