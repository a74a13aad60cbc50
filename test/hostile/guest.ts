// A hostile guest: no kernel, only what a guest can do on Hyper-V (DESIGN.md principle 1). It
// writes MSRs to set up the hypercall page and the SynIC of VP 0, posts VMBus messages with
// HvCallPostMessage through the x64 hypercall ABI, signals with HvCallSignalEvent, reads its
// message slot and writes EOM, and scribbles on its own memory. The host is a real one: a
// partition, its VMBus server and the devices asked for, with the VM's budget.
import { expect } from 'vitest';
import { X64Port } from '../../src/hypervisor/cpu.js';
import { HvCall } from '../../src/tlfs/hypercall-codes.js';
import { HvMsr, sintMsr } from '../../src/tlfs/msr.js';
import { HV_MESSAGE_SIZE } from '../../src/tlfs/synic.js';
import { Host, type HostConfig } from '../../src/vm/host.js';
import { gpadlMessages } from '../../src/vmbus/gpadl.js';
import { ChannelMessageType as T, VMBUS_MESSAGE_CONNECTION_ID_4, VmbusVersion } from '../../src/vmbus/wire/constants.js';
import { decodeChannelMessage, encodeChannelMessage, type ChannelMessage } from '../../src/vmbus/wire/messages.js';
import { PAGE, TestGuest, status } from '../hypervisor/harness.js';

/** VMBus's vector for SINT2 (Linux's HYPERVISOR_CALLBACK_VECTOR). */
const VECTOR = 0xf3;

/** The pages the hostile guest shares with the hypervisor and host (besides GPADLs it makes). */
export const HOSTILE_PAGES = {
  hypercall: PAGE.hypercall,
  simp: PAGE.simp(0),
  siefp: PAGE.siefp(0),
  /** VP 1's. */
  simp1: PAGE.simp(1),
  siefp1: PAGE.siefp(1),
  input: PAGE.input(0),
  /** Rings and buffers from here up (GPADLs). */
  rings: 0x100000,
};

export class HostileGuest {
  readonly host: Host;
  /** VP 0, where the guest works; VP 1 only takes the messages the host is asked to send there. */
  readonly g: TestGuest;
  readonly g1: TestGuest;
  /** The connection id messages go to: 4 from VMBus 5.0, else 1. */
  messageConnection = 1;

  constructor(config: HostConfig = {}) {
    this.host = new Host({ vps: 2, memory: 16 << 20, devices: [], ...config });
    const p = this.host.partition;
    this.g = new TestGuest(p, 0, new X64Port(p.vps[0]!));
    this.g1 = new TestGuest(p, 1, new X64Port(p.vps[1]!));
    this.g.enableHypercalls();
    // Every SINT of both VPs takes messages: a contact may ask for answers on any of them.
    for (const [g, vp] of [[this.g, 0], [this.g1, 1]] as const) {
      g.wrmsr(HvMsr.SIMP, BigInt(simpOf(vp)) | 1n);
      g.wrmsr(HvMsr.SIEFP, BigInt(vp === 0 ? HOSTILE_PAGES.siefp : PAGE.siefp(1)) | 1n);
      for (let s = 0; s < 16; s++) g.wrmsr(sintMsr(s), BigInt(VECTOR));
      g.wrmsr(HvMsr.SCONTROL, 1n);
      // Interrupts are taken and EOId, but slots are only freed when the test says so.
      g.handler = () => true;
    }
  }

  get partition() {
    return this.host.partition;
  }
  get server() {
    return this.host.vmbus!.server;
  }
  get memory() {
    return this.host.partition.memory;
  }

  /** HvCallPostMessage of a VMBus message: its status. */
  post(message: Uint8Array, connectionId = this.messageConnection): number {
    const at = HOSTILE_PAGES.input;
    const mem = this.memory;
    mem.fill(at, 16 + 240);
    mem.write32(at, connectionId);
    mem.write32(at + 8, 1);
    mem.write32(at + 12, message.length);
    mem.write(at + 16, message.subarray(0, 240));
    return status(this.g.hypercall({ code: HvCall.POST_MESSAGE }, BigInt(at)));
  }

  /** HvCallSignalEvent (fast) on a connection: its status. */
  signal(connectionId: number, flag = 0): number {
    return status(this.g.hypercall({ code: HvCall.SIGNAL_EVENT, fast: true }, BigInt(connectionId) | (BigInt(flag) << 32n)));
  }

  /** The message in a slot (VP 0's SINT2 by default), decoded, or undefined when the slot is empty. */
  slot(sint = 2, vp = 0): ChannelMessage | undefined {
    const base = simpOf(vp) + sint * HV_MESSAGE_SIZE;
    if (this.memory.read32(base) === 0) return undefined;
    const size = Math.min(this.memory.read8(base + 4), 240);
    return decodeChannelMessage(this.memory.read(base + 16, size));
  }

