// Opening a run's NICs from the command line's point of view: every back end before boot, an
// error naming the device (or --nic) and the reason, as a usage error (exit 2).
import type { VmConfig } from '../vm/config.js';
import { VirtualSwitch } from '../devices/network/switch.js';
import { NicOpenError, openNics, type OpenedNics } from '../vm/network/backends.js';
import { UsageError } from './errors.js';

/** Opens the NICs of a single-VM run: its switches are its own. */
export async function openRunNics(vm: VmConfig, now: () => number): Promise<OpenedNics> {
  const switches = new Map<string, VirtualSwitch>();
  try {
    return await openNics(vm.devices, {
      now,
      switchNamed: (name) => {
        let s = switches.get(name);
        if (!s) switches.set(name, (s = new VirtualSwitch(name, { now })));
        return s;
      },
    });
  } catch (e) {
    if (e instanceof NicOpenError) throw new UsageError(`${vm.devices[e.index]?.nic?.origin ?? `network device /devices/${e.index}`}: ${e.reason}`);
    throw e;
  }
}
