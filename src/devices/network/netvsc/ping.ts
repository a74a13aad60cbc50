// ping(8) as iputils prints it, run by the guest: echo requests a second apart, one line per
// reply, then the statistics. Times are the guest's own clock (virtual time). Formats follow
// iputils ping_common.c: the reply time's precision falls as it grows, the loss is printed with
// %g, the rtt line in milliseconds with three decimals.
import type { GuestServices } from '../../device.js';
import { ipString } from '../ether.js';
import type { EchoReply, Inet } from './inet.js';

export interface PingOptions {
  /** -c: requests to send (default 3). */
  count?: number;
  /** -i: seconds between requests (default 1). */
  intervalNs?: number;
  /** -s: data bytes (default 56). */
  size?: number;
  /** How long to wait for replies after the last request (iputils' lingertime, 10 s). */
  lingerNs?: number;
  /** -p style identifier (the socket's ident). */
  ident?: number;
}

export interface PingResult {
  readonly transmitted: number;
  readonly received: number;
  /** Round-trip times in ms, in order of the replies. */
  readonly rtts: readonly number[];
  readonly lines: readonly string[];
}

/** " time=0.123 ms" style: iputils keeps about four significant digits. */
export function formatTripTime(us: number): string {
  const t = Math.round(us);
  if (t >= 100000 - 50) return `${Math.floor((t + 500) / 1000)}`;
  if (t >= 10000 - 5) return `${Math.floor((t + 50) / 1000)}.${Math.floor(((t + 50) % 1000) / 100)}`;
  if (t >= 1000) return `${Math.floor((t + 5) / 1000)}.${String(Math.floor(((t + 5) % 1000) / 10)).padStart(2, '0')}`;
  return `${Math.floor(t / 1000)}.${String(t % 1000).padStart(3, '0')}`;
}

/** %g of a percentage: six significant digits, no trailing zeros. */
const pctG = (x: number): string => String(Number(x.toPrecision(6)));

export class Ping {
  readonly lines: string[] = [];
  transmitted = 0;
  received = 0;
  readonly rtts: number[] = [];
  done = false;
  private readonly sentAt = new Map<number, number>();
  private readonly count: number;
  private readonly interval: number;
  private readonly size: number;
  private readonly linger: number;
  private readonly ident: number;
  private startNs = 0;
  /** cur_time: when ping last sent or received; the statistics' "time" runs to it (iputils finish()). */
  private lastNs = 0;
  private timer: { cancel(): boolean } | undefined;
  onLine: ((line: string) => void) | undefined;

  constructor(
    private readonly inet: Inet,
    private readonly services: GuestServices,
    readonly dst: number,
    options: PingOptions = {},
  ) {
    this.count = options.count ?? 3;
    this.interval = options.intervalNs ?? 1e9;
    this.size = options.size ?? 56;
    this.linger = options.lingerNs ?? 10e9;
    this.ident = options.ident ?? 0x4856;
  }

  private emit(line: string): void {
    this.lines.push(line);
    this.onLine?.(line);
  }

  start(): this {
    const d = ipString(this.dst);
    this.emit(`PING ${d} (${d}) ${this.size}(${this.size + 28}) bytes of data.`);
    this.startNs = this.services.uptimeNs();
    this.inet.onEcho(this.ident, (r) => this.reply(r));
    this.sendNext();
    return this;
  }

  private sendNext(): void {
    if (this.done) return;
    const seq = ++this.transmitted;
    const data = new Uint8Array(this.size);
    // The timestamp first (struct timeval), then the fill pattern.
    const now = this.services.uptimeNs();
    const dv = new DataView(data.buffer);
    if (this.size >= 16) {
      dv.setBigUint64(0, BigInt(Math.floor(now / 1e9)), true);
      dv.setBigUint64(8, BigInt(Math.floor((now % 1e9) / 1000)), true);
    }
    for (let i = 16; i < this.size; i++) data[i] = i & 0xff;
    this.sentAt.set(seq, now);
    this.lastNs = now;
    this.inet.sendEcho(this.dst, this.ident, seq, data);
    if (this.transmitted < this.count) this.timer = this.services.scheduleDelayedWork(this.interval, () => this.sendNext());
    else this.timer = this.services.scheduleDelayedWork(this.linger, () => this.finish());
  }

  private reply(r: EchoReply): void {
    const sent = this.sentAt.get(r.seq);
    if (sent === undefined || r.from !== this.dst || this.done) return;
    this.sentAt.delete(r.seq);
    this.lastNs = r.atNs;
    this.received++;
    const us = (r.atNs - sent) / 1000;
    this.rtts.push(us / 1000);
    this.emit(`${r.bytes} bytes from ${ipString(r.from)}: icmp_seq=${r.seq} ttl=${r.ttl} time=${formatTripTime(us)} ms`);
    if (this.transmitted >= this.count && this.received >= this.count) {
      this.timer?.cancel();
      this.finish();
    }
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.inet.onEcho(this.ident, undefined);
    const elapsedMs = Math.floor((this.lastNs - this.startNs) / 1e6 + 0.5);
    const loss = this.transmitted ? (100 * (this.transmitted - this.received)) / this.transmitted : 0;
    this.emit('');
    this.emit(`--- ${ipString(this.dst)} ping statistics ---`);
    this.emit(`${this.transmitted} packets transmitted, ${this.received} received, ${pctG(loss)}% packet loss, time ${elapsedMs}ms`);
    if (this.received) {
      const n = this.rtts.length;
      const avg = this.rtts.reduce((a, b) => a + b, 0) / n;
      const mdev = Math.sqrt(Math.max(0, this.rtts.reduce((a, b) => a + b * b, 0) / n - avg * avg));
      const f = (x: number) => x.toFixed(3);
      this.emit(`rtt min/avg/max/mdev = ${f(Math.min(...this.rtts))}/${f(avg)}/${f(Math.max(...this.rtts))}/${f(mdev)} ms`);
    }
  }

  result(): PingResult {
    return { transmitted: this.transmitted, received: this.received, rtts: this.rtts, lines: this.lines };
  }
}
