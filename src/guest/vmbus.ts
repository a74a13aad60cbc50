// The kernel's side of the VMBus driver: hv_post_message and vmbus_set_event as hypercalls on
// the calling CPU (drivers/hv/hv.c, connection.c), pages from the kernel's allocator, and the
// kernel's log under Linux's "hv_vmbus: " prefix.
import { resultStatus } from '../tlfs/control.js';
import { HvCall } from '../tlfs/hypercall-codes.js';
import { HvInputPostMessage, HvInputSignalEvent } from '../tlfs/hypercall-inputs.js';
import { HvStatus } from '../tlfs/status.js';
import { HV_MESSAGE_PAYLOAD_BYTE_COUNT } from '../tlfs/synic.js';
import type { ClientTransport, LogLevel } from '../vmbus/client/transport.js';
import { VMBUS_MESSAGE_TYPE } from '../vmbus/wire/constants.js';
import type { Kernel } from './kernel.js';

export class KernelVmbusTransport implements ClientTransport {
  constructor(private readonly k: Kernel) {}

  get memory() {
    return this.k.platform.memory;
  }

  onlineCpus(): readonly number[] {
    return this.k.cpus.filter((c) => c.online).map((c) => c.index);
  }

  vpIndex(cpu: number): number {
    return this.k.cpus[cpu]?.vpIndex ?? 0;
  }

  /** hv_post_message: the input block in the CPU's hypercall input page, then HvCallPostMessage. */
  postMessage(connectionId: number, payload: Uint8Array, cpu: number): number {
    const c = this.k.cpus[cpu] ?? this.k.bsp;
    if (payload.length > HV_MESSAGE_PAYLOAD_BYTE_COUNT || c.inputPage === undefined) return HvStatus.INVALID_PARAMETER;
    const padded = new Uint8Array(HV_MESSAGE_PAYLOAD_BYTE_COUNT);
    padded.set(payload);
    const input = HvInputPostMessage.encode({ connectionid: { id: connectionId, reserved: 0 }, reserved: 0, message_type: VMBUS_MESSAGE_TYPE, payload_size: payload.length, payload: padded });
    this.k.platform.memory.write(c.inputPage, input);
    return resultStatus(c.ops.hypercall(BigInt(HvCall.POST_MESSAGE), c.inputPage, 0));
  }

  /** vmbus_set_event: a fast HvCallSignalEvent from the CPU the kernel is running on. */
  signalEvent(connectionId: number, flag: number): number {
    const c = this.k.cpus[this.k.currentCpu] ?? this.k.bsp;
    const input = HvInputSignalEvent.encode({ connection_id: connectionId, flag_number: flag });
    return resultStatus(c.ops.fastHypercall8(HvCall.SIGNAL_EVENT, input));
  }

  allocPages(bytes: number): number {
    return this.k.mm.allocContiguous(bytes);
  }

  freePages(gpa: number, bytes: number): void {
    this.k.mm.freeContiguous(gpa, bytes);
  }

  allocPageList(count: number, zeroed = true): number[] {
    return this.k.mm.allocPageList(count, zeroed);
  }

  allocHvPage(): number {
    return this.k.mm.allocHvPage();
  }

  freeHvPage(gpa: number): void {
    this.k.mm.freeHvPage(gpa);
  }

  allocateMmio(bytes: number, align: number): number | undefined {
    return this.k.mmio.allocate(bytes, align);
  }

  freeMmio(gpa: number): void {
    this.k.mmio.free(gpa);
  }

  waitUntil(done: () => boolean, ns: number): boolean {
    return this.k.platform.waitUntil(done, ns);
  }

  log(level: LogLevel, message: string): void {
    this.k.log.printk(level, `hv_vmbus: ${message}`);
  }
}
