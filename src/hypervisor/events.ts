// Typed events for every crossing of the hypervisor boundary (DESIGN.md principle 6). The
// `trace` layer records and exports them; the hypervisor only emits.

export type HvEvent =
  | { kind: 'cpuid'; vp: number; leaf: number; subleaf: number; eax: number; ebx: number; ecx: number; edx: number }
  | { kind: 'msr-read'; vp: number; msr: number; value?: bigint; fault?: string }
  | { kind: 'msr-write'; vp: number; msr: number; value: bigint; fault?: string }
  | { kind: 'hypercall'; vp: number; code: number; fast: boolean; repCount: number; repStart: number; status: number; repsCompleted: number }
  | { kind: 'message-queued'; vp: number; sint: number; messageType: number; depth: number }
  | { kind: 'message-delivered'; vp: number; sint: number; messageType: number; size: number }
  | { kind: 'event-signaled'; vp: number; sint: number; flag: number; coalesced: boolean }
  | { kind: 'sint-asserted'; vp: number; sint: number; vector: number }
  | { kind: 'timer-expired'; vp: number; timer: number; direct: boolean; expiration: bigint }
  | { kind: 'ipi'; from: number; to: number; vector: number }
  | { kind: 'tlb-flush'; vp: number; targets: number[] | 'all'; addressSpace: bigint; flags: bigint; ranges: number }
  | { kind: 'host-message'; port: number; messageType: number; size: number; vp: number }
  | { kind: 'host-event'; port: number; flag: number; vp: number }
  | { kind: 'crash'; params: bigint[]; message?: string }
  | { kind: 'reset' }
  | { kind: 'guest-idle'; vp: number }
  | { kind: 'spin-wait'; vp: number; count: bigint }
  | { kind: 'visibility'; gpns: number; visibility: number }
  | { kind: 'interrupt-retarget'; deviceId: bigint; vector: number; targets: number[] | 'all' };

export type HvEventListener = (e: HvEvent & { ns: number }) => void;

export class EventBus {
  private readonly listeners = new Set<HvEventListener>();

  constructor(private readonly now: () => number) {}

  get active(): boolean {
    return this.listeners.size > 0;
  }

  on(l: HvEventListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  emit(e: HvEvent): void {
    if (this.listeners.size === 0) return;
    const stamped = { ...e, ns: this.now() };
    for (const l of this.listeners) l(stamped);
  }
}
