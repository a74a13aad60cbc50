// A raw guest for storvsp tests: a VMBus driver that opens the storage channel and lets a test
// send any vstor packet (in-band or GPA-direct, well-formed or not) and read what the host sends
// back, over the real VMBus of a Machine. Also machines with hvkit's own storvsc, and helpers to
// build SRBs.
import { MemoryDisk, type BlockBackend } from '../../../src/devices/storage/backend.js';
import { STORAGE_MODULE_NAME, type StorageModule } from '../../../src/devices/storage/guest.js';
import type { StorvspHost, StorvspOptions } from '../../../src/devices/storage/host.js';
import { REQUEST_COMPLETION_FLAG, StorvscRequestType, VmscsiRequest, VSTOR_PACKET_HEADER, VstorOp, VstorPacket } from '../../../src/devices/storage/wire.js';
import type { BlockRequest, BlockResult } from '../../../src/devices/storage/storvsc/block.js';
import type { DiskAttachment } from '../../../src/devices/registry.js';
import type { ReleaseId } from '../../../src/hypervisor/release.js';
import type { GuestChannel } from '../../../src/vmbus/client/channel.js';
import { gpaDirect, inband, type GpaDirectRange } from '../../../src/vmbus/packet.js';
import { DeviceClass } from '../../../src/vmbus/wire/guids.js';
import type { ParsedPacket } from '../../../src/vmbus/wire/packets.js';
import { Machine } from '../../../src/vm/machine.js';

export const MIB = 1 << 20;

/** A machine whose one device is a storage controller with `disks`, booted with no guest driver for it. */
export function rawMachine(opts: { release?: ReleaseId; vps?: number; kind?: 'scsi' | 'fc' | 'ide'; disks?: DiskAttachment[]; storage?: StorvspOptions; rings?: [number, number] } = {}) {
  const m = new Machine({ release: opts.release ?? 'ws2022', vps: opts.vps ?? 2, devices: [{ type: opts.kind ?? 'scsi', disks: opts.disks ?? [], ...(opts.storage ? { storage: opts.storage } : {}) }], kernel: { modules: [] } });
  m.boot();
  const host = m.devices[0] as StorvspHost;
  const classId = opts.kind === 'fc' ? DeviceClass.SYNTHFC : opts.kind === 'ide' ? DeviceClass.IDE : DeviceClass.SCSI;
  const received: ParsedPacket[] = [];
  let channel: GuestChannel | undefined;
  const subchannels: GuestChannel[] = [];
  let deaf = false;
  m.kernel.vmbus!.registerDriver({
    name: 'raw_storvsc',
    classIds: [classId],
    probe: (ch) => {
      channel = ch;
      const onEvent = (c: GuestChannel) => {
        if (!deaf) c.receive((p) => received.push({ ...p, payload: p.payload.slice() }));
      };
      ch.onSubchannel = (sc) => {
        sc.open({ sendRingBytes: 8 * 4096, recvRingBytes: 8 * 4096, onEvent, callbackMode: 'direct' });
        subchannels.push(sc);
      };
      // Direct callbacks: a deaf guest then simply leaves its ring full (no rescheduled tasklet).
      ch.open({ sendRingBytes: opts.rings?.[0] ?? 32 * 4096, recvRingBytes: opts.rings?.[1] ?? 32 * 4096, onEvent, callbackMode: 'direct' });
    },
  });
  m.runFor(1e6);
  const ch = channel!;
  const memory = m.partition.memory;
  const raw = {
    m,
    host,
    channel: ch,
    subchannels,
    received,
    memory,
    /** Stop (or resume) reading the host's packets: a guest that stops completing. */
    setDeaf(v: boolean) {
      deaf = v;
      if (!v) ch.receive((p) => received.push({ ...p, payload: p.payload.slice() }));
    },
    /** Sends a vstor packet of `op` with `body` in its union; `size` cuts the packet (64 by default). */
    send(op: number, body: Uint8Array = new Uint8Array(0), o: { transId?: bigint; size?: number; flags?: number; completion?: boolean; ranges?: GpaDirectRange[]; on?: GuestChannel } = {}): bigint {
      const packet = new Uint8Array(o.size ?? VstorPacket.size);
      const dv = new DataView(packet.buffer);
      if (packet.length >= 4) dv.setUint32(0, op, true);
      if (packet.length >= 8) dv.setUint32(4, o.flags ?? REQUEST_COMPLETION_FLAG, true);
      if (packet.length > VSTOR_PACKET_HEADER) packet.set(body.subarray(0, packet.length - VSTOR_PACKET_HEADER), VSTOR_PACKET_HEADER);
      const id = o.transId ?? BigInt(received.length + 1000 + Math.floor(Math.random() * 1e6));
      const target = o.on ?? ch;
      if (o.ranges) target.sendPacket(gpaDirect(o.ranges, packet, id));
      else target.sendPacket(inband(packet, id, o.completion ?? true));
      m.runFor(1e6);
      return id;
    },
    /** The host's answer to a transaction id, if any. */
    answer(id: bigint): ParsedPacket | undefined {
      return received.find((p) => p.transId === id);
    },
    /** Operation and status of an answer. */
    opStatus(p: ParsedPacket | undefined): [number, number] | undefined {
      if (!p) return undefined;
      const dv = new DataView(p.payload.buffer, p.payload.byteOffset, p.payload.byteLength);
      return [dv.getUint32(0, true), dv.getUint32(8, true)];
    },
    /** BEGIN, a version, QUERY_PROPERTIES, END. */
    init(version: number) {
      const v = new Uint8Array(4);
      new DataView(v.buffer).setUint16(0, version, true);
      for (const [op, body] of [
        [VstorOp.BEGIN_INITIALIZATION, undefined],
        [VstorOp.QUERY_PROTOCOL_VERSION, v],
        [VstorOp.QUERY_PROPERTIES, undefined],
        [VstorOp.END_INITIALIZATION, undefined],
      ] as const) {
        const a = raw.opStatus(raw.answer(raw.send(op, body)));
        if (!a || a[1] !== 0) throw new Error(`init op ${op} answered ${a}`);
      }
    },
    /** Pages of guest memory for data, from the kernel's allocator. */
    alloc(bytes: number): number {
      return m.kernel.mm.allocContiguous(Math.ceil(bytes / 4096) * 4096);
    },
  };
  return raw;
}