  /** Frees a slot (message_type = NONE) and writes EOM, as Linux's vmbus_on_msg_dpc does. */
  eom(sint = 2, vp = 0): void {
    this.memory.write32(simpOf(vp) + sint * HV_MESSAGE_SIZE, 0);
    (vp === 0 ? this.g : this.g1).wrmsr(HvMsr.EOM, 0n);
  }

  /** Takes every message the host has queued for VP 0's SINT2; the other slots are emptied too. */
  drain(): ChannelMessage[] {
    const out: ChannelMessage[] = [];
    for (const vp of [0, 1]) {
      const g = vp === 0 ? this.g : this.g1;
      g.drain();
      for (let s = 0; s < 16; s++) {
        while (this.memory.read32(simpOf(vp) + s * HV_MESSAGE_SIZE) !== 0) {
          if (vp === 0 && s === 2) out.push(this.slot()!);
          this.eom(s, vp);
          g.drain();
        }
      }
    }
    return out;
  }

  /** Moves virtual time on (host timers, deferred device work), taking interrupts. */
  run(ns: number): void {
    const clock = this.partition.clock;
    clock.advanceTo(clock.nowNs + ns);
    this.g.drain();
  }

  /** INITIATE_CONTACT at `version` and REQUESTOFFERS; returns the offers. */
  connect(version: number = VmbusVersion.WIN10_V5_3): ChannelMessage[] {
    this.messageConnection = version >= VmbusVersion.WIN10_V5 ? VMBUS_MESSAGE_CONNECTION_ID_4 : 1;
    const contact = encodeChannelMessage(T.INITIATE_CONTACT, { vmbus_version_requested: version, target_vcpu: 0, msg_sint: 2, msg_vtl: 0, reserved: 0, feature_flags: 0, monitor_page1: 0n, monitor_page2: 0n });
    expect(this.post(contact)).toBe(0);
    const [reply] = this.drain();
    expect(reply?.type === T.VERSION_RESPONSE && reply.value.version_supported).toBe(1);
    expect(this.post(encodeChannelMessage(T.REQUESTOFFERS, {}))).toBe(0);
    return this.drain().filter((m) => m.type === T.OFFERCHANNEL);
  }

  /** INITIATE_CONTACT at 5.3 and REQUESTOFFERS, answers taken, nothing asserted (for storms). */
  reconnect(): void {
    this.messageConnection = VMBUS_MESSAGE_CONNECTION_ID_4;
    this.post(encodeChannelMessage(T.INITIATE_CONTACT, { vmbus_version_requested: VmbusVersion.WIN10_V5_3, target_vcpu: 0, msg_sint: 2, msg_vtl: 0, reserved: 0, feature_flags: 0, monitor_page1: 0n, monitor_page2: 0n }));
    this.drain();
    this.post(encodeChannelMessage(T.REQUESTOFFERS, {}));
    this.drain();
  }

  /** The messages of a GPADL of `pages` frames from `firstPfn` on `relid`, as Linux sends them. */
  gpadlMessagesFor(relid: number, handle: number, firstPfn: number, pages: number): Uint8Array[] {
    const pfns = Array.from({ length: pages }, (_, i) => firstPfn + i);
    return gpadlMessages(relid, handle, pfns, pages * 4096);
  }

  /** Posts a GPADL (gpadlMessagesFor); the statuses of the posts. */
  gpadl(relid: number, handle: number, firstPfn: number, pages: number): number[] {
    return this.gpadlMessagesFor(relid, handle, firstPfn, pages).map((m) => this.post(m));
  }

  /** OPENCHANNEL on a ring GPADL split at `downstream` pages. */
  open(relid: number, handle: number, downstream: number): number {
    return this.post(encodeChannelMessage(T.OPENCHANNEL, { child_relid: relid, openid: relid, ringbuffer_gpadlhandle: handle, target_vp: 0, downstream_ringbuffer_pageoffset: downstream, userdata: new Uint8Array(120) }));
  }
}

const simpOf = (vp: number): number => (vp === 0 ? HOSTILE_PAGES.simp : PAGE.simp(1));

/** The 4 KiB pages whose bytes differ between two copies of RAM. */
export function changedPages(before: Uint8Array, after: Uint8Array): number[] {
  const pages: number[] = [];
  const a = new BigUint64Array(before.buffer, before.byteOffset, before.length / 8);
  const b = new BigUint64Array(after.buffer, after.byteOffset, after.length / 8);
  for (let i = 0; i < a.length; i += 512) {
    for (let k = i; k < i + 512; k++) {
      if (a[k] !== b[k]) {
        pages.push(i / 512);
        break;
      }
    }
  }
  return pages;
}
