// The synthetic interrupt controller of one VP (tlfs.md §5): SCONTROL, SIMP, SIEFP, SINT0-15
// and EOM; sixteen message slots with per-SINT queues and the msg_pending/EOM redelivery
// protocol (§5.4); event flags (§5.6); SINT assertion with auto-EOI and polling (§5.7).
import { OverlayPage } from '../memory/overlay.js';
import { gpnFieldToGpa } from '../memory/pages.js';
import { MiscX64 } from '../tlfs/cpuid.js';
import { HvStatus } from '../tlfs/status.js';
import {
  HV_MESSAGE_PAYLOAD_BYTE_COUNT,
  HV_MESSAGE_SIZE,
  HV_SYNIC_FIRST_VALID_VECTOR,
  HV_SYNIC_SINT_COUNT,
  HV_SYNIC_SINT_RESET,
  HvMessage,
  HvMessageHeader,
  HvMessageType,
  SintRegister,
} from '../tlfs/synic.js';
import { traceHex } from './trace.js';
import type { Vp } from './vp.js';

/** A message waiting for its slot. */
export interface SynicMessage {
  readonly type: number;
  /** Up to 240 bytes; the slot's payload is zero-padded after it. */
  readonly payload: Uint8Array;
  /** Header `sender` (the port id for port messages; 0 for hypervisor messages). */
  readonly sender?: bigint;
  /** Fills in delivery-time fields (the timer message's delivery_time) in the slot's payload, before the type is written. */
  readonly beforeWrite?: (payload: Uint8Array) => void;
  /** Called once the message is in the slot. */
  readonly onDelivered?: () => void;
  /** Hypervisor-generated: not counted against the queue's buffer limit. */
  readonly internal?: boolean;
}

/** Result of a register write: undefined, or the reason it faults (#GP). */
export type WriteFault = string | undefined;

const OFF_TYPE = HvMessageHeader.offsets.message_type;
const OFF_SIZE = HvMessageHeader.offsets.payload_size;
const OFF_FLAGS = HvMessageHeader.offsets.message_flags;
const OFF_RESERVED = HvMessageHeader.offsets.reserved;
const OFF_SENDER = HvMessageHeader.offsets.sender;
const OFF_PAYLOAD = HvMessage.offsets.payload;
const MSG_PENDING = 1;

const SINT_VECTOR = SintRegister.byName.vector.mask;
const SINT_MASKED = SintRegister.byName.masked.mask;
const SINT_AUTO_EOI = SintRegister.byName.auto_eoi.mask;
const SINT_POLLING = SintRegister.byName.polling.mask;

export class Synic {
  scontrol = 0n;
  simp = 0n;
  siefp = 0n;
  readonly sints: bigint[] = new Array<bigint>(HV_SYNIC_SINT_COUNT).fill(HV_SYNIC_SINT_RESET);
  readonly simpPage: OverlayPage;
  readonly siefpPage: OverlayPage;
  private readonly queues: SynicMessage[][] = Array.from({ length: HV_SYNIC_SINT_COUNT }, () => []);
  /** SINT assertions per SINT since reset, for inspection. */
  readonly assertions = new Uint32Array(HV_SYNIC_SINT_COUNT);

  constructor(private readonly vp: Vp) {
    this.simpPage = new OverlayPage(`SIMP vp${vp.index}`);
    this.siefpPage = new OverlayPage(`SIEFP vp${vp.index}`);
  }

  get enabled(): boolean {
    return (this.scontrol & 1n) !== 0n;
  }
  get simpEnabled(): boolean {
    return (this.simp & 1n) !== 0n;
  }
  get siefpEnabled(): boolean {
    return (this.siefp & 1n) !== 0n;
  }
  masked(sint: number): boolean {
    return (this.sints[sint]! & SINT_MASKED) !== 0n;
  }
  vector(sint: number): number {
    return Number(this.sints[sint]! & SINT_VECTOR);
  }
  queueDepth(sint: number): number {
    return this.queues[sint]!.length;
  }

  writeScontrol(v: bigint): WriteFault {
    if (v & ~1n) return 'SCONTROL reserved bits';
    this.scontrol = v;
    this.retryAll();
    return undefined;
  }

  writeSimp(v: bigint): WriteFault {
    const f = this.placePage(this.simpPage, this.simp, v);
    if (f) return f;
    this.simp = v;
    this.retryAll();
    return undefined;
  }

  writeSiefp(v: bigint): WriteFault {
    const f = this.placePage(this.siefpPage, this.siefp, v);
    if (f) return f;
    this.siefp = v;
    return undefined;
  }

