// What a NIC's host back end plugs into (DESIGN.md, "Devices with a data plane"): the protocol
// (netvsp) talks to a link, never to a switch, a file or a socket directly, so that a back end
// can be swapped without touching the protocol. Platform-neutral: Node-only back ends (files,
// sockets) live in src/vm and implement these interfaces.
import type { Mac } from './ether.js';

/** The NIC's end of a link: where a back end delivers the frames that arrive for it. */
export interface NetEndpoint {
  /** A name for logs and captures ("vm1/eth0"). */
  readonly name: string;
  /** The NIC's MAC address (what a switch learns it by). */
  readonly mac: Mac;
  /**
   * A frame from the wire. False if the NIC dropped it (no guest buffer, link down, filtered,
   * too big); the NIC counts why. The frame is the caller's: the NIC copies what it keeps.
   */
  deliver(frame: Uint8Array): boolean;
  /**
   * The same for the frame at bytes[at, at + length): what a back end that forwards frames out of
   * a larger buffer (a switch, from a guest's send section) calls when the NIC has it, so that no
   * view is made per frame. The bytes are the caller's and valid only during the call.
   */
  deliverFrom?(bytes: Uint8Array, at: number, length: number): boolean;
}

/** The wire's end of a link: where the NIC transmits. */
export interface NetLink {
  /** Sends one frame (the caller's buffer; the back end copies what it keeps). */
  transmit(frame: Uint8Array): void;
  /** The same for the frame at bytes[at, at + length), where the back end offers it (see NetEndpoint.deliverFrom). */
  transmitFrom?(bytes: Uint8Array, at: number, length: number): void;
  /** The NIC is going away: the back end forgets it. */
  close(): void;
}

/** A back end a NIC connects to: a virtual switch, a capture file, a socket. */
export interface NetBackend {
  /** "switch", "pcap", "udp", "stream", "none". */
  readonly kind: string;
  /** One line for logs: "switch lan", "pcap /tmp/x.pcapng". */
  readonly description: string;
  connect(endpoint: NetEndpoint): NetLink;
}

/** Something that sees every frame a back end carries (a capture). `ns` is the virtual time. */
export interface FrameTap {
  frame(frame: Uint8Array, ns: number, from: string): void;
}

/** A back end with nothing behind it: frames go nowhere (a NIC with no network connected). */
export const NO_NETWORK: NetBackend = {
  kind: 'none',
  description: 'not connected',
  connect: () => ({ transmit: () => undefined, close: () => undefined }),
};

/** Wraps a back end so that every frame going out and coming in also goes to `tap`. */
export function tapped(inner: NetBackend, tap: FrameTap, now: () => number): NetBackend {
  return {
    kind: inner.kind,
    description: inner.description,
    connect(endpoint) {
      const link = inner.connect({
        name: endpoint.name,
        get mac() {
          return endpoint.mac;
        },
        deliver: (frame) => {
          tap.frame(frame, now(), 'in');
          return endpoint.deliver(frame);
        },
      });
      return {
        transmit: (frame) => {
          tap.frame(frame, now(), 'out');
          link.transmit(frame);
        },
        close: () => link.close(),
      };
    },
  };
}
