// `--script` with the real Linux guest: the model's script runner (script.ts) runs the steps whose
// devices Linux's own drivers serve here — wait, heartbeat, shutdown, kvp (with hv_kvp_daemon on
// Linux's /dev/vmbus/hv_kvp) and timesync — against a LinuxMachine seen through the few members
// those steps read (the host, the guest's run state and clock, waiting on virtual time). Any
// other step is refused before the run, naming the step.
import type { Machine } from './machine.js';
import type { LinuxMachine } from './linux-machine.js';
import type { Step } from './script.js';

/** The script steps the Linux guest runs. */
export const LINUX_SCRIPT_STEPS = ['wait', 'heartbeat', 'shutdown', 'kvp', 'timesync'] as const satisfies readonly Step['op'][];

/** The first step the Linux guest cannot run, or undefined. */
export function unsupportedLinuxStep(steps: readonly Step[]): Step | undefined {
  return steps.find((s) => !(LINUX_SCRIPT_STEPS as readonly string[]).includes(s.op));
}

/**
 * The Linux machine as the IC steps of script.ts see a Machine: `host`, `kernel.stage` (booted
 * until Linux asks to power off or reboot, then halted), `kernel.haltedBy`, the guest's
 * realtime clock, and waitUntilAsync. Only steps of LINUX_SCRIPT_STEPS may be run with it: they
 * read nothing else (unsupportedLinuxStep refuses the others first).
 */
export function linuxScriptMachine(m: LinuxMachine): Machine {
  const view = {
    host: m.host,
    kernel: {
      get stage(): 'booted' | 'halted' {
        return m.haltedBy ? 'halted' : 'booted';
      },
      get haltedBy(): 'poweroff' | 'reboot' | undefined {
        return m.haltedBy;
      },
      services: { realtimeNs: (): bigint => m.guest.realtimeNs(m.host.wallClockStartNs) },
    },
    waitUntilAsync: (done: () => boolean, ns: number, opts: { signal?: AbortSignal } = {}) => m.waitUntilAsync(done, ns, opts),
  };
  return view as unknown as Machine;
}
