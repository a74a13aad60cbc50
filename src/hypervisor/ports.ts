// Ports and connections (tlfs.md §5.8). A port is a receive endpoint: a guest VP's SINT (message
// slot or event flags), or the host. A connection is the send endpoint the guest names in
// HvCallPostMessage / HvCallSignalEvent. Creating and connecting them is a host API here, with
// the CreatePort / ConnectPort semantics and statuses.
import { HV_EVENT_FLAGS_COUNT, HV_PORT_ID_MASK, HV_SYNIC_SINT_COUNT, HvPortType } from '../tlfs/synic.js';
import { HvStatus } from '../tlfs/status.js';

/** A message delivered to a host port. */
export interface HostMessage {
  readonly type: number;
  /** The hypervisor's copy of the message (the guest cannot change it), valid during the handler's call only: copy what is kept. */
  readonly payload: Uint8Array;
  /** VP index of the sender. */
  readonly vp: number;
}

export type PortSpec =
  /** Messages land in SINT `sint` of guest VP `vp`. */
  | { type: 'message'; vp: number; sint: number }
  /** Signals set flag base + n in SINT `sint`'s event area of guest VP `vp`. */
  | { type: 'event'; vp: number; sint: number; baseFlag: number; flagCount: number }
  /** Messages go to the host; its status (e.g. INSUFFICIENT_BUFFERS for back-pressure) is returned. */
  | { type: 'host-message'; handler: (m: HostMessage) => number }
  /** Signals go to the host, flag numbers below `flagCount`. */
  | { type: 'host-event'; flagCount: number; handler: (flag: number, vp: number) => void };

export interface Port {
  readonly id: number;
  readonly spec: PortSpec;
  /** HvPortType: MESSAGE for message and host-message ports, EVENT for event ports. */
  readonly portType: number;
}

export class PortTable {
  private readonly ports = new Map<number, Port>();
  /** Connection id → port id. A connection outlives its port (then it answers INVALID_PORT_ID). */
  private readonly connections = new Map<number, number>();
  /**
   * The last connection resolved, and what it resolved to: a guest signalling a channel names
   * the same connection again and again. Any change to the table forgets it.
   */
  private lastId = -1;
  private last: Port | number = HvStatus.INVALID_CONNECTION_ID;

  constructor(private readonly vpCount: number) {}

  createPort(id: number, spec: PortSpec): number {
    if (!Number.isInteger(id) || id < 0 || id > HV_PORT_ID_MASK) return HvStatus.INVALID_PARAMETER;
    if (this.ports.has(id)) return HvStatus.INVALID_PORT_ID;
    if (spec.type === 'message' || spec.type === 'event') {
      if (!Number.isInteger(spec.vp) || spec.vp < 0 || spec.vp >= this.vpCount) return HvStatus.INVALID_VP_INDEX;
      if (!Number.isInteger(spec.sint) || spec.sint < 0 || spec.sint >= HV_SYNIC_SINT_COUNT) return HvStatus.INVALID_PARAMETER;
    }
    if (spec.type === 'event' || spec.type === 'host-event') {
      const base = spec.type === 'event' ? spec.baseFlag : 0;
      if (!Number.isInteger(base) || !Number.isInteger(spec.flagCount) || base < 0 || spec.flagCount < 1 || base + spec.flagCount > HV_EVENT_FLAGS_COUNT) {
        return HvStatus.INVALID_PARAMETER;
      }
    }
    const portType = spec.type === 'event' || spec.type === 'host-event' ? HvPortType.EVENT : HvPortType.MESSAGE;
    this.ports.set(id, { id, spec, portType });
    this.lastId = -1;
    return HvStatus.SUCCESS;
  }

  deletePort(id: number): number {
    this.lastId = -1;
    return this.ports.delete(id) ? HvStatus.SUCCESS : HvStatus.INVALID_PORT_ID;
  }

  connectPort(connectionId: number, portId: number): number {
    if (!Number.isInteger(connectionId) || connectionId < 0 || connectionId > HV_PORT_ID_MASK) return HvStatus.INVALID_PARAMETER;
    if (this.connections.has(connectionId)) return HvStatus.INVALID_CONNECTION_ID;
    if (!this.ports.has(portId)) return HvStatus.INVALID_PORT_ID;
    this.connections.set(connectionId, portId);
    this.lastId = -1;
    return HvStatus.SUCCESS;
  }

  disconnectPort(connectionId: number): number {
    this.lastId = -1;
    return this.connections.delete(connectionId) ? HvStatus.SUCCESS : HvStatus.INVALID_CONNECTION_ID;
  }

  /** The port behind a connection, or the status that says why there is none. */
  resolve(connectionId: number, portType: number): Port | number {
    const found = connectionId === this.lastId ? this.last : this.lookup(connectionId);
    if (typeof found === 'number') return found;
    return found.portType === portType ? found : HvStatus.INVALID_PORT_ID;
  }

  /** The table's answer for a connection other than the last one, which it then remembers. */
  private lookup(connectionId: number): Port | number {
    const portId = this.connections.get(connectionId);
    const found = portId === undefined ? HvStatus.INVALID_CONNECTION_ID : (this.ports.get(portId) ?? HvStatus.INVALID_PORT_ID);
    this.lastId = connectionId;
    this.last = found;
    return found;
  }

  clear(): void {
    this.ports.clear();
    this.connections.clear();
    this.lastId = -1;
  }
}
