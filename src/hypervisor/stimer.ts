// Synthetic timers 0-3 of a VP (tlfs.md §6.3, §6.4): one-shot and periodic, in message mode
// (HVMSG_TIMER_EXPIRED to SINT `sintx` of the same VP) or direct mode (an APIC vector). Where
// the TLFS is silent the behaviour follows KVM arch/x86/kvm/hyperv.c (stimer_set_config,
// stimer_set_count, stimer_start): noted inline.
import { MiscX64 } from '../tlfs/cpuid.js';
import { HvMessageType } from '../tlfs/synic.js';
import { StimerConfig, TimerMessagePayload } from '../tlfs/time.js';
import type { ClockEvent } from './clock.js';
import type { SynicMessage, WriteFault } from './synic.js';
import type { Vp } from './vp.js';

const C = StimerConfig.byName;
const ENABLE = C.enable.mask;
const PERIODIC = C.periodic.mask;
const AUTO_ENABLE = C.auto_enable.mask;
const DIRECT = C.direct_mode.mask;
const RESERVED = C.reserved_z0.mask | C.reserved_z1.mask;
/** On arm64 the top 3 bits of apic_vector are reserved (OpenVMM hvdef). */
const ARM64_RESERVED_VECTOR_BITS = 0xe0n << BigInt(C.apic_vector.shift);

export class SyntheticTimer {
  config = 0n;
  count = 0n;
  /** Reference time of the armed expiry, if armed. */
  deadline: bigint | undefined;
  /** Expirations since reset, for inspection. */
  expirations = 0;
  private event: ClockEvent | undefined;
  /** A message of this timer is queued but not yet in its slot: at most one is outstanding. */
  private messageOutstanding = false;
  /** A periodic tick found the previous message undelivered: re-arm once it lands. */
  private stalled = false;
  /** A one-shot expired while the previous message waited: send it once that one lands. */
  private lateExpiration: bigint | undefined;
  /** This timer's message while it waits in the SynIC queue, and the SINT it waits on. */
  private queued: { msg: SynicMessage; sint: number } | undefined;

  constructor(
    private readonly vp: Vp,
    readonly index: number,
  ) {}

  get enabled(): boolean {
    return (this.config & ENABLE) !== 0n;
  }
  get periodic(): boolean {
    return (this.config & PERIODIC) !== 0n;
  }
  get direct(): boolean {
    return (this.config & DIRECT) !== 0n;
  }
  get sintx(): number {
    return StimerConfig.get(this.config, 'sintx');
  }

  writeConfig(v: bigint): WriteFault {
    let reserved = RESERVED;
    if (this.vp.partition.arch === 'arm64') reserved |= ARM64_RESERVED_VECTOR_BITS;
    if (v & reserved) return `STIMER${this.index}_CONFIG reserved bits`;
    if (v & DIRECT && !(this.vp.partition.features.misc & MiscX64.STIMER_DIRECT_MODE)) return 'direct mode not offered';
    this.cancel();
    // KVM: a message-mode timer that was enabled is disabled by a config naming SINT 0.
    if (this.enabled && !(v & DIRECT) && StimerConfig.get(v, 'sintx') === 0) v &= ~ENABLE;
    this.config = v;
    if (this.enabled) this.arm(undefined);
    return undefined;
  }

  writeCount(v: bigint): void {
    this.count = v;
    this.cancel();
    if (v === 0n) this.config &= ~ENABLE;
    else if (this.config & AUTO_ENABLE) this.config |= ENABLE;
    if (this.enabled) this.arm(undefined);
  }

  /** Stops the timer; a message of it still waiting for its slot is dropped (KVM stimer_cleanup). */
  private cancel(): void {
    this.event?.cancel();
    this.event = undefined;
    this.deadline = undefined;
    this.stalled = false;
    this.lateExpiration = undefined;
    if (this.queued) {
      this.vp.synic.dequeue(this.queued.sint, this.queued.msg);
      this.queued = undefined;
      this.messageOutstanding = false;
    }
  }

  /** Arms the timer: a one-shot at COUNT (absolute), a periodic at the next period boundary. */
  private arm(previous: bigint | undefined): void {
    const ref = this.vp.partition.referenceTime;
    const now = ref.now();
    // COUNT = 0: enabled but inert; neither a one-shot at time 0 nor a period of 0 ever fires
    // (KVM kvm_hv_process_stimers cleans such a timer up).
    if (this.count === 0n) return;
    let deadline: bigint;
    if (this.periodic) {
      if (previous === undefined) deadline = now + this.count;
      else {
        deadline = previous + this.count;
        // Late: skip to the next point on the original grid (KVM stimer_start).
        if (deadline <= now) deadline = now + (this.count - ((now - previous) % this.count));
      }
    } else {
      deadline = this.count;
    }
    this.deadline = deadline;
    const at = ref.nsForTicks(deadline);
    if (at === Infinity) return;
    if (deadline <= now) {
      // TLFS v4 15.3.1 (cited by KVM): a one-shot armed in the past expires at once.
      this.expire();
      return;
    }
    this.event = this.vp.partition.clock.schedule(at, () => {
      this.event = undefined;
      this.expire();
    });
  }

  private expire(): void {
    const expiration = this.deadline ?? this.vp.partition.referenceTime.now();
    this.expirations++;
    const events = this.vp.partition.events;
    if (events.active) events.emit({ kind: 'timer-expired', vp: this.vp.index, timer: this.index, direct: this.direct, expiration });
    const periodic = this.periodic;
    if (!periodic) this.deadline = undefined;
    if (this.direct) {
      // A one-shot disables itself once its expiry is delivered: here at once.
      if (!periodic) this.config &= ~ENABLE;
      this.vp.apic.raise(StimerConfig.get(this.config, 'apic_vector'));
    } else if (this.messageOutstanding) {
      // The previous expiry's message still waits for its slot. A periodic tick is lost (KVM
      // drops them while blocked) and the timer resumes once that message lands; a one-shot
      // expiry is kept and sent then.
      if (periodic) {
        this.stalled = true;
        return;
      }
      this.lateExpiration = expiration;
    } else {
      this.sendMessage(expiration);
    }
    if (periodic && this.enabled) this.arm(expiration);
  }

  private sendMessage(expiration: bigint): void {
    const payload = TimerMessagePayload.encode({ timer_index: this.index, reserved: 0, expiration_time: expiration, delivery_time: 0n });
    this.messageOutstanding = true;
    const ref = this.vp.partition.referenceTime;
    const msg: SynicMessage = {
      type: HvMessageType.TIMER_EXPIRED,
      payload,
      internal: true,
      beforeWrite: (p) => new DataView(p.buffer, p.byteOffset).setBigUint64(TimerMessagePayload.offsets.delivery_time, ref.now(), true),
      onDelivered: () => {
        this.queued = undefined;
        this.messageOutstanding = false;
        // A one-shot disables itself once its expiry message is delivered (KVM).
        if (!this.periodic && this.deadline === undefined && this.lateExpiration === undefined) this.config &= ~ENABLE;
        const late = this.lateExpiration;
        if (late !== undefined) {
          this.lateExpiration = undefined;
          this.sendMessage(late);
        } else if (this.stalled && this.enabled && this.periodic) {
          this.stalled = false;
          this.arm(this.deadline);
        }
      },
    };
    this.queued = { msg, sint: this.sintx };
    this.vp.synic.enqueue(this.sintx, msg);
  }

  reset(): void {
    this.cancel();
    this.config = 0n;
    this.count = 0n;
    this.expirations = 0;
  }
}