/** An EXECUTE_SRB union for `cdb` to LUN `lun`, transferring `length` bytes in direction `dataIn`. */
export function srb(cdb: number[], o: { lun?: number; target?: number; path?: number; length?: number; dataIn?: number } = {}): Uint8Array {
  const r = VmscsiRequest.zero();
  r.length = VmscsiRequest.size;
  r.lun = o.lun ?? 0;
  r.target_id = o.target ?? 0;
  r.path_id = o.path ?? 0;
  r.cdb_length = cdb.length;
  const payload = new Uint8Array(20);
  payload.set(cdb);
  r.payload = payload;
  r.sense_info_length = 20;
  r.data_in = o.dataIn ?? StorvscRequestType.READ_TYPE;
  r.data_transfer_length = o.length ?? 0;
  return VmscsiRequest.encode(r);
}

/** A range over `bytes` at `gpa` (contiguous pages). */
export function rangeAt(gpa: number, bytes: number): GpaDirectRange {
  const first = Math.floor(gpa / 4096);
  const n = Math.ceil(((gpa % 4096) + bytes) / 4096);
  return { byteCount: bytes, byteOffset: gpa % 4096, pfns: Array.from({ length: n }, (_, i) => first + i) };
}

/** The vmscsi_request of a COMPLETE_IO. */
export const srbOf = (p: ParsedPacket) => VmscsiRequest.decode(p.payload, VSTOR_PACKET_HEADER);

/** A machine with hvkit's own storvsc (the default modules) and a SCSI controller with `disks`. */
export function guestMachine(opts: { release?: ReleaseId; vps?: number; disks?: DiskAttachment[]; storage?: StorvspOptions; devices?: ('scsi' | 'fc')[] } = {}) {
  const m = new Machine({
    release: opts.release ?? 'ws2022',
    vps: opts.vps ?? 2,
    devices: (opts.devices ?? ['scsi']).map((type, i) => ({ type, ...(i === 0 ? { disks: opts.disks ?? [] } : {}), ...(opts.storage ? { storage: opts.storage } : {}) })),
  });
  m.boot();
  const mod = m.kernel.options.modules.find((x) => x.name === STORAGE_MODULE_NAME) as StorageModule;
  return { m, host: m.devices[0] as StorvspHost, storage: mod.storage!, lines: () => m.kernel.log.lines('debug') };
}

/** Runs the VM until the guest's request completes (a second of virtual time at most); its result. */
export function settleOn(g: { m: Machine }, req: BlockRequest, ns = 1e9): BlockResult | undefined {
  g.m.waitUntil(() => req.result !== undefined, ns);
  return req.result;
}

export const memDisk = (lun: number, bytes = 64 * MIB, o: { readOnly?: boolean; sectorSize?: number } = {}): DiskAttachment & { backend: MemoryDisk } => ({ lun, backend: new MemoryDisk(bytes, o) });
export type { BlockBackend };
