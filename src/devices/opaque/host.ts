// The host half of a device whose own protocol hvkit does not speak (a device type a VM file may
// name with no model yet): its channel is offered, opened and closed like the real device's, so
// the guest's VMBus state (targets, rings, monitor ids, sysfs) is complete, and whatever the guest
// sends is read and counted.
import type { HostChannel } from '../../vmbus/server/channel.js';
import type { DeviceTypeName } from '../catalog.js';
import type { HostContext, HostDevice } from '../device.js';

export interface OpaqueHost extends HostDevice {
  readonly channel: HostChannel;
  /** Packets the guest sent that nobody interprets. */
  readonly packets: number;
}

export function attachOpaque(ctx: HostContext, type: DeviceTypeName, classId: string, instanceId: string, opts: { monitor: boolean }): OpaqueHost {
  let packets = 0;
  const channel = ctx.server.offer(
    { classId, instanceId, monitor: opts.monitor },
    {
      signal: (ch) => {
        packets += ch.receive(() => {});
      },
    },
  );
  return {
    type,
    instanceId,
    channel,
    get packets() {
      return packets;
    },
  };
}
