// The network devices of a machine, from code: the host's NICs (netvsp) and the guest's
// hv_netvsc module (its interfaces, stacks, ping, raw sockets).
import type { NetvscGuest, netvscModule } from '../devices/network/netvsc/module.js';
import type { NetvspDevice } from '../devices/network/netvsp/netvsp.js';
import type { HostDevice } from '../devices/device.js';
import type { Kernel } from '../guest/kernel.js';
import type { Machine } from './machine.js';

/** The guest's hv_netvsc module; throws if the guest has none or has not booted. */
export function guestNetwork(m: Machine): NetvscGuest {
  const g = netvscOf(m.kernel);
  if (!g) throw new Error(m.kernel.vmbus?.status === 'connected' ? 'the guest has no hv_netvsc module' : 'the guest has no VMBus connection: boot the machine first');
  return g;
}

/** The kernel's hv_netvsc instance, if it has the module and probed it. */
function netvscOf(kernel: Kernel): NetvscGuest | undefined {
  const mod = kernel.options.modules.find((x) => x.name === 'hv_netvsc') as ReturnType<typeof netvscModule> | undefined;
  return mod?.instance;
}

/** The host's NICs, in offer order. */
export function hostNics(m: { readonly devices: readonly HostDevice[] }): NetvspDevice[] {
  return m.devices.filter((d): d is NetvspDevice => d.type === 'network');
}

/** A guest network interface as sysfs shows it. */
export interface NetInterface {
  busId: string;
  name: string;
  address: string;
  mtu: number;
  up: boolean;
  carrier: boolean;
  queues: number;
}

/** The guest's network interfaces as sysfs shows them (net/<name>/ under their VMBus device). */
export function netInterfaces(m: Machine): NetInterface[] {
  return kernelNetInterfaces(m.kernel);
}

/** The same from the kernel alone: the guest thread reports it. */
export function kernelNetInterfaces(kernel: Kernel): NetInterface[] {
  return (netvscOf(kernel)?.devices ?? []).map((d) => ({ busId: d.busId, name: d.name, address: d.macString, mtu: d.mtu, up: d.up, carrier: d.carrier, queues: d.queues }));
}

/** The guest's side of each NIC, as plain data (`guest` in netState). */
export function kernelNetState(kernel: Kernel): Record<string, unknown>[] {
  return netvscOf(kernel)?.state() ?? [];
}

/** Each NIC as both sides see it, for --json: the guest's interface and the host's device. */
export function netState(m: Machine): unknown[] {
  return pairNetState(hostNics(m), kernelNetState(m.kernel));
}

/** Host NICs paired with the guest's interfaces, in offer order. */
export function pairNetState(hosts: readonly NetvspDevice[], guest: readonly Record<string, unknown>[]): unknown[] {
  return hosts.map((h, i) => ({ host: h.state(), guest: guest[i] }));
}
