// The channel rows of a live VM: the host's channels (its server's table and counters), with
// what the guest's VMBus driver shows of them (in-thread read from the guest, posted by the worker in worker mode).
import type { VmbusServer } from '../../../src/vmbus/server/server.js';
import type { ChannelSnapshot, VmbusSnapshot } from '../../../src/vmbus/client/snapshot.js';
import { className } from '../model/classes.js';
import type { LiveChannel } from './session.js';

export function liveChannels(server: VmbusServer | undefined, guest: VmbusSnapshot | undefined): LiveChannel[] {
  if (!server) return [];
  const seen = new Map<number, ChannelSnapshot>();
  for (const d of guest?.devices ?? []) for (const c of d.channels) seen.set(c.relid, c);
  const rows: LiveChannel[] = [];
  for (const ch of server.channels.values()) {
    const g = seen.get(ch.relid);
    // The same control pages, read through the host's mapping where the guest's view has no rings (worker mode).
    const rings = g?.outbound ? undefined : ch.ringState();
    rows.push({
      relid: ch.relid,
      className: className(ch.offer.classId),
      instance: ch.offer.instanceId,
      subChannel: ch.offer.subChannelIndex,
      state: ch.state,
      guestState: g?.state,
      targetVp: ch.targetVp,
      targetCpu: g?.targetCpu,
      packetsIn: ch.packetsReceived,
      packetsOut: ch.packetsSent,
      signals: ch.signalsReceived + ch.signalsSent,
      interrupts: g?.interrupts,
      outbound: g?.outbound ?? rings?.incoming,
      inbound: g?.inbound ?? rings?.outgoing,
    });
  }
  return rows.sort((a, b) => a.relid - b.relid);
}
