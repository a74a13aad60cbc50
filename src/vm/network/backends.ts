// The NICs of a VM made real: each network device's back end opened (a switch of the run or lab,
// a capture file, a socket), its MAC chosen, and the guest's addresses gathered into the guest's
// network configuration (eth0's is the kernel's ip= parameter).
import type { NetBackend } from '../../devices/network/backend.js';
import { parseMac, type Mac } from '../../devices/network/ether.js';
import type { GuestNetConfig } from '../../devices/network/netvsc/module.js';
import type { NicOptions } from '../../devices/network/netvsp/netvsp.js';
import type { VirtualSwitch } from '../../devices/network/switch.js';
import type { VmDevice } from '../config.js';
import { DEFAULT_WALL_CLOCK_START_NS } from '../host.js';
import { PcapBackend, PcapFile } from './pcap-file.js';
import { StreamBackend, UdpBackend } from './sockets.js';

export interface OpenedNics {
  /** NIC options by index in the VM's device list. */
  readonly nics: ReadonlyMap<number, NicOptions>;
  readonly guest: GuestNetConfig;
  /** Some NIC talks to the outside world: virtual time should not outrun the wall clock. */
  readonly live: boolean;
  readonly backends: readonly NetBackend[];
  close(): void;
}

export interface OpenNicsOptions {
  /** The switch named `name` (the run's own, or the lab's shared one). */
  switchNamed(name: string): VirtualSwitch;
  /** A NIC without a back end joins this switch (a lab's "lan"); otherwise it is not connected. */
  defaultSwitch?: string;
  /** Virtual time, for captures. */
  now(): number;
  /** Names NIC k of the VM in captures and logs ("a/eth0"). */
  label?: (k: number) => string;
  /** The MAC of NIC k when the configuration gives none (a lab derives distinct ones). */
  defaultMac?: (k: number) => Mac | undefined;
}

/** Thrown when a back end cannot be opened: the field or option and why. */
export class NicOpenError extends Error {
  override readonly name = 'NicOpenError';
  constructor(
    readonly index: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

/** Opens every network device's back end, in order; on failure closes what was opened. */
export async function openNics(devices: readonly VmDevice[], o: OpenNicsOptions): Promise<OpenedNics> {
  const nics = new Map<number, NicOptions>();
  const interfaces: ({ address: string; gateway?: string } | undefined)[] = [];
  const backends: NetBackend[] = [];
  const closers: (() => void)[] = [];
  let live = false;
  let k = 0;
  try {
    for (let i = 0; i < devices.length; i++) {
      const d = devices[i]!;
      if (d.type !== 'network') continue;
      const n = d.nic;
      const name = o.label?.(k) ?? `eth${k}`;
      let backend: NetBackend | undefined;
      const b = n?.backend ?? { kind: 'none' as const };
      if (b.kind === 'switch') backend = o.switchNamed(b.name);
      else if (b.kind === 'none' && o.defaultSwitch) backend = o.switchNamed(o.defaultSwitch);
      else if (b.kind === 'pcap') {
        let file: PcapFile;
        try {
          file = new PcapFile(b.file, DEFAULT_WALL_CLOCK_START_NS, `hvkit NIC ${name}`);
        } catch (e) {
          throw new NicOpenError(i, `cannot write ${b.file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
        }
        closers.push(() => file.close());
        backend = new PcapBackend(file, o.now);
      } else if (b.kind === 'udp') {
        const u = new UdpBackend(b.local, b.peer);
        closers.push(() => u.close());
        try {
          await u.open();
        } catch (e) {
          throw new NicOpenError(i, `udp ${b.local.host}:${b.local.port} (peer ${b.peer.host}:${b.peer.port}): ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
        }
        backend = u;
        live = true;
      } else if (b.kind === 'stream') {
        const s = new StreamBackend(b.addr, b.server);
        closers.push(() => s.close());
        try {
          await s.open();
        } catch (e) {
          throw new NicOpenError(i, `stream ${b.server ? 'listening on' : 'to'} ${b.addr.host}:${b.addr.port}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
        }
        backend = s;
        live = true;
      }
      if (backend) backends.push(backend);
      const mac = n?.mac ? parseMac(n.mac) : o.defaultMac?.(k);
      nics.set(i, { name, ...(backend ? { backend } : {}), ...(mac ? { mac } : {}), ...(n?.queues ? { queues: n.queues } : {}) });
      interfaces[k] = n?.ip ? { address: n.ip, ...(n.gateway ? { gateway: n.gateway } : {}) } : undefined;
      k++;
    }
  } catch (e) {
    for (const c of closers) c();
    throw e;
  }
  return {
    nics,
    guest: { interfaces },
    live,
    backends,
    close: () => closers.forEach((c) => c()),
  };
}

/** A MAC from a name (a lab VM's and its NIC's): 00:15:5d and three bytes of an FNV-1a hash. */
export function macFromName(name: string): Mac {
  let h = 0x811c9dc5;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return new Uint8Array([0x00, 0x15, 0x5d, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff]);
}
