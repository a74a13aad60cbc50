// Hyper-V sockets as Node streams, on both sides of a VM. Host side: connectToVm() and listen()
// give `stream.Duplex`es over the host's hv_sock provider (src/devices/hvsock/host.ts). Guest
// side: guestConnect() and guestListen() do the same over the guest kernel's hv_sock transport
// (src/devices/hvsock/guest.ts), which runs in this thread in a `Machine`.
//
// A `Machine` moves only when its virtual clock does: data flows while something runs it. Use
// runWhile() (or runUntilClosed()), which runs the machine in short slices and lets Node's event
// loop run the streams' callbacks in between:
//
//   const m = new Machine({ release: 'ws2022' }); m.boot();
//   listen(m, 5000, (s) => s.pipe(s));                      // a host echo service on port 5000
//   const c = guestConnect(m, 5000);                          // the guest connects to it
//   c.end('hello'); c.on('data', (b) => ...);
//   await runUntilClosed(m, [c]);
//
// With a `ThreadedMachine` the host side works the same (its clock follows the wall clock);
// its guest runs in a worker, where a workload uses src/devices/hvsock/guest.ts directly.
import { Duplex } from 'node:stream';
import type { GuestHvSocket, GuestSocketOptions } from '../devices/hvsock/guest.js';
import type { HostHvSocket } from '../devices/hvsock/host.js';
import type { HvSocket } from '../devices/hvsock/socket.js';
import { guestHvsock, hostHvsock, type HostSide } from './hvsock-sides.js';
import type { Machine } from './machine.js';

export { guestHvsock, hostHvsock, type HostSide } from './hvsock-sides.js';

export interface HvsockStreamOptions {
  /**
   * Keep the writable side open after the peer's EOF (Node's `allowHalfOpen`). Off by default,
   * as for `net.Socket`: the stream then ends its side too, and the connection finishes.
   */
  allowHalfOpen?: boolean;
}

/**
 * A Duplex over one hv_sock socket. Reading pauses the socket when the stream's buffer is full
 * (the peer's writer then blocks on the ring); writing waits for the ring's room. `end()` sends
 * EOF after everything written; `destroy()` closes at once, dropping what the ring has not
 * taken. Emits `connect` when a connecting socket is up.
 */
export class HvsockDuplex extends Duplex {
  private pending: { chunk: Uint8Array; cb: (e?: Error | null) => void } | undefined;
  private finalCb: ((e?: Error | null) => void) | undefined;

  constructor(
    readonly socket: HvSocket,
    options: HvsockStreamOptions = {},
  ) {
    super({ allowHalfOpen: options.allowHalfOpen ?? false });
    socket.on = {
      connect: () => {
        this.flush();
        this.emit('connect');
      },
      data: (b) => {
        if (!this.push(b)) socket.pause();
      },
      end: () => void this.push(null),
      writable: () => this.flush(),
      error: (e) => void this.destroy(e),
      close: () => {
        if (!this.destroyed) this.destroy();
      },
    };
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Uint8Array, _encoding: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.pending = { chunk, cb };
    this.flush();
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.finalCb = cb;
    this.flush();
  }

  override _destroy(error: Error | null, cb: (e?: Error | null) => void): void {
    this.socket.close();
    // A write the ring never took fails, as Node's own sockets fail writes cut off by destroy().
    const p = this.pending;
    this.pending = undefined;
    if (p) p.cb(Object.assign(new Error('the hv_sock stream was destroyed before this write completed'), { code: 'ERR_STREAM_DESTROYED' }));
    cb(error);
  }

  /** Moves the waiting chunk into the ring as room allows, then the EOF once asked for. */
  private flush(): void {
    if (this.socket.state !== 'open') return;
    const p = this.pending;
    if (p) {
      let n: number;
      try {
        n = this.socket.write(p.chunk);
      } catch (e) {
        this.pending = undefined;
        p.cb(e as Error);
        return;
      }
      if (n < p.chunk.length) {
        p.chunk = p.chunk.subarray(n);
        return;
      }
      this.pending = undefined;
      p.cb();
    }
    const f = this.finalCb;
    if (f && !this.pending) {
      this.finalCb = undefined;
      this.socket.end();
      f();
    }
  }
}

/** Host: connects to a service the guest listens on (a port, or its service id). */
export function connectToVm(m: HostSide, service: number | string, options?: HvsockStreamOptions): HvsockDuplex {
  return new HvsockDuplex(hostHvsock(m).connect(service), options);
}

/** Host: listens on a service; each guest connection arrives as an open Duplex. */
export function listen(m: HostSide, service: number | string, onConnection: (stream: HvsockDuplex, socket: HostHvSocket) => void, options?: HvsockStreamOptions): { close(): void } {
  return hostHvsock(m).listen(service, (s) => onConnection(new HvsockDuplex(s, options), s));
}

/** Guest: connects to a service on the host (an AF_VSOCK port, or its service id). */
export function guestConnect(m: Machine, service: number | string, options?: HvsockStreamOptions & GuestSocketOptions): HvsockDuplex {
  return new HvsockDuplex(guestHvsock(m).connect(service, options), options);
}

/** Guest: listens on a port for the host's connections, each an open Duplex. */
export function guestListen(m: Machine, port: number, onConnection: (stream: HvsockDuplex, socket: GuestHvSocket) => void, options?: HvsockStreamOptions & GuestSocketOptions): { close(): void } {
  return guestHvsock(m).listen(port, (s) => onConnection(new HvsockDuplex(s, options), s), options);
}

export interface RunOptions {
  /** Virtual time per slice (1 ms). */
  sliceNs?: number;
  /** Give up after this much virtual time (60 s). */
  maxNs?: number;
}

/**
 * Runs the machine's virtual time in slices while `busy()` holds, letting Node's event loop run
 * between slices (stream callbacks, timers). True if `busy()` stopped holding, false on timeout.
 */
export async function runWhile(m: Machine, busy: () => boolean, options: RunOptions = {}): Promise<boolean> {
  const slice = options.sliceNs ?? 1_000_000;
  const end = m.nowNs + (options.maxNs ?? 60e9);
  for (;;) {
    await new Promise<void>((r) => setImmediate(r));
    if (!busy()) return true;
    if (m.nowNs >= end) return false;
    m.runFor(Math.min(slice, end - m.nowNs));
  }
}

/** Runs the machine until every stream is closed (destroyed), or `maxNs` of virtual time. */
export function runUntilClosed(m: Machine, streams: readonly Duplex[], options?: RunOptions): Promise<boolean> {
  return runWhile(m, () => streams.some((s) => !s.closed), options);
}
