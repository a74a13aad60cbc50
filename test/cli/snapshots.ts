// Hand-built VMBus snapshots for the lsvmbus and sysfs format tests.
import type { ChannelSnapshot } from '../../src/vmbus/client/snapshot.js';

/** An opened channel with no rings, monitor or counters unless `over` says otherwise. */
export function channelSnapshot(over: Partial<ChannelSnapshot> & { relid: number }): ChannelSnapshot {
  return {
    state: 'opened',
    subChannelIndex: 0,
    monitorId: undefined,
    targetCpu: 0,
    targetVp: over.targetCpu ?? 0,
    connectionId: 0,
    interrupts: 0,
    sigEvents: 0,
    rescinded: false,
    outbound: undefined,
    inbound: undefined,
    monitor: undefined,
    ...over,
  };
}
