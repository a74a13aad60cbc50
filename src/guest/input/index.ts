// The guest's input layer as one object shared by its drivers (hyperv_keyboard, hid_hyperv):
// the input core, the console keyboard handler and the tty it types into. It starts with the
// first input driver's module_init, which gives it the kernel's services and VMBus.
import type { GuestServices } from '../../devices/device.js';
import type { InputDeviceHandle, InputDeviceSpec, InputLayer } from '../../devices/input/layer.js';
import type { VmbusClient } from '../../vmbus/client/client.js';
import { Tty, type TtyState } from '../tty.js';
import { InputCore, InputDevice, type InputState } from './core.js';
import { ConsoleKeyboard } from './keymap.js';

export class GuestInput implements InputLayer {
  private started: { core: InputCore; tty: Tty; console: ConsoleKeyboard } | undefined;

  /** Sets the layer up once (later calls do nothing). */
  start(services: GuestServices, vmbus: VmbusClient): void {
    if (this.started) return;
    const core = new InputCore(services);
    const tty = new Tty({
      system: services.system,
      meminfo: () => services.meminfo?.(),
      vmbus: () => vmbus.snapshot(),
      poweroff: () => services.requestShutdown('poweroff'),
    });
    const console = new ConsoleKeyboard({ chars: (t) => tty.input(t), ctrlAltDel: () => services.requestShutdown('reboot') });
    // Only keyboards feed the console: a pointer's buttons are keys too, but not the console's.
    core.connect((dev, ev) => {
      if (!dev.spec.abs) console.event(dev, ev);
    });
    // The tty is tty1: what it writes shows on the VT, which the framebuffer console draws.
    if (services.writeConsole) tty.addSink((t) => services.writeConsole!(t));
    tty.start();
    this.started = { core, tty, console };
  }

  register(spec: InputDeviceSpec): InputDeviceHandle | undefined {
    return this.core.register(spec);
  }

  unregister(dev: InputDeviceHandle): void {
    if (dev instanceof InputDevice) this.core.unregister(dev);
  }

  get core(): InputCore {
    if (!this.started) throw new Error('the guest input layer has not started (no input driver loaded)');
    return this.started.core;
  }

  get tty(): Tty {
    if (!this.started) throw new Error('the guest input layer has not started (no input driver loaded)');
    return this.started.tty;
  }

  get console(): ConsoleKeyboard | undefined {
    return this.started?.console;
  }

  get isStarted(): boolean {
    return this.started !== undefined;
  }

  state(): { input: InputState; tty: TtyState } | undefined {
    return this.started && { input: this.started.core.state(), tty: this.started.tty.state() };
  }
}
