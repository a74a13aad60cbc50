// The guest's input core (Linux drivers/input/input.c, in part): drivers register input devices
// (input_register_device prints "input: NAME as PATH"), report events, and the core keeps each
// device's state (keys down, axis values) and passes the events of each SYN_REPORT packet on.
// Filtering follows input_handle_event: a key event that does not change the key's state, an
// axis event that repeats the axis' value, a zero relative move and a SYN_REPORT with nothing
// before it are dropped.
//
// Handlers (the tty's keyboard handler) read the events from a bounded queue in process context,
// as evdev clients read their bounded buffers: a host that floods the guest with input makes the
// queue drop events (counted, like evdev's SYN_DROPPED), never grow. Device state is updated
// before queuing, so it stays right when events are dropped.
import type { GuestServices } from '../../devices/device.js';
import { BoundedLog } from '../../tlfs/bounded-log.js';
import { ABS_X, ABS_Y, EV, EV_NAMES, SYN_REPORT } from '../../devices/input/codes.js';
import type { InputDeviceHandle, InputDeviceSpec, InputId } from '../../devices/input/layer.js';

/** Events the queue holds (evdev sizes a client's buffer from the device; hvkit fixes one). */
export const INPUT_QUEUE_LIMIT = 256;
/** Devices the core registers at most: nothing the host offers makes it grow further. */
export const INPUT_DEVICE_LIMIT = 32;
/** Events kept for inspection (state(), script steps). */
export const RECENT_EVENTS = 64;

export interface InputEvent {
  readonly type: number;
  readonly code: number;
  readonly value: number;
  /** sched_clock when reported, ns. */
  readonly timeNs: number;
}

export class InputDevice implements InputDeviceHandle {
  /** Keys and buttons down (the key bitmap). */
  readonly keysDown = new Set<number>();
  /** Absolute axes' values. */
  readonly absValues = new Map<number, number>();
  /** Events of the packet being built, passed on at SYN_REPORT. */
  private packet: InputEvent[] = [];
  registered = true;

  constructor(
    private readonly core: InputCore,
    readonly number: number,
    readonly spec: InputDeviceSpec,
  ) {
    for (const [code, r] of spec.abs ?? []) this.absValues.set(code, r.min);
  }

  get name(): string {
    return this.spec.name;
  }

  /** The device's sysfs path, as the registration line prints it. */
  get path(): string {
    return `${this.spec.parent}/input/input${this.number}`;
  }

  /** input_event. */
  event(type: number, code: number, value: number): void {
    if (!this.registered) return;
    const at = this.core.now();
    switch (type) {
      case EV.KEY: {
        const down = this.keysDown.has(code);
        // 0 release, 1 press, 2 autorepeat (only while down).
        if (value === 0 ? !down : value === 1 ? down : value !== 2 || !down) return;
        if (value === 0) this.keysDown.delete(code);
        else this.keysDown.add(code);
        break;
      }
      case EV.ABS: {
        const r = this.spec.abs?.get(code);
        if (!r || this.absValues.get(code) === value) return;
        this.absValues.set(code, value);
        break;
      }
      case EV.REL:
        if (value === 0) return;
        break;
      case EV.SYN:
        if (code !== SYN_REPORT) return;
        if (this.packet.length === 0) return;
        this.packet.push({ type, code, value, timeNs: at });
        this.core.pass(this, this.packet);
        this.packet = [];
        return;
      default:
        return;
    }
    // A packet is bounded too: a driver that never syncs cannot grow it.
    if (this.packet.length < INPUT_QUEUE_LIMIT) this.packet.push({ type, code, value, timeNs: at });
  }

  sync(): void {
    this.event(EV.SYN, SYN_REPORT, 0);
  }
}

export type InputHandler = (dev: InputDevice, ev: InputEvent) => void;

export class InputCore {
  readonly devices: InputDevice[] = [];
  private nextNumber = 0;
  private readonly queue: { dev: InputDevice; ev: InputEvent }[] = [];
  private drainScheduled = false;
  private readonly handlers: InputHandler[] = [];
  /** Events passed on, and events the full queue dropped. */
  passed = 0;
  dropped = 0;
  /** The latest events passed on (evtest's view), each with its device's name. */
  readonly recent = new BoundedLog<InputEvent & { readonly device: string }>(RECENT_EVENTS);
  /** The pointer position of the absolute pointing device that reported last (or was registered first). */
  private pointerDevice: InputDevice | undefined;

