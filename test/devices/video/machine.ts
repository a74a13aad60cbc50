// A booted machine whose last drawing reached the host, and its video pieces, for the video tests.
import { HVFB_ONDEMAND_THROTTLE_NS, type HvfbDevice, type HypervFbModule } from '../../../src/devices/video/guest.js';
import type { SynthvidHost } from '../../../src/devices/video/host.js';
import type { ReleaseId } from '../../../src/hypervisor/release.js';
import { Machine, type MachineConfig } from '../../../src/vm/machine.js';

export function boot(release: ReleaseId, extra: MachineConfig = {}): { m: Machine; video: SynthvidHost } {
  const m = new Machine({ release, vps: 2, memory: 64 << 20, ...extra });
  m.boot();
  // Past the guest's update throttle, so its last drawing reached the host.
  m.runFor(3 * HVFB_ONDEMAND_THROTTLE_NS);
  const video = m.devices.find((d) => d.type === 'video') as SynthvidHost;
  return { m, video };
}


/** The guest's hyperv_fb device (fb0). */
export function guestFb(m: Machine): HvfbDevice {
  return (m.kernel.options.modules.find((x) => x.name === 'hyperv_fb') as HypervFbModule).driver!.devices[0]!;
}