  /** Maps, moves or unmaps an overlay page for an MSR image (bit 0 enable, [63:12] GPN). */
  private placePage(page: OverlayPage, old: bigint, v: bigint): WriteFault {
    const mem = this.vp.partition.memory;
    if (v & 1n) {
      const gpa = gpnFieldToGpa(v);
      if (!mem.contains(gpa, 4096)) return `page GPA 0x${gpa.toString(16)} outside RAM`;
      mem.overlays.map(page, gpa / 4096);
      // The page reads as zero when first enabled: every slot HVMSG_NONE, no flags (§2.4).
      if (!(old & 1n)) page.clear();
    } else {
      mem.overlays.unmap(page);
    }
    return undefined;
  }

  writeSint(sint: number, v: bigint): WriteFault {
    let allowed = SINT_VECTOR | SINT_MASKED | SINT_AUTO_EOI;
    if (this.vp.partition.features.misc & MiscX64.SINT_POLLING_MODE) allowed |= SINT_POLLING;
    if (v & ~allowed) return `SINT${sint} reserved bits`;
    // KVM synic_set_sint: an unmasked SINT needs a vector of at least 16.
    if (!(v & SINT_MASKED) && Number(v & SINT_VECTOR) < HV_SYNIC_FIRST_VALID_VECTOR) return `SINT${sint} vector below 16`;
    this.sints[sint] = v;
    this.tryDeliver(sint);
    return undefined;
  }

  /** Any write to EOM: re-run delivery for every SINT of this VP (§5.4). */
  eom(): void {
    this.retryAll();
  }

  /** Messages can be written to `sint`'s slot now. */
  deliverable(sint: number): boolean {
    return this.enabled && this.simpEnabled && !this.masked(sint);
  }

  /**
   * Queues a posted message (HvCallPostMessage, or the host's port). Statuses as tlfs.md §5.8:
   * INVALID_SYNIC_STATE if the SynIC, the SIMP or the SINT is off; INSUFFICIENT_BUFFERS if the
   * SINT's queue is full.
   */
  post(sint: number, msg: SynicMessage): number {
    if (!this.deliverable(sint)) return HvStatus.INVALID_SYNIC_STATE;
    const q = this.queues[sint]!;
    let external = 0;
    for (const m of q) if (!m.internal) external++;
    if (external >= this.vp.partition.config.messageQueueDepth) return HvStatus.INSUFFICIENT_BUFFERS;
    this.enqueue(sint, msg);
    return HvStatus.SUCCESS;
  }

  /** Queues a hypervisor message (timers): it waits, whatever the state, until deliverable. */
  enqueue(sint: number, msg: SynicMessage): void {
    const q = this.queues[sint]!;
    // An auto-EOI acceptance retries this queue (onEoi): one the guest already took must not see it.
    this.vp.apic.beforeChange?.();
    q.push(msg);
    if (this.vp.partition.events.active) this.vp.partition.events.emit({ kind: 'message-queued', vp: this.vp.index, sint, type: msg.type >>> 0, depth: q.length });
    this.tryDeliver(sint);
  }

  /** Whether some SINT that uses `vector` has messages waiting: an EOI of it would deliver one. */
  queuedFor(vector: number): boolean {
    for (let s = 0; s < HV_SYNIC_SINT_COUNT; s++) if (this.queues[s]!.length > 0 && Number(this.sints[s]! & SINT_VECTOR) === vector) return true;
    return false;
  }

  /** Takes a message that has not reached its slot yet out of `sint`'s queue. */
  dequeue(sint: number, msg: SynicMessage): void {
    const q = this.queues[sint];
    const i = q ? q.indexOf(msg) : -1;
    if (i >= 0) q!.splice(i, 1);
  }

  /**
   * Whether `vector` is retired at acceptance: some unmasked SINT of this VP with auto-EOI uses
   * it (KVM synic_update_vector / kvm_hv_synic_auto_eoi_set decide it the same way).
   */
  autoEoi(vector: number): boolean {
    for (const v of this.sints) if ((v & (SINT_MASKED | SINT_AUTO_EOI)) === SINT_AUTO_EOI && Number(v & SINT_VECTOR) === vector) return true;
    return false;
  }

