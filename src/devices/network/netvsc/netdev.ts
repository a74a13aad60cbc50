// The guest's network interface (struct net_device as netvsc fills it): its name, addresses,
// MTU and limits, whether it is up and has carrier, its counters, and the two directions: frames
// the stack hands it to transmit, frames it hands the stack (or a raw listener) on receipt.
import { macString, type Mac } from '../ether.js';

/** What the stack asks of a frame it transmits (skb->ip_summed, gso). */
export interface TxMeta {
  /** CHECKSUM_PARTIAL: the TCP/UDP checksum field holds the pseudo-header sum; the device completes it. */
  checksumPartial?: boolean;
  /** Where the transport header starts (skb_transport_offset). */
  transportOffset?: number;
  /** A TCP segment to cut into `gsoSize`-byte segments (skb_is_gso). */
  gsoSize?: number;
  /** The queue to send on (skb_get_queue_mapping); picked by flow hash when absent. */
  queue?: number;
  /** skb hash (skb_get_hash_raw), sent to the host as NBL_HASH_VALUE when there are several queues. */
  hash?: number;
  /** netdev_xmit_more: another frame follows at once, so the driver may hold this one to batch them. */
  more?: boolean;
}

/**
 * What the device learnt of a received frame (from the host's per-packet info). The driver
 * reuses one for every frame it hands up: valid during the call, copied by whoever keeps it.
 */
export interface RxMeta {
  /** The receive queue (the channel's sub-channel index). */
  readonly queue: number;
  /** CHECKSUM_UNNECESSARY: the host verified the TCP or UDP checksum. */
  readonly checksumVerified: boolean;
  /** The RSS hash the host computed, if it sent one. */
  readonly hash: number | undefined;
}

export type XmitResult = 'ok' | 'busy' | 'dropped';

/**
 * A receiver of the frame at bytes[at, at + length), valid during the call: where the host put
 * it, which the host could still change, so a receiver copies the frame before it reads it (the
 * stack's skb, a socket's copy). A frame nobody keeps costs no allocation.
 */
export type FrameListener = (bytes: Uint8Array, at: number, length: number, meta: RxMeta) => void;

/** The driver behind an interface (net_device_ops). */
export interface NetDeviceOps {
  open(dev: NetDevice): void;
  stop(dev: NetDevice): void;
  xmit(dev: NetDevice, frame: Uint8Array, meta: TxMeta): XmitResult;
  /** Throws a NetDeviceError when the MTU cannot be set. */
  changeMtu(dev: NetDevice, mtu: number): void;
}

export class NetDeviceError extends Error {
  override readonly name = 'NetDeviceError';
  constructor(
    readonly errno: 'EINVAL' | 'ENODEV' | 'EBUSY' | 'EIO' | 'ETIMEDOUT',
    message: string,
  ) {
    super(message);
  }
}

/** Hardware features the driver found (net->hw_features, the parts the stack uses). */
export interface NetFeatures {
  /** NETIF_F_IP_CSUM for UDP: the host completes UDP/IPv4 checksums (TRANSPORT_INFO_IPV4_UDP in tx_checksum_mask). */
  txCsumUdp4: boolean;
  txCsumTcp4: boolean;
  /** NETIF_F_TSO, and the largest segment it takes (netvsc_gso_max_size). */
  tso4: boolean;
  gsoMaxSize: number;
  rxCsum: boolean;
}

/** rtnl_link_stats64, the counters `ip -s link` shows. */
export interface NetStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  rxDropped: number;
  txDropped: number;
  multicast: number;
  broadcast: number;
}

