// What the guest's input drivers (hyperv_keyboard with atkbd, hid_hyperv with the HID core) need
// of the kernel's input layer: register a device, report events on it, unregister it. The layer
// itself (the input core, the console and the tty) is the guest kernel's (src/guest/input/); the
// drivers see only this interface, as Linux's drivers see only input.h.
import type { VmbusClient, VmbusDriver } from '../../vmbus/client/client.js';
import type { GuestModule, GuestServices } from '../device.js';

export interface InputId {
  readonly bustype: number;
  readonly vendor: number;
  readonly product: number;
  readonly version: number;
}

/** BUS_I8042 and BUS_VIRTUAL (include/uapi/linux/input.h). */
export const BUS_I8042 = 0x11;
export const BUS_VIRTUAL = 0x06;

/**
 * Where VMBus devices sit in sysfs on a Generation 2 VM (the VMBus ACPI device under the ACPI
 * system bus). UNVERIFIED: taken from what Linux guests on Hyper-V print, not from a source file.
 */
export const VMBUS_SYSFS = '/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0004:00/VMBUS:00';

export interface InputDeviceSpec {
  readonly name: string;
  /** The sysfs path of the parent device, without the input/inputN tail. */
  readonly parent: string;
  readonly phys: string;
  readonly id: InputId;
  /** Absolute axes with their ranges (input_set_abs_params). */
  readonly abs?: ReadonlyMap<number, { readonly min: number; readonly max: number }>;
}

/** A registered input device (struct input_dev as a driver uses it). */
export interface InputDeviceHandle {
  /** Keys and buttons down now (the key bitmap). */
  readonly keysDown: ReadonlySet<number>;
  /** input_event. */
  event(type: number, code: number, value: number): void;
  /** input_sync. */
  sync(): void;
}

export interface InputLayer {
  /** Sets the layer up with the kernel's services (the first input driver's module_init); later calls do nothing. */
  start(services: GuestServices, vmbus: VmbusClient): void;
  /** input_register_device; undefined when the layer refuses (too many devices). */
  register(spec: InputDeviceSpec): InputDeviceHandle | undefined;
  unregister(dev: InputDeviceHandle): void;
}

/** A VMBus input driver's module (hyperv_keyboard, hid_hyperv), with the driver once init made it. */
export interface InputDriverModule<D extends VmbusDriver> extends GuestModule {
  readonly driver: D | undefined;
  readonly input: InputLayer;
}

/** The module named `name`: its init starts the input layer `input`, then registers the driver `make` builds. */
export function inputDriverModule<D extends VmbusDriver>(name: string, input: InputLayer, make: (services: GuestServices, vmbus: VmbusClient) => D): InputDriverModule<D> {
  let driver: D | undefined;
  return {
    name,
    input,
    get driver() {
      return driver;
    },
    init(services, register, vmbus) {
      if (!vmbus) return;
      input.start(services, vmbus);
      driver = make(services, vmbus);
      register(driver);
    },
  };
}
