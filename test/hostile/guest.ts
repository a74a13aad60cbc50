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
  input: PAGE.input(0),
  /** Rings and buffers from here up (GPADLs). */
  rings: 0x100000,
};

export class HostileGuest {
  readonly host: Host;
  readonly g: TestGuest;
  /** The connection id messages go to: 4 from VMBus 5.0, else 1. */
  messageConnection = 1;

  constructor(config: HostConfig = {}) {
    this.host = new Host({ vps: 2, memory: 16 << 20, devices: [], ...config });
    const p = this.host.partition;
    this.g = new TestGuest(p, 0, new X64Port(p.vps[0]!));
    this.g.enableHypercalls();
    this.g.wrmsr(HvMsr.SIMP, BigInt(HOSTILE_PAGES.simp) | 1n);
    this.g.wrmsr(HvMsr.SIEFP, BigInt(HOSTILE_PAGES.siefp) | 1n);
    this.g.wrmsr(sintMsr(2), BigInt(VECTOR));
    this.g.wrmsr(HvMsr.SCONTROL, 1n);
    // Interrupts are taken and EOId, but the slot is only freed when the test says so.
    this.g.handler = () => true;
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

  /** The message in SINT2's slot, decoded, or undefined when the slot is empty. */
  slot(): ChannelMessage | undefined {
    const base = HOSTILE_PAGES.simp + 2 * HV_MESSAGE_SIZE;
    if (this.memory.read32(base) === 0) return undefined;
    const size = this.memory.read8(base + 4);
    return decodeChannelMessage(this.memory.read(base + 16, size));
  }

  /** Frees the slot (message_type = NONE) and writes EOM, as Linux's vmbus_on_msg_dpc does. */
  eom(): void {
    this.memory.write32(HOSTILE_PAGES.simp + 2 * HV_MESSAGE_SIZE, 0);
    this.g.wrmsr(HvMsr.EOM, 0n);
  }

  /** Takes every message the host has queued for SINT2. */
  drain(): ChannelMessage[] {
    const out: ChannelMessage[] = [];
    this.g.drain();
    for (let m = this.slot(); m; m = this.slot()) {
      out.push(m);
      this.eom();
      this.g.drain();
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
