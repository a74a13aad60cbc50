// Linux's own view of its VMBus (the shim's hvkit_vmbus_snapshot, linux/shim/introspect.c: the
// connection and every channel on vmbus_connection.chn_list with its sub-channels) as the same
// VmbusSnapshot the model guest gives, so lsvmbus and --json state read the real guest's data.
// Rings, monitor pages and the like are not read: those fields stay undefined.
import type { ChannelSnapshot, DeviceSnapshot, VmbusSnapshot } from '../../vmbus/client/snapshot.js';
import type { GuestChannelState } from '../../vmbus/client/channel.js';

/** enum vmbus_connect_state (drivers/hv/hyperv_vmbus.h): DISCONNECTED, CONNECTING, CONNECTED, DISCONNECTING. */
const CONNECT_STATE: readonly VmbusSnapshot['state'][] = ['disconnected', 'connecting', 'connected', 'disconnected'];
/** enum vmbus_channel_state (include/linux/hyperv.h), CHANNEL_OFFER_STATE = 0 first. */
const CHANNEL_STATE: readonly GuestChannelState[] = ['offer', 'opening', 'open', 'opened'];

/** How many words each kind of line has (introspect.c). */
const FIELDS: Readonly<Record<string, number>> = { vmbus: 3, device: 7, channel: 11 };

/** A malformed snapshot line (the shim and this parser disagree). */
export class SnapshotFormatError extends Error {
  override readonly name = 'SnapshotFormatError';
}

const int = (s: string | undefined, what: string): number => {
  if (s === undefined || !/^-?\d+$/.test(s)) throw new SnapshotFormatError(`${what}: not a number: ${String(s)}`);
  return Number(s);
};

/** Parses the shim's text (see introspect.c for its lines). */
export function parseLinuxSnapshot(text: string): VmbusSnapshot {
  const snapshot: VmbusSnapshot = { state: 'disconnected', version: '', devices: [] };
  let device: DeviceSnapshot | undefined;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const fields = FIELDS[f[0] ?? ''];
    if (fields === undefined) throw new SnapshotFormatError(`unknown line: ${line}`);
    if (f.length !== fields) throw new SnapshotFormatError(`${f[0]}: ${f.length} fields, not ${fields}: ${line}`);
    switch (f[0]) {
      case 'vmbus': {
        snapshot.state = CONNECT_STATE[int(f[1], 'conn_state')] ?? 'disconnected';
        snapshot.version = snapshot.state === 'disconnected' ? '' : f[2]!;
        break;
      }
      case 'device':
        device = { id: int(f[1], 'relid'), classId: f[2]!, instanceId: f[3]!, deviceType: int(f[4], 'device_id'), vendorId: int(f[5], 'vendor_id'), driver: f[6] === '-' ? undefined : f[6], channels: [] };
        snapshot.devices.push(device);
        break;
      case 'channel': {
        if (!device) throw new SnapshotFormatError('a channel line before any device line');
        const monitorId = int(f[4], 'monitorid');
        const channel: ChannelSnapshot = {
          relid: int(f[1], 'relid'),
          state: CHANNEL_STATE[int(f[2], 'state')] ?? 'offer',
          subChannelIndex: int(f[3], 'sub_channel_index'),
          monitorId: monitorId < 0 ? undefined : monitorId,
          targetCpu: int(f[5], 'target_cpu'),
          targetVp: int(f[6], 'target_vp'),
          connectionId: int(f[7], 'connection_id'),
          interrupts: int(f[8], 'interrupts'),
          sigEvents: int(f[9], 'sig_events'),
          rescinded: f[10] === '1',
          outbound: undefined,
          inbound: undefined,
          monitor: undefined,
        };
        device.channels.push(channel);
        break;
      }
    }
  }
  return snapshot;
}
