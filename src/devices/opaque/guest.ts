// The guest half of the devices whose protocols hvkit does not speak yet: Linux's drivers for
// them, reduced to what they do on VMBus at probe. The list keeps every driver in Linux's
// registration order; registry.ts puts the real hv_netvsc, hyperv_keyboard and hid_hyperv in
// their places (the input drivers when the kernel has an input layer). Each opens its channel with the ring sizes
// its Linux driver uses, then reads and drops what arrives. A line at debug level says what is
// not modelled, so the log never pretends a NIC exists.
import type { GuestChannel } from '../../vmbus/client/channel.js';
import type { VmbusDriver } from '../../vmbus/client/client.js';
import { vmbusRingSize } from '../../vmbus/client/ring-size.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { GuestModule, GuestServices } from '../device.js';


interface OpaqueDriverSpec {
  /** KBUILD_MODNAME: the driver name hv_vmbus prints when it registers. */
  readonly name: string;
  readonly classIds: readonly string[];
  /** Bytes each direction, given the guest page size. */
  ringBytes(pageSize: number): number;
  /** What the real driver would go on to do. */
  readonly protocol: string;
}

// Ring sizes per driver, Linux 6.1: netvsc_drv.c
// (ring_size 128 pages of 4 KiB), hyperv-keyboard.c and hid-hyperv.c (VMBUS_RING_SIZE(36 KiB)),
// hv_balloon.c (VMBUS_RING_SIZE(16 KiB), vmbus.md §6.6). hyperv_fb is src/devices/video. The
// hv_netvsc and hv_balloon entries keep their drivers' places in the registration order; the
// registry puts the real drivers there (registry.ts builtinModules).
export const OPAQUE_DRIVERS: readonly OpaqueDriverSpec[] = [
  { name: 'hv_netvsc', classIds: [DeviceClass.NIC], ringBytes: (p) => vmbusRingSize(128 * 4096, p), protocol: 'the network protocol (NVSP/RNDIS)' },
  { name: 'hyperv_keyboard', classIds: [DeviceClass.KBD], ringBytes: (p) => vmbusRingSize(36 * 1024, p), protocol: 'the synthetic keyboard protocol' },
  { name: 'hid_hyperv', classIds: [DeviceClass.MOUSE], ringBytes: (p) => vmbusRingSize(36 * 1024, p), protocol: 'the synthetic HID protocol' },
  { name: 'hv_balloon', classIds: [DeviceClass.DM], ringBytes: (p) => vmbusRingSize(16 * 1024, p), protocol: 'the dynamic memory protocol' },
];

export class OpaqueDriver implements VmbusDriver {
  readonly channels: GuestChannel[] = [];
  /** Packets the host sent that were read and dropped. */
  dropped = 0;

  constructor(
    readonly spec: OpaqueDriverSpec,
    private readonly services: GuestServices,
    private readonly pageSize: number,
  ) {}

  get name(): string {
    return this.spec.name;
  }

  get classIds(): readonly string[] {
    return this.spec.classIds;
  }

  probe(ch: GuestChannel): void {
    const bytes = this.spec.ringBytes(this.pageSize);
    ch.open({ sendRingBytes: bytes, recvRingBytes: bytes, onEvent: (c) => void (this.dropped += c.receive(() => {})) });
    this.channels.push(ch);
    this.services.note(`${this.spec.name} ${ch.deviceName}: channel ${ch.relid} open on CPU${ch.targetCpu}, rings 2 x ${bytes / 1024} KiB; ${this.spec.protocol} is not modelled`);
  }

  remove(ch: GuestChannel): void {
    ch.close();
    this.channels.splice(this.channels.indexOf(ch), 1);
  }
}

/** One Linux module per opaque driver; module_init registers its VMBus driver. */
export function opaqueModules(pageSize: number): GuestModule[] {
  return OPAQUE_DRIVERS.map((spec) => ({
    name: spec.name,
    init: (services, register) => register(new OpaqueDriver(spec, services, pageSize)),
  }));
}
