// Machines with NICs for the network tests: one VM on a switch, or a lab of several; the wire
// recorded as NVSP messages by direction.
import type { TraceEvent } from '../../../src/hypervisor/trace.js';
import type { ReleaseId } from '../../../src/hypervisor/release.js';
import { VirtualSwitch } from '../../../src/devices/network/switch.js';
import type { NicOptions } from '../../../src/devices/network/netvsp/netvsp.js';
import { Lab } from '../../../src/vm/lab.js';
import { Machine } from '../../../src/vm/machine.js';
import { guestNetwork, hostNics } from '../../../src/vm/network.js';

export const mac = (last: number) => new Uint8Array([0x00, 0x15, 0x5d, 0x00, 0x00, last]);

export interface WirePacket {
  dir: 'to-host' | 'to-guest';
  channel: number;
  /** VM_PKT_* type. */
  type: number;
  transId: bigint;
  bytes: Uint8Array;
}

/** Records every ring packet of the machine. */
export function recordWire(m: Machine): WirePacket[] {
  const out: WirePacket[] = [];
  m.partition.events.on((e: TraceEvent) => {
    if (e.kind !== 'packet') return;
    const b = new Uint8Array((e.bytes.match(/../g) ?? []).map((h) => parseInt(h, 16)));
    out.push({ dir: e.dir, channel: e.channel, type: e.type, transId: e.transId, bytes: b });
  });
  return out;
}

/** The in-band part (after offset8) of a recorded packet. */
export function payloadOf(p: WirePacket): Uint8Array {
  const off = (p.bytes[2]! | (p.bytes[3]! << 8)) * 8;
  const len = (p.bytes[4]! | (p.bytes[5]! << 8)) * 8;
  return p.bytes.subarray(off, len);
}

export interface NicRigOptions {
  release?: ReleaseId;
  vps?: number;
  nic?: NicOptions;
  address?: string;
  memory?: number;
  arch?: 'x64' | 'arm64';
  pageSize?: 4096 | 16384 | 65536;
  record?: boolean;
  /** Channel bound for the VM (budget.channels). */
  channels?: number;
}

/** One VM with one NIC on a switch, booted and settled. */
export function nicRig(o: NicRigOptions = {}) {
  const sw = new VirtualSwitch('lan');
  const m = new Machine({
    release: o.release ?? 'ws2022',
    vps: o.vps ?? 2,
    arch: o.arch ?? 'x64',
    ...(o.pageSize ? { pageSize: o.pageSize } : {}),
    memory: o.memory ?? 128 << 20,
    devices: [{ type: 'network', nic: { backend: sw, mac: mac(1), ...o.nic } }],
    kernel: { network: { interfaces: [{ address: o.address ?? '10.0.0.1/24' }] } },
    ...(o.channels ? { budget: { channels: o.channels } } : {}),
  });
  const wire = o.record ? recordWire(m) : [];
  m.boot();
  m.runFor(1e9);
  const host = hostNics(m)[0]!;
  const guest = guestNetwork(m);
  return { m, sw, host, guest, nic: guest.nics[0]!, dev: guest.device()!, inet: guest.inet()!, wire };
}

/** A lab of VMs a, b, … on one switch, addresses 10.0.0.1, .2, …; booted and settled. */
export function labRig(n = 2, o: { vps?: number; queues?: number; release?: ReleaseId } = {}) {
  const lab = new Lab();
  const sw = lab.switch('lan');
  const names = Array.from({ length: n }, (_, i) => String.fromCharCode(97 + i));
  names.forEach((name, i) =>
    lab.add(name, {
      release: o.release ?? 'ws2022',
      vps: o.vps ?? 2,
      memory: 128 << 20,
      devices: [{ type: 'network', nic: { backend: sw, mac: mac(i + 1), ...(o.queues ? { queues: o.queues } : {}) } }],
      kernel: { network: { interfaces: [{ address: `10.0.0.${i + 1}/24` }] } },
    }),
  );
  lab.boot();
  lab.runFor(1e9);
  const vm = (name: string) => {
    const m = lab.vm(name)!;
    const g = guestNetwork(m);
    return { m, guest: g, host: hostNics(m)[0]!, inet: g.inet()!, dev: g.device()!, nic: g.nics[0]! };
  };
  return { lab, sw, vm };
}
