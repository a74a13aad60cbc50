// Runs a VmbusServer over a partition's SynIC (vmbus.md §1, §4): the host's message ports, its
// event ports (one per open channel), message posts and event flags into the guest's SINT2,
// and the monitor-page scan the hypervisor performs for MNF channels.
import type { Partition } from '../../hypervisor/partition.js';
import { HvStatus } from '../../tlfs/status.js';
import { VMBUS_MESSAGE_CONNECTION_ID, VMBUS_MESSAGE_CONNECTION_ID_4, VMBUS_MESSAGE_PORT_ID, VMBUS_MESSAGE_SINT, VMBUS_MESSAGE_TYPE, VmbusVersion } from '../wire/constants.js';
import { MONITOR_GROUPS, MonitorPage, MonitorTriggerGroup, MONITORS_PER_GROUP } from '../wire/packets.js';
import { hostWords } from './gpa-map.js';
import { VmbusServer, type ServerIo, type ServerOptions } from './server.js';

/** The host port behind connection 4 (OpenVMM's "multiclient" port for ≥ 5.0 contacts). */
const MULTICLIENT_PORT_ID = 4;

/** Virtual time from a guest's signal to the device's handler running. */
export const DEVICE_LATENCY_NS = 1000;

/** How often the hypervisor looks at the monitor page ("currently around 100 usecs", hyperv_vmbus.h). */
export const MONITOR_SCAN_NS = 100_000;

export interface PartitionVmbus {
  readonly server: VmbusServer;
  /** Removes the server's ports and stops its monitor scan. */
  dispose(): void;
}

/**
 * Attaches a VMBus server to `p`: connection 1 always, connection 4 when the host speaks 5.0 or
 * later (an older host answers INVALID_CONNECTION_ID there, which is how Linux finds out).
 */
export function attachVmbusServer(p: Partition, options: ServerOptions): PartitionVmbus {
  const eventPorts = new Set<number>();
  let scan: { cancel(): void } | undefined;
  /** The queues (VP, SINT) holding the host's messages, for the back-pressure count. */
  const targets = new Map<string, { vp: number; sint: number }>();

  const io: ServerIo = {
    memory: p.memory,
    vpCount: p.vps.length,
    events: p.events,
    post(vp, sint, message) {
      const synic = p.vps[vp]?.synic;
      if (!synic) return;
      // The host's own messages are queued whatever the SINT's state, like the hypervisor's; how
      // many wait is bounded by the server, which takes no guest message while too many do.
      targets.set(`${vp}:${sint}`, { vp, sint });
      synic.enqueue(sint, { type: VMBUS_MESSAGE_TYPE, payload: message, sender: BigInt(VMBUS_MESSAGE_PORT_ID), internal: true });
    },
    backlog() {
      let n = 0;
      for (const [k, t] of targets) {
        const depth = p.vps[t.vp]!.synic.queueDepth(t.sint);
        if (depth === 0) targets.delete(k);
        n += depth;
      }
      return n;
    },
    fault: (where, error) => p.hostFault(where, error),
    listen(connectionId, onSignal) {
      // Event ports take the connection id as their port id: channel connection ids are
      // relid + (2 << 12), clear of the message ports 1 and 4.
      if (eventPorts.has(connectionId)) {
        p.disconnectPort(connectionId);
        p.deletePort(connectionId);
        eventPorts.delete(connectionId);
      }
      if (!onSignal) return;
      p.createPort(connectionId, { type: 'host-event', flagCount: 1, handler: p.guard(`VMBus event port ${connectionId}`, () => onSignal()) });
      p.connectPort(connectionId, connectionId);
      eventPorts.add(connectionId);
    },
    signalGuest(vp, flag) {
      // A SynIC the guest has switched off loses the signal, as on Hyper-V.
      p.vps[vp]?.synic.signalFlag(VMBUS_MESSAGE_SINT, flag);
    },
    watchMonitor(gpa, onTrigger) {
      scan?.cancel();
      scan = undefined;
      if (gpa === undefined) return;
      const tick = p.guard('VMBus monitor scan', () => {
        scan = p.clock.schedule(p.clock.nowNs + MONITOR_SCAN_NS, tick);
        scanMonitorPage(p, gpa, onTrigger);
      });
      scan = p.clock.schedule(p.clock.nowNs + MONITOR_SCAN_NS, tick);
    },
    defer(f) {
      // The device's work takes a little virtual time, so that a guest and a device streaming
      // to each other let the clock move (and the rest of the VM run) in deterministic mode.
      p.clock.schedule(p.clock.nowNs + DEVICE_LATENCY_NS, p.guard('VMBus device work', f));
    },
  };

  const server = new VmbusServer(io, options);
  const handler = (m: { type: number; payload: Uint8Array; vp: number }) => {
    if (m.type !== VMBUS_MESSAGE_TYPE) return HvStatus.SUCCESS; // not a VMBus message: dropped
    try {
      return server.handleMessage(m.payload, m.vp);
    } catch (e) {
      // The message was in the host's port: HvCallPostMessage succeeded (tlfs.md §4.12.1, SUCCESS
      // is "queued"); what the host then failed to do is its own fault, recorded.
      p.hostFault('VMBus message port', e);
      return HvStatus.SUCCESS;
    }
  };
  p.createPort(VMBUS_MESSAGE_PORT_ID, { type: 'host-message', handler });
  p.connectPort(VMBUS_MESSAGE_CONNECTION_ID, VMBUS_MESSAGE_PORT_ID);
  if (options.maxVersion >= VmbusVersion.WIN10_V5) {
    p.createPort(MULTICLIENT_PORT_ID, { type: 'host-message', handler });
    p.connectPort(VMBUS_MESSAGE_CONNECTION_ID_4, MULTICLIENT_PORT_ID);
  }

  return {
    server,
    dispose() {
      scan?.cancel();
      for (const id of eventPorts) {
        p.disconnectPort(id);
        p.deletePort(id);
      }
      eventPorts.clear();
      p.disconnectPort(VMBUS_MESSAGE_CONNECTION_ID);
      p.deletePort(VMBUS_MESSAGE_PORT_ID);
      p.disconnectPort(VMBUS_MESSAGE_CONNECTION_ID_4);
      p.deletePort(MULTICLIENT_PORT_ID);
    },
  };
}

/** Takes every pending bit of the page's trigger groups (atomically) and reports its monitor id. */
export function scanMonitorPage(p: Partition, gpa: number, onTrigger: (monitorId: number) => void): void {
  if (!p.memory.contains(gpa, MonitorPage.size) || gpa % 4096 !== 0) return;
  // Through the GPA map: an overlay the guest put there is not the monitor page (gpa-map.ts).
  const words = hostWords(p.memory, gpa).subarray(MonitorPage.offsets.trigger_group / 4, (MonitorPage.offsets.trigger_group + MONITOR_GROUPS * MonitorTriggerGroup.size) / 4);
  const stride = MonitorTriggerGroup.size / 4;
  for (let g = 0; g < MONITOR_GROUPS; g++) {
    let pending = Atomics.exchange(words, g * stride + MonitorTriggerGroup.offsets.pending / 4, 0);
    while (pending !== 0) {
      const bit = 31 - Math.clz32(pending);
      pending &= ~(1 << bit);
      onTrigger(g * MONITORS_PER_GROUP + bit);
    }
  }
}
