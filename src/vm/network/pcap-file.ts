// A pcapng file on the host: the capture of a switch (hvkit lab --pcap) or the back end of a NIC
// (pcap=FILE). Blocks are written as they come, synchronously, so that the file is whole and
// readable by tshark as soon as the run ends (or even while it runs).
import { closeSync, openSync, writeSync } from 'node:fs';
import type { NetBackend, NetEndpoint, NetLink } from '../../devices/network/backend.js';
import { PcapngWriter } from '../../devices/network/pcapng.js';

export class PcapFile {
  readonly writer: PcapngWriter;
  private fd: number | undefined;

  /** Creates (or truncates) `path`; throws the file system's error. */
  constructor(
    readonly path: string,
    epochNs: bigint,
    comment?: string,
  ) {
    const fd = openSync(path, 'w');
    this.fd = fd;
    this.writer = new PcapngWriter((chunk) => this.fd !== undefined && void writeSync(this.fd, chunk), epochNs, comment);
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/** A NIC whose wire is a capture file: what it sends is recorded, nothing comes in. */
export class PcapBackend implements NetBackend {
  readonly kind = 'pcap';

  constructor(
    readonly file: PcapFile,
    private readonly now: () => number,
  ) {}

  get description(): string {
    return `pcap ${this.file.path}`;
  }

  connect(endpoint: NetEndpoint): NetLink {
    return {
      transmit: (frame) => this.file.writer.packet(endpoint.name, this.now(), frame, 'out'),
      close: () => this.file.close(),
    };
  }
}