export class NetDevice {
  /** dev_addr: the current address; permAddr: what the hardware reports. */
  addr: Mac;
  readonly permAddr: Mac;
  mtu = 1500;
  minMtu = 68;
  maxMtu = 1500;
  /** IFF_UP: opened. */
  up = false;
  /** netif_carrier_ok. */
  carrier = false;
  /** netif_device_present: false while the driver tears it down and sets it up again (MTU change). */
  present = true;
  /** Receive and transmit queues in use (real_num_rx_queues). */
  queues = 1;
  features: NetFeatures = { txCsumUdp4: false, txCsumTcp4: false, tso4: false, gsoMaxSize: 65536, rxCsum: true };
  readonly stats: NetStats = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, rxDropped: 0, txDropped: 0, multicast: 0, broadcast: 0 };
  /** The protocol stack's receive handler (netif_receive_skb). */
  rx: FrameListener | undefined;
  /** Raw listeners (AF_PACKET sockets): every received frame, before the stack. A new array on each change, so that receive() walks it without an iterator. */
  private taps: readonly FrameListener[] = [];
  /** Called when the driver has handed up what one poll found (napi_complete_done): batching readers deliver then. */
  readonly pollDone = new Set<() => void>();
  /** Carrier and presence changes, for the stack (gratuitous ARP) and "user space". */
  readonly watchers = new Set<(dev: NetDevice, event: 'carrier-on' | 'carrier-off' | 'notify-peers' | 'mtu') => void>();
  /** netif_tx_wake_queue: the driver freed transmit room (a completion came back); a sender waiting for room may go on. */
  readonly txWakers = new Set<(dev: NetDevice) => void>();

  constructor(
    /** "eth0". */
    readonly name: string,
    mac: Mac,
    /** The VMBus device it sits on (its instance GUID), as sysfs links it. */
    readonly busId: string,
    private readonly ops: NetDeviceOps,
  ) {
    this.permAddr = mac.slice();
    this.addr = mac.slice();
  }

  get macString(): string {
    return macString(this.addr);
  }

  /** dev_open (ip link set up). */
  open(): void {
    if (this.up) return;
    this.ops.open(this);
    this.up = true;
  }

  /** dev_close (ip link set down). */
  stop(): void {
    if (!this.up) return;
    this.ops.stop(this);
    this.up = false;
  }

  /** dev_set_mtu (ip link set mtu N): within [minMtu, maxMtu], then the driver's change. */
  setMtu(mtu: number): void {
    if (!Number.isInteger(mtu) || mtu < this.minMtu || mtu > this.maxMtu) throw new NetDeviceError('EINVAL', `MTU ${mtu} is not within [${this.minMtu}, ${this.maxMtu}]`);
    if (mtu === this.mtu) return;
    this.ops.changeMtu(this, mtu);
    for (const w of this.watchers) w(this, 'mtu');
  }

  /** dev_queue_xmit: the driver sends, or the frame is dropped (counted) while down or without carrier. */
  xmit(frame: Uint8Array, meta: TxMeta = {}): XmitResult {
    if (!this.up || !this.carrier || !this.present) {
      this.stats.txDropped++;
      return 'dropped';
    }
    return this.ops.xmit(this, frame, meta);
  }

  /** netif_carrier_on / _off. */
  setCarrier(on: boolean): void {
    if (this.carrier === on) return;
    this.carrier = on;
    for (const w of this.watchers) w(this, on ? 'carrier-on' : 'carrier-off');
  }

  /** __netdev_notify_peers: the stack sends gratuitous ARP. */
  notifyPeers(): void {
    for (const w of this.watchers) w(this, 'notify-peers');
  }

  /** Called by the driver when transmit resources come back. */
  txWake(): void {
    for (const w of this.txWakers) w(this);
  }

  /** A raw listener joins (packet_create); it hears every frame received from then on. */
  addTap(tap: FrameListener): void {
    if (!this.taps.includes(tap)) this.taps = [...this.taps, tap];
  }

  removeTap(tap: FrameListener): void {
    this.taps = this.taps.filter((t) => t !== tap);
  }

  /** netif_receive_skb of the frame at bytes[at, at + length) (the driver counted it): raw listeners, then the stack. */
  receive(bytes: Uint8Array, at: number, length: number, meta: RxMeta): void {
    const taps = this.taps;
    for (let i = 0; i < taps.length; i++) taps[i]!(bytes, at, length, meta);
    this.rx?.(bytes, at, length, meta);
  }

  /** The driver's poll is over (napi_complete_done). */
  receiveDone(): void {
    for (const f of this.pollDone) f();
  }
}
