// A virtual switch inside the process, like a Hyper-V external-less ("private") vSwitch: a
// learning bridge. Each NIC connected to it is a port; the switch learns source MAC addresses,
// sends a unicast frame to the port that owns its destination, and floods broadcast,
// multicast and unknown-destination frames to every other port. Its tables are bounded: past
// `maxMacs` addresses it stops learning and floods instead. Delivery is synchronous; each NIC
// bounds what it queues and counts what it drops, so a broadcast flood costs drops, not memory.
import type { FrameTap, NetBackend, NetEndpoint, NetLink } from './backend.js';
import { subarrayOf } from '../../memory/typed-arrays.js';
import { ETH_HLEN, isMulticast, macEquals, macKey } from './ether.js';

export interface SwitchOptions {
  /** Learned addresses at most (default 4096). */
  maxMacs?: number;
  /** Ports at most (default 1024). */
  maxPorts?: number;
  /** Virtual time for captures. */
  now?: () => number;
}

export interface SwitchStats {
  /** Frames the ports sent into the switch. */
  frames: number;
  /** Frames delivered to a port (a flood counts once per port). */
  delivered: number;
  /** Frames sent to every other port (broadcast, multicast, unknown destination). */
  flooded: number;
  /** Deliveries a port refused (its NIC dropped the frame). */
  refused: number;
  /** Frames too short to be Ethernet, dropped. */
  runts: number;
  /** Source addresses not learned because the table was full. */
  unlearned: number;
}

interface Port {
  readonly id: number;
  readonly endpoint: NetEndpoint;
  open: boolean;
  /**
   * The source address this port last sent from, already learnt for it, and the destination it
   * last sent to with the port the table gave (valid while the table's `version` is the same):
   * a stream of frames between two NICs skips the table (a 48-bit key is a heap number per lookup).
   */
  readonly lastSrc: Uint8Array;
  lastSrcVersion: number;
  readonly lastDst: Uint8Array;
  lastTo: Port | undefined;
  lastDstVersion: number;
}

function newPort(id: number, endpoint: NetEndpoint): Port {
  return { id, endpoint, open: true, lastSrc: new Uint8Array(6), lastSrcVersion: -1, lastDst: new Uint8Array(6), lastTo: undefined, lastDstVersion: -1 };
}

export class VirtualSwitch implements NetBackend {
  readonly kind = 'switch';
  readonly stats: SwitchStats = { frames: 0, delivered: 0, flooded: 0, refused: 0, runts: 0, unlearned: 0 };
  private readonly ports: Port[] = [];
  /** MAC (as a number) → port. */
  private readonly table = new Map<number, Port>();
  private readonly taps: FrameTap[] = [];
  private nextId = 1;
  /** Moves whenever the table changes: what ports remember of it is stale then. */
  private version = 0;
  private readonly maxMacs: number;
  private readonly maxPorts: number;
  private readonly now: () => number;

  constructor(
    readonly name: string,
    options: SwitchOptions = {},
  ) {
    this.maxMacs = options.maxMacs ?? 4096;
    this.maxPorts = options.maxPorts ?? 1024;
    this.now = options.now ?? (() => 0);
  }

  get description(): string {
    return `switch ${this.name}`;
  }

  /** Every frame entering the switch also goes to `tap` (the lab's --pcap). */
  addTap(tap: FrameTap): void {
    this.taps.push(tap);
  }

  /** Addresses learned so far. */
  get learned(): number {
    return this.table.size;
  }

  /** The endpoint names of the open ports. */
  get portNames(): string[] {
    return this.ports.map((p) => p.endpoint.name);
  }

  connect(endpoint: NetEndpoint): NetLink {
    if (this.ports.length >= this.maxPorts) throw new RangeError(`switch ${this.name}: ${this.maxPorts} ports already connected`);
    const port = newPort(this.nextId++, endpoint);
    this.ports.push(port);
    return {
      transmit: (frame) => {
        if (port.open) this.forward(port, frame, 0, frame.length);
      },
      transmitFrom: (bytes, at, length) => {
        if (port.open) this.forward(port, bytes, at, length);
      },
      close: () => this.disconnect(port),
    };
  }

  /** Sends a frame into the switch as if from a port named `from` that nobody can reach (a test's raw injector). */
  inject(frame: Uint8Array, from = 'inject'): void {
    this.forward(newPort(0, { name: from, mac: new Uint8Array(6), deliver: () => false }), frame, 0, frame.length, false);
  }

  private disconnect(port: Port): void {
    port.open = false;
    const i = this.ports.indexOf(port);
    if (i >= 0) this.ports.splice(i, 1);
    for (const [mac, p] of this.table) if (p === port) this.table.delete(mac);
    this.version++;
  }

  /** The frame is bytes[at, at + length): a port's whole buffer, or a frame inside a guest's send section. */
  private forward(from: Port, bytes: Uint8Array, at: number, length: number, learn = true): void {
    this.stats.frames++;
    if (length < ETH_HLEN) {
      this.stats.runts++;
      return;
    }
    if (this.taps.length) {
      const frame = at === 0 && length === bytes.length ? bytes : subarrayOf(bytes, at, at + length);
      for (const t of this.taps) t.frame(frame, this.now(), from.endpoint.name);
    }
    const src = at + 6;
    if (learn && !isMulticast(bytes, src) && !(from.lastSrcVersion === this.version && macEquals(bytes, src, from.lastSrc))) {
      if (this.learn(macKey(bytes, src), from)) {
        copyMac(from.lastSrc, bytes, src);
        from.lastSrcVersion = this.version;
      }
    }
    if (!isMulticast(bytes, at)) {
      let to: Port | undefined;
      if (from.lastDstVersion === this.version && macEquals(bytes, at, from.lastDst)) to = from.lastTo;
      else {
        to = this.table.get(macKey(bytes, at));
        copyMac(from.lastDst, bytes, at);
        from.lastTo = to;
        from.lastDstVersion = this.version;
      }
      if (to) {
        if (to !== from) this.deliver(to, bytes, at, length);
        return;
      }
    }
    this.stats.flooded++;
    for (const p of [...this.ports]) if (p !== from) this.deliver(p, bytes, at, length);
  }

  /** Learns that `mac` is behind `port`; false if the table is full and it could not. */
  private learn(mac: number, port: Port): boolean {
    const known = this.table.get(mac);
    if (known === port) return true;
    if (!known && this.table.size >= this.maxMacs) {
      this.stats.unlearned++;
      return false;
    }
    this.table.set(mac, port);
    this.version++;
    return true;
  }

  private deliver(port: Port, bytes: Uint8Array, at: number, length: number): void {
    if (!port.open) return;
    const e = port.endpoint;
    // A NIC that takes a range gets one (no view per frame); any other endpoint its own view.
    const ok = e.deliverFrom ? e.deliverFrom(bytes, at, length) : e.deliver(at === 0 && length === bytes.length ? bytes : subarrayOf(bytes, at, at + length));
    if (ok) this.stats.delivered++;
    else this.stats.refused++;
  }
}

/** mac[0..6) = bytes[at, at + 6). */
function copyMac(mac: Uint8Array, bytes: Uint8Array, at: number): void {
  for (let i = 0; i < 6; i++) mac[i] = bytes[at + i]!;
}