  constructor(private readonly services: GuestServices) {}

  now(): number {
    return this.services.uptimeNs();
  }

  /** input_register_device; undefined (and an error line) past INPUT_DEVICE_LIMIT. */
  register(spec: InputDeviceSpec): InputDevice | undefined {
    if (this.devices.length >= INPUT_DEVICE_LIMIT) {
      this.services.log('err', `input: too many input devices, ${spec.name} not registered`);
      return undefined;
    }
    const dev = new InputDevice(this, this.nextNumber++, spec);
    this.devices.push(dev);
    this.services.log('info', `input: ${spec.name} as ${dev.path}`);
    return dev;
  }

  unregister(dev: InputDevice): void {
    const i = this.devices.indexOf(dev);
    if (i < 0) return;
    // input_unregister_device releases the keys still down first.
    for (const k of [...dev.keysDown]) dev.event(EV.KEY, k, 0);
    dev.sync();
    dev.registered = false;
    this.devices.splice(i, 1);
  }

  /** A handler (the tty's keyboard handler, evdev): it sees every event passed on, in process context. */
  connect(handler: InputHandler): void {
    this.handlers.push(handler);
  }

  /** @internal A device's packet, ending with its SYN_REPORT. */
  pass(dev: InputDevice, packet: readonly InputEvent[]): void {
    for (const ev of packet) {
      if (ev.type === EV.ABS) this.pointerDevice = dev;
      if (this.queue.length >= INPUT_QUEUE_LIMIT) {
        this.dropped++;
        continue;
      }
      this.queue.push({ dev, ev });
      this.passed++;
      this.recent.push({ ...ev, device: dev.name });
    }
    if (!this.drainScheduled && this.queue.length) {
      this.drainScheduled = true;
      this.services.scheduleDelayedWork(0, () => this.drain());
    }
  }

  /** Where the guest's pointer is: the absolute X and Y of its pointing device (ABS values start at the range's minimum). */
  get pointer(): { x: number; y: number; device: string } | undefined {
    const dev = this.pointerDevice?.registered ? this.pointerDevice : this.devices.find((d) => d.absValues.has(ABS_X) && d.absValues.has(ABS_Y));
    if (!dev) return undefined;
    return { x: dev.absValues.get(ABS_X)!, y: dev.absValues.get(ABS_Y)!, device: dev.name };
  }

  /** Events waiting for the handlers. */
  get queued(): number {
    return this.queue.length;
  }

  private drain(): void {
    this.drainScheduled = false;
    const batch = this.queue.splice(0);
    for (const { dev, ev } of batch) for (const h of this.handlers) h(dev, ev);
  }

  state(): InputState {
    const pointerDev = this.devices.find((d) => d.spec.abs);
    return {
      devices: this.devices.map((d) => ({ name: d.name, path: d.path, phys: d.spec.phys, id: d.spec.id, keysDown: [...d.keysDown].sort((a, b) => a - b) })),
      pointer: this.pointer ?? null,
      buttons: pointerDev ? [...pointerDev.keysDown].sort((a, b) => a - b) : [],
      keysDown: this.devices.filter((d) => !d.spec.abs).flatMap((d) => [...d.keysDown]).sort((a, b) => a - b),
      passed: this.passed,
      queued: this.queue.length,
      dropped: this.dropped,
    };
  }
}

export interface InputState {
  devices: { name: string; path: string; phys: string; id: InputId; keysDown: number[] }[];
  pointer: { x: number; y: number; device: string } | null;
  /** Buttons down on the pointing device (BTN_* codes). */
  buttons: number[];
  /** Keys down on the keyboards (KEY_* codes). */
  keysDown: number[];
  passed: number;
  queued: number;
  dropped: number;
}

/** One event as evtest prints it (without the time). */
export const formatEvent = (ev: InputEvent): string => `type ${ev.type} (${EV_NAMES[ev.type] ?? '?'}), code ${ev.code}, value ${ev.value}`;
