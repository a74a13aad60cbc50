// The hv_netvsc module in the guest and what sits on top of it: the driver binds every NIC offer
// and registers ethN; the kernel's IP autoconfiguration (net/ipv4/ipconfig.c, the `ip=` boot
// parameter) brings the first interface up with its address and prints "IP-Config: Complete:";
// further interfaces are configured the way systemd-networkd would; every configured interface
// runs the UDP echo service. User code reaches interfaces, their stacks, ping and raw frames here.
import type { VmbusClient, VmbusDriver } from '../../../vmbus/client/client.js';
import type { GuestChannel } from '../../../vmbus/client/channel.js';
import { VmbusError } from '../../../vmbus/client/errors.js';
import { DeviceClass } from '../../../vmbus/wire/guids.js';
import type { GuestModule, GuestServices } from '../../device.js';
import { ipString, parseCidr, parseIpv4, prefixMask } from '../ether.js';
import { Inet } from './inet.js';
import type { FrameListener, NetDevice, RxMeta, TxMeta, XmitResult } from './netdev.js';
import { DEFAULT_BATCH_BYTES, DEFAULT_BATCH_FRAMES, FrameBatch } from './frame-batch.js';
import { CopyArena } from '../copy-arena.js';
import { Netvsc } from './netvsc.js';
import { Ping, type PingOptions } from './ping.js';

/** The guest's network configuration: an address per interface, in ethN order. */
export interface GuestNetConfig {
  readonly interfaces?: readonly ({ readonly address: string; readonly gateway?: string } | undefined)[];
  /** Run the UDP echo service (port 7) on configured interfaces (default true). */
  readonly echo?: boolean;
}

/** A raw frame socket on an interface (AF_PACKET): send frames as they are, see every frame received. */
export interface RawSocket {
  send(frame: Uint8Array): XmitResult;
  /**
   * Sends frames back to back (netdev_xmit_more on all but the last, so netvsc may put several
   * in one send section); stops at the first that is not taken. Returns how many were.
   */
  sendBatch(frames: readonly Uint8Array[]): number;
  close(): void;
}

/** A raw socket whose reader takes received frames in batches (see rawBatch). */
export interface RawBatchSocket extends RawSocket {
  /** Frames too big for the batch's buffer, dropped (a packet socket's tp_drops). */
  readonly dropped: number;
}

export class NetvscGuest {
  readonly driver: VmbusDriver;
  readonly nics: Netvsc[] = [];
  private readonly inets = new Map<string, Inet>();
  private nextIndex = 0;

  constructor(
    private readonly services: GuestServices,
    private readonly client: VmbusClient,
    private readonly config: GuestNetConfig = {},
  ) {
    this.driver = {
      name: 'hv_netvsc',
      classIds: [DeviceClass.NIC],
      probe: (ch) => this.probe(ch),
      remove: (ch) => this.remove(ch),
    };
  }

  private probe(ch: GuestChannel): void {
    const nic = new Netvsc(ch, {
      services: this.services,
      transport: this.client.transport,
      allocName: () => `eth${this.nextIndex++}`,
      registered: (dev) => this.registered(dev, nic),
    });
    try {
      nic.probe();
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      nic.log('err', `unable to add netvsc device (ret ${e.errno})`);
      throw e;
    }
    this.nics.push(nic);
  }

  private remove(ch: GuestChannel): void {
    const i = this.nics.findIndex((n) => n.primary === ch);
    if (i < 0) return;
    const nic = this.nics[i]!;
    nic.netdev.stop();
    nic.removeDevice(true);
    this.inets.delete(nic.netdev.name);
    this.nics.splice(i, 1);
  }

  /** register_netdevice, then what user space (or ipconfig) does with the new interface. */
  private registered(dev: NetDevice, _nic: Netvsc): void {
    const inet = new Inet(dev, this.services);
    this.inets.set(dev.name, inet);
    dev.watchers.add((d, event) => {
      if (event === 'carrier-on') this.services.syslog('systemd-networkd', 'info', `${d.name}: Gained carrier`);
      if (event === 'carrier-off' && d.up) this.services.syslog('systemd-networkd', 'info', `${d.name}: Lost carrier`);
    });
    const index = Number(dev.name.slice(3));
    const want = this.config.interfaces?.[index];
    if (!want) return;
    // ip_auto_config is a late initcall: it runs once the drivers have registered.
    this.services.scheduleDelayedWork(0, () => this.configure(dev, inet, index, want));
  }

  private configure(dev: NetDevice, inet: Inet, index: number, want: { readonly address: string; readonly gateway?: string }): void {
    const cidr = parseCidr(want.address);
    const gw = want.gateway === undefined ? undefined : parseIpv4(want.gateway);
    if (!cidr) return this.services.log('err', `IP-Config: bad address ${want.address} for ${dev.name}`);
    try {
      dev.open();
    } catch (e) {
      return this.services.log('err', `IP-Config: Failed to open ${dev.name}: ${(e as Error).message}`);
    }
    if (index === 0) this.ipconfigLines(dev, cidr.address, cidr.prefix, gw);
    else this.services.syslog('systemd-networkd', 'info', `${dev.name}: Link UP`);
    inet.configure({ address: cidr.address, prefix: cidr.prefix, ...(gw === undefined ? {} : { gateway: gw }) });
    if (this.config.echo !== false) inet.startEcho();
  }

