// The hv_sock echo box's two ends, the same in both modes: a guest listener that sends back what
// it reads (as socat VSOCK-LISTEN:port EXEC:cat would), and the host connection that writes the
// text, ends its side and collects the answer until the guest closes. In-thread both run in the
// page; with the guest in a worker, the listener runs there and the connection in the page.
import type { HvSockGuest } from '../../../src/devices/hvsock/guest.js';
import type { HvsockHost } from '../../../src/devices/hvsock/host.js';
import type { EchoResult } from './session.js';

/** Wall time the host side waits for the whole answer. */
export const ECHO_TIMEOUT_MS = 10_000;

/** An echo listener on `port` in the guest: each connection gets back what it sent, then its end. */
export function listenEcho(guest: HvSockGuest, port: number): { close(): void } {
  return guest.listen(port, (s) => {
    s.on.data = (b) => void s.write(b);
    s.on.end = () => s.end();
  });
}

/** Connects to the guest's `port`, sends `text` and ends; settles with what came back (or why nothing did). */
export function sendEcho(host: HvsockHost, port: number, text: string): Promise<EchoResult> {
  return new Promise<EchoResult>((resolve) => {
    const got: Uint8Array[] = [];
    let error: string | undefined;
    const finish = (r: EchoResult): void => {
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, error: `no answer within ${ECHO_TIMEOUT_MS / 1000} s` }), ECHO_TIMEOUT_MS);
    const conn = host.connect(port);
    conn.on.connect = () => {
      conn.write(new TextEncoder().encode(text));
      conn.end();
    };
    conn.on.data = (b) => void got.push(b.slice());
    conn.on.error = (e) => void (error = e.message);
    conn.on.close = () => {
      const all = new Uint8Array(got.reduce((n, b) => n + b.length, 0));
      got.reduce((at, b) => (all.set(b, at), at + b.length), 0);
      finish(error ? { ok: false, error } : { ok: true, back: new TextDecoder().decode(all) });
    };
  });
}
