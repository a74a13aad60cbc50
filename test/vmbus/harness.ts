// A whole machine with VMBus for channel tests: the host's devices register offers with the
// server; guest drivers bind in the guest kernel's VMBus client. Every message the guest posts
// is recorded as the host decoded it, and can be held back to stage races.
import { Machine, type MachineConfig } from '../../src/vm/machine.js';
import type { GuestChannel } from '../../src/vmbus/client/channel.js';
import type { VmbusDriver } from '../../src/vmbus/client/client.js';
import type { ChannelHandler, HostChannel, OfferSpec } from '../../src/vmbus/server/channel.js';
import type { VmbusServer } from '../../src/vmbus/server/server.js';
import { decodeChannelMessage, messageName } from '../../src/vmbus/wire/messages.js';
import type { ParsedPacket } from '../../src/vmbus/wire/packets.js';
import { PacketType } from '../../src/vmbus/wire/constants.js';

export const ECHO_CLASS = 'a1b2c3d4-0001-4000-8000-00000000e040';
export const instanceId = (n: number) => `0000${n.toString(16).padStart(4, '0')}-feed-4000-8000-000000000001`;

export interface Posted {
  name: string;
  payload: Uint8Array;
  vp: number;
}

export class VmbusRig {
  readonly m: Machine;
  readonly server: VmbusServer;
  /** Every guest→host message, in order, named. */
  readonly posted: Posted[] = [];
  /** Messages matching this are held (not given to the server) until release(). */
  hold: ((p: Posted) => boolean) | undefined;
  private readonly held: Posted[] = [];
  private readonly deliver: (payload: Uint8Array, vp: number) => number;

  constructor(config: MachineConfig = {}) {
    this.m = new Machine({ vps: 2, memory: 64 << 20, devices: [], ...config, kernel: { modules: [], ...config.kernel, vmbusClient: { timeoutNs: 1e9, ...config.kernel?.vmbusClient } } });
    this.server = this.m.vmbus!.server;
    const inner = this.server.handleMessage.bind(this.server);
    this.deliver = inner;
    this.server.handleMessage = (payload: Uint8Array, vp: number) => {
      const p = { name: nameOf(payload), payload: payload.slice(), vp };
      this.posted.push(p);
      if (this.hold?.(p)) {
        this.held.push(p);
        return 0;
      }
      return inner(payload, vp);
    };
  }

  /** Gives held messages to the server, in order. */
  release(): void {
    this.hold = undefined;
    for (const p of this.held.splice(0)) this.deliver(p.payload, p.vp);
  }

  get client() {
    return this.m.kernel.vmbus!;
  }

  names(from = 0): string[] {
    return this.posted.slice(from).map((p) => p.name);
  }

  boot(): this {
    this.m.boot();
    return this;
  }

  run(ns = 1_000_000): void {
    this.m.runFor(ns);
  }
}

function nameOf(payload: Uint8Array): string {
  try {
    const m = decodeChannelMessage(payload);
    return 'child_relid' in m.value ? `${m.name}(${m.value.child_relid})` : m.name;
  } catch {
    return payload.length >= 4 ? messageName(new DataView(payload.buffer, payload.byteOffset).getUint32(0, true)) : '(short)';
  }
}

/** A host device that echoes every in-band packet back, completing requests that ask for it. */
export class EchoDevice implements ChannelHandler {
  readonly received: ParsedPacket[] = [];
  opens = 0;
  closes = 0;
  revokes = 0;
  /** Sent right when the guest opens, before OPENCHANNEL_RESULT. */
  greeting: Uint8Array | undefined;
  openStatus = 0;

  open(ch: HostChannel): number {
    this.opens++;
    if (this.greeting) ch.sendInband(this.greeting, 0n);
    return this.openStatus;
  }
  close(): void {
    this.closes++;
  }
  revoked(): void {
    this.revokes++;
  }
  signal(ch: HostChannel): void {
    ch.receive((p) => {
      this.received.push(p);
      if (p.type !== PacketType.DATA_INBAND) return;
      if (p.completionRequested) ch.sendCompletion(p.transId, p.payload);
      else ch.sendInband(p.payload, p.transId);
    });
  }
}

export function offerEcho(rig: VmbusRig, n = 1, spec: Partial<OfferSpec> = {}): { dev: EchoDevice; ch: HostChannel } {
  const dev = new EchoDevice();
  const ch = rig.server.offer({ classId: ECHO_CLASS, instanceId: instanceId(n), ...spec }, dev);
  return { dev, ch };
}

/** A guest driver for the echo class: opens each device, keeps what arrives. */
export class EchoDriver implements VmbusDriver {
  readonly name = 'hv_echo';
  readonly classIds = [ECHO_CLASS];
  readonly channels: GuestChannel[] = [];
  readonly inbox = new Map<GuestChannel, ParsedPacket[]>();
  readonly removed: GuestChannel[] = [];
  /** States seen by the callback when packets arrived. */
  readonly statesAtCallback: string[] = [];
  ringBytes = 16384;
  openSubchannels = true;

  probe(ch: GuestChannel): void {
    ch.onSubchannel = (sub) => {
      if (this.openSubchannels) this.openChannel(sub);
    };
    this.openChannel(ch);
  }

  openChannel(ch: GuestChannel): void {
    this.inbox.set(ch, []);
    ch.open({
      sendRingBytes: this.ringBytes,
      recvRingBytes: this.ringBytes,
      requestorSize: 64,
      onEvent: (c) => {
        this.statesAtCallback.push(c.state);
        c.receive((p) => this.inbox.get(c)!.push(p));
      },
    });
    this.channels.push(ch);
  }

  remove(ch: GuestChannel): void {
    this.removed.push(ch);
    ch.close();
  }

  payloads(ch: GuestChannel): string[] {
    return (this.inbox.get(ch) ?? []).map((p) => new TextDecoder().decode(p.payload.subarray(0, lengthOf(p.payload))));
  }
}

/** Test payloads are NUL-padded text: the logical length is up to the first NUL. */
function lengthOf(b: Uint8Array): number {
  const i = b.indexOf(0);
  return i < 0 ? b.length : i;
}

export const text = (s: string) => new TextEncoder().encode(s);