  /** ic_printk's summary, as ip=ADDR::GW:MASK:HOST:eth0:off produces it. */
  private ipconfigLines(dev: NetDevice, address: number, prefix: number, gateway: number | undefined): void {
    const log = (s: string) => this.services.log('info', s);
    log('IP-Config: Complete:');
    log(`     device=${dev.name}, hwaddr=${dev.macString}, ipaddr=${ipString(address)}, mask=${ipString(prefixMask(prefix))}, gw=${ipString(gateway ?? 0xffffffff)}`);
    log(`     host=${this.services.system.hostname}, domain=, nis-domain=(none)`);
    log('     bootserver=255.255.255.255, rootserver=255.255.255.255, rootpath=');
  }

  /** Interfaces in registration order. */
  get devices(): NetDevice[] {
    return this.nics.map((n) => n.netdev);
  }

  device(name = 'eth0'): NetDevice | undefined {
    return this.devices.find((d) => d.name === name);
  }

  inet(name = 'eth0'): Inet | undefined {
    return this.inets.get(name);
  }

  nic(name = 'eth0'): Netvsc | undefined {
    return this.nics.find((n) => n.netdev.name === name);
  }

  /** The interface whose subnet holds `dst` (or the first configured one). */
  routeFor(dst: number): Inet | undefined {
    const all = [...this.inets.values()].filter((i) => i.address);
    return all.find((i) => ((i.address!.address ^ dst) & prefixMask(i.address!.prefix)) === 0) ?? all.find((i) => i.address!.gateway !== undefined) ?? all[0];
  }

  /** ping DST: started at once; `done` says when its statistics are printed. */
  ping(dst: string | number, options: PingOptions = {}): Ping {
    const ip = typeof dst === 'number' ? dst : parseIpv4(dst);
    if (ip === undefined) throw new RangeError(`ping: ${String(dst)}: Name or service not known`);
    const inet = this.routeFor(ip);
    if (!inet) throw new Error('ping: connect: Network is unreachable');
    return new Ping(inet, this.services, ip, options).start();
  }

  /** An AF_PACKET socket on `name`: frames go out unchanged, every received frame comes to `onFrame`. */
  raw(name: string, onFrame: (frame: Uint8Array, meta: RxMeta) => void): RawSocket {
    const dev = this.device(name);
    if (!dev) throw new Error(`no interface ${name}`);
    // The socket reads its own copy of each frame (packet_rcv's copy to user space).
    const copies = new CopyArena();
    const tap: FrameListener = (bytes, at, length, m) => onFrame(copies.copy(bytes, at, at + length), { queue: m.queue, checksumVerified: m.checksumVerified, hash: m.hash });
    dev.addTap(tap);
    return { send: (frame) => dev.xmit(frame), sendBatch: (frames) => sendBatch(dev, frames), close: () => dev.removeTap(tap) };
  }

  /**
   * A raw socket whose reader gets the frames received in batches, as from a packet socket's
   * receive ring or recvmmsg(): each frame is copied once into the batch's buffer, and
   * `onFrames` runs when the driver's poll is over, or sooner when the batch is full. The batch
   * and its frames are valid during the call (the reader copies what it keeps).
   */
  rawBatch(name: string, onFrames: (batch: FrameBatch) => void, options: { frames?: number; bytes?: number } = {}): RawBatchSocket {
    const dev = this.device(name);
    if (!dev) throw new Error(`no interface ${name}`);
    const frames = options.frames ?? DEFAULT_BATCH_FRAMES;
    const bytes = options.bytes ?? DEFAULT_BATCH_BYTES;
    if (!Number.isInteger(frames) || frames < 1 || frames > 65536) throw new RangeError(`frames ${frames} is not 1 to 65536`);
    if (!Number.isInteger(bytes) || bytes < 64 || bytes > 256 << 20) throw new RangeError(`bytes ${bytes} is not 64 to ${256 << 20}`);
    const batch = new FrameBatch(frames, bytes);
    let dropped = 0;
    const deliver = () => {
      if (batch.count === 0) return;
      try {
        onFrames(batch);
      } finally {
        batch.clear();
      }
    };
    const tap: FrameListener = (b, at, length, m) => {
      if (!batch.fits(length)) deliver();
      if (batch.fits(length)) batch.add(b, at, length, m);
      else dropped++;
    };
    dev.addTap(tap);
    dev.pollDone.add(deliver);
    return {
      send: (frame) => dev.xmit(frame),
      sendBatch: (f) => sendBatch(dev, f),
      close: () => {
        dev.removeTap(tap);
        dev.pollDone.delete(deliver);
      },
      get dropped() {
        return dropped;
      },
    };
  }

  state(): Record<string, unknown>[] {
    return this.nics.map((n) => ({ ...n.state(), inet: this.inets.get(n.netdev.name)?.describe() }));
  }
}

/** A raw socket's sendBatch: back to back, stopping at the first frame not taken. */
function sendBatch(dev: NetDevice, frames: readonly Uint8Array[]): number {
  for (let i = 0; i < frames.length; i++) if (dev.xmit(frames[i]!, i < frames.length - 1 ? MORE : LAST) !== 'ok') return i;
  return frames.length;
}

/** netdev_xmit_more for a raw socket's batch: every frame but the last says another follows. */
const MORE: TxMeta = Object.freeze({ more: true });
const LAST: TxMeta = Object.freeze({});

/**
 * The hv_netvsc module: module_init registers the driver. `instance` is the loaded module (its
 * interfaces, stacks, ping, raw sockets).
 */
export function netvscModule(config: GuestNetConfig = {}): GuestModule & { readonly instance: NetvscGuest | undefined } {
  let instance: NetvscGuest | undefined;
  return {
    name: 'hv_netvsc',
    get instance() {
      return instance;
    },
    init(services, register, client) {
      if (!client) return;
      instance = new NetvscGuest(services, client, config);
      register(instance.driver);
    },
  };
}