  /** One delivery attempt for `sint` (§5.4): write the head of its queue if the slot is free. */
  tryDeliver(sint: number): void {
    const q = this.queues[sint]!;
    while (q.length > 0 && this.deliverable(sint)) {
      const page = this.simpPage;
      const bytes = page.bytes;
      const base = sint * HV_MESSAGE_SIZE;
      const typeWord = (base + OFF_TYPE) / 4;
      // TLFS order: set msg_pending before looking at message_type, so a guest that frees the
      // slot concurrently either sees the flag (and writes EOM) or gets the message.
      Atomics.or(bytes, base + OFF_FLAGS, MSG_PENDING);
      if (Atomics.load(page.u32, typeWord) !== HvMessageType.NONE) return; // busy: the guest will EOM
      const msg = q.shift()!;
      const size = Math.min(msg.payload.length, HV_MESSAGE_PAYLOAD_BYTE_COUNT);
      bytes.set(msg.payload.subarray(0, size), base + OFF_PAYLOAD);
      bytes.fill(0, base + OFF_PAYLOAD + size, base + HV_MESSAGE_SIZE);
      msg.beforeWrite?.(bytes.subarray(base + OFF_PAYLOAD, base + HV_MESSAGE_SIZE));
      page.dv.setBigUint64(base + OFF_SENDER, msg.sender ?? 0n, true);
      page.dv.setUint16(base + OFF_RESERVED, 0, true);
      bytes[base + OFF_SIZE] = size;
      Atomics.store(bytes, base + OFF_FLAGS, 0);
      // message_type last, with release order: the guest sees a complete message or none.
      Atomics.store(page.u32, typeWord, msg.type >>> 0);
      const events = this.vp.partition.events;
      if (events.active) {
        // The payload as the guest finds it in the slot, delivery-time fields filled in.
        const payload = traceHex(bytes.subarray(base + OFF_PAYLOAD, base + OFF_PAYLOAD + size));
        events.emit({ kind: 'message', dir: 'to-guest', vp: this.vp.index, sint, type: msg.type >>> 0, payload });
      }
      msg.onDelivered?.();
      this.assertSint(sint);
      // Loop: with more queued, the next pass finds the slot busy and sets msg_pending.
    }
  }

  private retryAll(): void {
    for (let s = 0; s < HV_SYNIC_SINT_COUNT; s++) this.tryDeliver(s);
  }

  /**
   * Sets event flag `flag` of `sint` (HvCallSignalEvent on an event port, §5.6) and asserts the
   * SINT if the flag was clear.
   */
  signalFlag(sint: number, flag: number): number {
    if (!this.enabled || !this.siefpEnabled || this.masked(sint)) return HvStatus.INVALID_SYNIC_STATE;
    // 32-bit atomics, as the guest uses to clear the flags: JavaScript only orders atomic
    // accesses of the same size to the same bytes.
    const word = sint * 64 + (flag >>> 5);
    const bit = 1 << (flag & 31);
    const old = Atomics.or(this.siefpPage.u32, word, bit);
    const coalesced = (old & bit) !== 0;
    const events = this.vp.partition.events;
    if (events.active) events.emit({ kind: 'signal', dir: 'to-guest', vp: this.vp.index, sint, flag, coalesced });
    if (!coalesced) this.assertSint(sint);
    return HvStatus.SUCCESS;
  }

  /** Raises the SINT's interrupt on this VP, unless masked or in polling mode (§5.7). */
  assertSint(sint: number): void {
    const v = this.sints[sint]!;
    this.assertions[sint]!++;
    if (v & (SINT_MASKED | SINT_POLLING)) return;
    const vector = Number(v & SINT_VECTOR);
    if (this.vp.partition.events.active) this.vp.partition.events.emit({ kind: 'sint-asserted', vp: this.vp.index, sint, vector });
    this.vp.apic.raise(vector);
  }

  /** An EOI (explicit or auto) of a SINT's vector retries that SINT's queue (KVM kvm_hv_notify_acked_sint). */
  onEoi(vector: number): void {
    for (let s = 0; s < HV_SYNIC_SINT_COUNT; s++) {
      if (this.queues[s]!.length > 0 && !this.masked(s) && this.vector(s) === vector) this.tryDeliver(s);
    }
  }

  reset(): void {
    const mem = this.vp.partition.memory;
    mem.overlays.unmap(this.simpPage);
    mem.overlays.unmap(this.siefpPage);
    this.simpPage.clear();
    this.siefpPage.clear();
    this.scontrol = 0n;
    this.simp = 0n;
    this.siefp = 0n;
    this.sints.fill(HV_SYNIC_SINT_RESET);
    for (const q of this.queues) q.length = 0;
    this.assertions.fill(0);
  }
}
