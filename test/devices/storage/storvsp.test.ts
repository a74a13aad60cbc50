// storvsp on the wire, driven by a raw guest over real VMBus: the initialisation sequence and the
// versions each release accepts, completions as long as the request (48 bytes for protocol 4.2),
// packets out of order, SRBs with their data in guest memory, sub-channels, resets, ENUMERATE_BUS
// on hot add and remove, Fibre Channel WWNs; and the bad input of the issue (transfers too long,
// GPA ranges outside RAM, a guest that stops reading completions), each with its defined refusal.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzz } from '../../fuzz/fuzz.js';
import { MemoryDisk } from '../../../src/devices/storage/backend.js';
import { ScsiDisk } from '../../../src/devices/storage/scsi-disk.js';
import { HOST_VMSTOR_VERSIONS } from '../../../src/devices/storage/versions.js';
import { FcWwnPacket, NtStatus, ProtocolVersion, SrbStatus, StorvscRequestType, VmscsiRequest, VmstorVersion, VSTOR_PACKET_HEADER, VstorOp } from '../../../src/devices/storage/wire.js';
import { RELEASE_IDS } from '../../../src/hypervisor/release.js';
import { gpaDirect } from '../../../src/vmbus/packet.js';
import { RUNS } from '../../vmbus/fuzz-runs.js';
import { memDisk, MIB, rangeAt, rawMachine, srb, srbOf } from './harness.js';

const version = (v: number) => ProtocolVersion.encode({ major_minor: v, revision: 0 });

describe.each(RELEASE_IDS)('storvsp on %s: the versions it accepts', (release) => {
  it('accepts exactly its releases versions, with REVISION_MISMATCH for the rest', () => {
    const r = rawMachine({ release });
    expect(r.opStatus(r.answer(r.send(VstorOp.BEGIN_INITIALIZATION)))).toEqual([VstorOp.COMPLETE_IO, 0]);
    const accepted: number[] = [];
    for (const v of [VmstorVersion.WIN10, VmstorVersion.WIN8_1, VmstorVersion.WIN8, VmstorVersion.WIN7, VmstorVersion.WIN6, 0x0303]) {
      const a = r.answer(r.send(VstorOp.QUERY_PROTOCOL_VERSION, version(v)))!;
      const [, status] = r.opStatus(a)!;
      // The answer carries the version asked for, accepted or not.
      expect(ProtocolVersion.decode(a.payload, VSTOR_PACKET_HEADER).major_minor).toBe(v);
      if (status === 0) {
        accepted.push(v);
        break;
      }
      expect(status).toBe(NtStatus.REVISION_MISMATCH);
    }
    expect(accepted).toEqual([Math.max(...HOST_VMSTOR_VERSIONS[release])]);
  });
});

describe('storvsp: the initialisation sequence', () => {
  it('BEGIN, QUERY_PROTOCOL_VERSION, QUERY_PROPERTIES (256 KiB, multi-channel, one sub-channel per 4 VPs), END; then ready', () => {
    const r = rawMachine({ vps: 9 });
    r.send(VstorOp.BEGIN_INITIALIZATION);
    r.send(VstorOp.QUERY_PROTOCOL_VERSION, version(VmstorVersion.WIN10));
    const props = r.answer(r.send(VstorOp.QUERY_PROPERTIES))!;
    const dv = new DataView(props.payload.buffer, props.payload.byteOffset);
    expect([dv.getUint16(VSTOR_PACKET_HEADER + 4, true), dv.getUint32(VSTOR_PACKET_HEADER + 8, true), dv.getUint32(VSTOR_PACKET_HEADER + 12, true)]).toEqual([2, 1, 0x40000]);
    expect(r.opStatus(r.answer(r.send(VstorOp.END_INITIALIZATION)))).toEqual([VstorOp.COMPLETE_IO, 0]);
    expect(r.host.state).toBe('ready');
  });

  it('protocol 4.2: no multi-channel, and every completion is 12 + 36 bytes, as long as the request', () => {
    const r = rawMachine({ vps: 9 });
    for (const [op, body] of [[VstorOp.BEGIN_INITIALIZATION, undefined], [VstorOp.QUERY_PROTOCOL_VERSION, version(VmstorVersion.WIN7)], [VstorOp.QUERY_PROPERTIES, undefined], [VstorOp.END_INITIALIZATION, undefined]] as const) {
      const a = r.answer(r.send(op, body, { size: 48 }))!;
      expect(a.payload.length).toBe(48);
      if (op === VstorOp.QUERY_PROPERTIES) expect([a.payload[VSTOR_PACKET_HEADER + 4], a.payload[VSTOR_PACKET_HEADER + 8]]).toEqual([0, 0]);
    }
    const gpa = r.alloc(512);
    const a = r.answer(r.send(VstorOp.EXECUTE_SRB, srb([0x12, 0, 0, 0, 36, 0], { length: 36 }), { size: 48, ranges: [rangeAt(gpa, 36)] }))!;
    expect(a.payload.length).toBe(48);
    expect(r.memory.read(gpa, 1)[0]).toBe(0x7f);
  });

  it('an operation out of order gets STATUS_INVALID_DEVICE_STATE and changes nothing', () => {
    const r = rawMachine();
    expect(r.opStatus(r.answer(r.send(VstorOp.EXECUTE_SRB, srb([0, 0, 0, 0, 0, 0]))))).toEqual([VstorOp.COMPLETE_IO, NtStatus.INVALID_DEVICE_STATE]);
    r.send(VstorOp.BEGIN_INITIALIZATION);
    expect(r.opStatus(r.answer(r.send(VstorOp.END_INITIALIZATION)))![1]).toBe(NtStatus.INVALID_DEVICE_STATE);
    expect(r.host.state).toBe('query-version');
    expect(r.host.violationCount).toBe(2);
  });

  it('a sub-channel before the protocol is ready, and a CREATE_SUB_CHANNELS beyond the host maximum, are refused', () => {
    const r = rawMachine({ vps: 5 });
    r.init(VmstorVersion.WIN10);
    const count = (n: number) => new Uint8Array([n, 0]);
    expect(r.opStatus(r.answer(r.send(VstorOp.CREATE_SUB_CHANNELS, count(2))))![1]).toBe(NtStatus.INVALID_PARAMETER);
    expect(r.opStatus(r.answer(r.send(VstorOp.CREATE_SUB_CHANNELS, count(1))))![1]).toBe(0);
    r.m.runFor(10e6);
    expect(r.host.subChannels.length).toBe(1);
    expect(r.subchannels.length).toBe(1);
    // SRBs on the sub-channel work; a second CREATE on it is out of order.
    const a = r.answer(r.send(VstorOp.EXECUTE_SRB, srb([0, 0, 0, 0, 0, 0]), { on: r.subchannels[0]! }))!;
    expect(r.opStatus(a)![1]).toBe(NtStatus.DEVICE_DOES_NOT_EXIST);
    expect(r.opStatus(r.answer(r.send(VstorOp.CREATE_SUB_CHANNELS, count(1), { on: r.subchannels[0]! })))![1]).toBe(NtStatus.INVALID_DEVICE_STATE);
  });

  it('LUN, bus and adapter resets succeed (no-ops, as OpenVMM and Hyper-V)', () => {
    const r = rawMachine();
    r.init(VmstorVersion.WIN10);
    for (const op of [VstorOp.RESET_LUN, VstorOp.RESET_BUS, VstorOp.RESET_ADAPTER]) expect(r.opStatus(r.answer(r.send(op)))).toEqual([VstorOp.COMPLETE_IO, 0]);
    expect(r.host.stats.resets).toBe(3);
  });

  it('Fibre Channel: FCHBA_DATA before END_INITIALIZATION answers the port and node names, big-endian', () => {
    const r = rawMachine({ kind: 'fc', storage: { wwn: { port: 0xc003ff0123456789n, node: 0xc003ff9876543210n } } });
    r.send(VstorOp.BEGIN_INITIALIZATION);
    r.send(VstorOp.QUERY_PROTOCOL_VERSION, version(VmstorVersion.WIN10));
    r.send(VstorOp.QUERY_PROPERTIES);
    const w = FcWwnPacket.decode(r.answer(r.send(VstorOp.FCHBA_DATA))!.payload, VSTOR_PACKET_HEADER);
    expect(w.primary_active).toBe(1);
    expect([...w.primary_port_wwn]).toEqual([0xc0, 0x03, 0xff, 0x01, 0x23, 0x45, 0x67, 0x89]);
    expect([...w.primary_node_wwn]).toEqual([0xc0, 0x03, 0xff, 0x98, 0x76, 0x54, 0x32, 0x10]);
  });
});

describe('storvsp: SRBs', () => {
  it('READ(10) and WRITE(10) move bytes between guest memory and the disk; the completion carries status and length', () => {
    const disk = memDisk(0, 8 * MIB);
    const r = rawMachine({ disks: [disk] });
    r.init(VmstorVersion.WIN10);
    const gpa = r.alloc(8192);
    const bytes = Uint8Array.from({ length: 4096 }, (_, i) => (i * 13) & 0xff);
    // A buffer starting 512 bytes into a page: the range has an offset and spans two pages.
    r.memory.write(gpa + 512, bytes);
    const w = r.answer(r.send(VstorOp.EXECUTE_SRB, srb([0x2a, 0, 0, 0, 0, 8, 0, 0, 8, 0], { length: 4096, dataIn: StorvscRequestType.WRITE_TYPE }), { ranges: [rangeAt(gpa + 512, 4096)] }))!;
    expect(r.opStatus(w)).toEqual([VstorOp.COMPLETE_IO, 0]);
    expect([srbOf(w).srb_status, srbOf(w).scsi_status, srbOf(w).data_transfer_length]).toEqual([SrbStatus.SUCCESS, 0, 4096]);
    const back = new Uint8Array(4096);
    disk.backend.read(8, back);
    expect(back).toEqual(bytes);
    const dst = r.alloc(4096);
    r.send(VstorOp.EXECUTE_SRB, srb([0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0], { length: 4096 }), { ranges: [rangeAt(dst, 4096)] });
    expect(r.memory.read(dst, 4096)).toEqual(bytes);
  });

  it('a failed command: CHECK CONDITION, AUTOSENSE_VALID, the sense in the payload, STATUS_IO_DEVICE_ERROR', () => {
    const r = rawMachine({ disks: [memDisk(0, MIB)] });
    r.init(VmstorVersion.WIN10);
    const a = r.answer(r.send(VstorOp.EXECUTE_SRB, srb([0x28, 0, 0, 0x10, 0, 0, 0, 0, 1, 0], { length: 512 }), { ranges: [rangeAt(r.alloc(512), 512)] }))!;
    const s = srbOf(a);
    expect(r.opStatus(a)![1]).toBe(NtStatus.IO_DEVICE_ERROR);
    expect([s.scsi_status, s.srb_status, s.sense_info_length, s.payload[2], s.payload[12]]).toEqual([2, SrbStatus.INVALID_REQUEST | SrbStatus.AUTOSENSE_VALID, 20, 5, 0x21]);
  });

  it('a LUN with nothing attached: INQUIRY PQ 3, then SRB_STATUS_INVALID_LUN and STATUS_DEVICE_DOES_NOT_EXIST', () => {
    const r = rawMachine();
    r.init(VmstorVersion.WIN10);
    const a = r.answer(r.send(VstorOp.EXECUTE_SRB, srb([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { lun: 5, length: 512 }), { ranges: [rangeAt(r.alloc(512), 512)] }))!;
    expect([srbOf(a).srb_status, r.opStatus(a)![1]]).toEqual([SrbStatus.INVALID_LUN, NtStatus.DEVICE_DOES_NOT_EXIST]);
  });

  it('bad input, each refused with ILLEGAL REQUEST and STATUS_INVALID_PARAMETER and recorded: too long, outside RAM, two ranges, no range, a long CDB', () => {
    const r = rawMachine({ disks: [memDisk(0, MIB)] });
    r.init(VmstorVersion.WIN10);
    const gpa = r.alloc(8192);
    const refused = (id: bigint) => {
      const a = r.answer(id)!;
      expect(r.opStatus(a)![1]).toBe(NtStatus.INVALID_PARAMETER);
      expect([srbOf(a).scsi_status, srbOf(a).srb_status & 0x3f, srbOf(a).payload[2], srbOf(a).payload[12]]).toEqual([2, SrbStatus.INVALID_REQUEST, 5, 0x24]);
    };
    refused(r.send(VstorOp.EXECUTE_SRB, srb([0x28, 0, 0, 0, 0, 0, 0, 0x04, 0x01, 0], { length: 0x40200 }), { ranges: [rangeAt(gpa, 0x40200)] }));
    const ramPages = r.memory.size / 4096;
    refused(r.send(VstorOp.EXECUTE_SRB, srb([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0], { length: 4096 }), { ranges: [{ byteCount: 4096, byteOffset: 0, pfns: [ramPages + 5] }] }));
    refused(r.send(VstorOp.EXECUTE_SRB, srb([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { length: 512 }), { ranges: [rangeAt(gpa, 512), rangeAt(gpa + 4096, 512)] }));
    refused(r.send(VstorOp.EXECUTE_SRB, srb([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { length: 512 })));
    const long = srb([0, 0, 0, 0, 0, 0]);
    long[VmscsiRequest.offsets.cdb_length] = 17;
    refused(r.send(VstorOp.EXECUTE_SRB, long));
    // A range shorter than the transfer.
    refused(r.send(VstorOp.EXECUTE_SRB, srb([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0], { length: 4096 }), { ranges: [rangeAt(gpa, 2048)] }));
    expect(r.host.violationCount).toBe(6);
    expect(r.host.violations.join('\n')).toMatch(/exceeds the 262144-byte maximum transfer[\s\S]*outside the guest's[\s\S]*2 GPA ranges[\s\S]*without a GPA range[\s\S]*cdb_length 17[\s\S]*less than the 4096/);
  });

  it('a packet that asks for no completion, a completion packet, a packet shorter than the header: recorded; only the short one is answered', () => {
    const r = rawMachine();
    r.init(VmstorVersion.WIN10);
    const before = r.received.length;
    r.send(VstorOp.EXECUTE_SRB, srb([0, 0, 0, 0, 0, 0]), { completion: false });
    r.channel.sendCompletion(77n, new Uint8Array(64));
    r.m.runFor(1e6);
    expect(r.received.length).toBe(before);
    const short = r.send(VstorOp.EXECUTE_SRB, new Uint8Array(0), { size: 8 });
    expect(r.opStatus(r.answer(short))![1]).toBe(NtStatus.INVALID_PARAMETER);
    expect(r.host.violationCount).toBe(3);
  });

  it('the data is written to the disk only within the buffer the guest gave (nothing outside the range changes)', () => {
    const r = rawMachine({ disks: [memDisk(0, MIB)] });
    r.init(VmstorVersion.WIN10);
    const gpa = r.alloc(3 * 4096);
    r.memory.fill(gpa, 3 * 4096, 0xee);
    r.send(VstorOp.EXECUTE_SRB, srb([0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0], { length: 1024 }), { ranges: [rangeAt(gpa + 100, 1024)] });
    const after = r.memory.read(gpa, 3 * 4096);
    expect(after.subarray(0, 100).every((x) => x === 0xee)).toBe(true);
    expect(after.subarray(100, 1124).every((x) => x === 0)).toBe(true);
    expect(after.subarray(1124).every((x) => x === 0xee)).toBe(true);
  });
});

describe('storvsp: a data buffer under an overlay page (TLFS "GPA Overlay Pages")', () => {
  it('a READ into a page the SIMP covers fills the RAM beneath; the SIMP keeps its contents, and the data shows once it moves away', () => {
    const disk = memDisk(0, MIB);
    const bytes = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 1) & 0xff);
    disk.backend.write(0, bytes);
    const r = rawMachine({ disks: [disk] });
    r.init(VmstorVersion.WIN10);
    const dst = r.alloc(8192);
    const cpu = r.m.kernel.cpus[0]!.ops;
    const home = cpu.getReg('SIMP');
    const simp = r.m.partition.vps[0]!.synic.simpPage;
    // The second page of the buffer lies under the SIMP.
    cpu.setReg('SIMP', BigInt(dst + 4096) | 1n);
    const overlay = simp.bytes.slice();
    const a = r.answer(r.send(VstorOp.EXECUTE_SRB, srb([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0], { length: 4096 }), { ranges: [rangeAt(dst + 2048, 4096)] }))!;
    expect(r.opStatus(a)).toEqual([VstorOp.COMPLETE_IO, 0]);
    expect(Buffer.from(simp.bytes)).toEqual(Buffer.from(overlay));
    cpu.setReg('SIMP', home);
    expect(r.memory.read(dst + 2048, 4096)).toEqual(bytes);
  });

  it('a WRITE from a page under the SIMP takes the RAM beneath, not the message page', () => {
    const disk = memDisk(0, MIB);
    const r = rawMachine({ disks: [disk] });
    r.init(VmstorVersion.WIN10);
    const src = r.alloc(4096);
    const bytes = Uint8Array.from({ length: 4096 }, (_, i) => (i * 5 + 3) & 0xff);
    r.memory.write(src, bytes);
    const cpu = r.m.kernel.cpus[0]!.ops;
    const home = cpu.getReg('SIMP');
    cpu.setReg('SIMP', BigInt(src) | 1n);
    r.send(VstorOp.EXECUTE_SRB, srb([0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0], { length: 4096, dataIn: StorvscRequestType.WRITE_TYPE }), { ranges: [rangeAt(src, 4096)] });
    cpu.setReg('SIMP', home);
    const back = new Uint8Array(4096);
    disk.backend.read(0, back);
    expect(back).toEqual(bytes);
  });
});

describe('storvsp: hot add and remove', () => {
  it('ENUMERATE_BUS goes to the guest, unsolicited (transaction id 0), after each attach and detach', () => {
    const r = rawMachine();
    r.init(VmstorVersion.WIN10);
    r.host.attach({ path: 0, target: 0, lun: 2 }, new ScsiDisk(new MemoryDisk(MIB)));
    r.m.runFor(1e6);
    r.host.detach({ path: 0, target: 0, lun: 2 });
    r.m.runFor(1e6);
    const unsolicited = r.received.filter((p) => p.transId === 0n);
    expect(unsolicited.map((p) => r.opStatus(p)![0])).toEqual([VstorOp.ENUMERATE_BUS, VstorOp.ENUMERATE_BUS]);
    expect(unsolicited[0]!.payload.length).toBe(64);
    expect(r.host.stats.enumerates).toBe(2);
  });

  it('before protocol 4.2 there is no ENUMERATE_BUS', () => {
    const r = rawMachine();
    r.init(VmstorVersion.WIN6);
    r.host.attach({ path: 0, target: 0, lun: 2 }, new ScsiDisk(new MemoryDisk(MIB)));
    r.m.runFor(1e6);
    expect(r.received.filter((p) => p.transId === 0n)).toEqual([]);
  });
});

describe('storvsp: a guest that stops reading completions', () => {
  it('the host stops taking requests once its ring to the guest is full, holds nothing beyond one ring, and finishes all when the guest reads again', () => {
    const r = rawMachine({ disks: [memDisk(0, MIB)], storage: { queueDepth: 8 }, rings: [64 * 4096, 8 * 4096] });
    r.init(VmstorVersion.WIN10);
    r.setDeaf(true);
    const ids: bigint[] = [];
    // 28 KiB of ring to the guest hold about 330 completions; 252 KiB the other way hold three times that.
    for (let i = 0; i < 1000; i++) {
      try {
        if (!r.channel.writable() || r.channel.writable() < 200) break;
        ids.push(r.send(VstorOp.EXECUTE_SRB, srb([0, 0, 0, 0, 0, 0]), { transId: BigInt(i + 1) }));
      } catch {
        break;
      }
    }
    const sent = ids.length;
    expect(sent).toBeGreaterThan(600);
    const snapshot = r.host.stats.completions;
    r.m.runFor(100e6);
    expect(r.host.stats.completions).toBe(snapshot);
    // What the host holds: at most the completions that did not fit, one per request it read;
    // the rest stays unread in the guest's ring.
    const [q] = r.host.queues();
    expect(q!.unsent).toBeGreaterThan(0);
    expect(q!.unsent + q!.backlog + snapshot).toBeLessThanOrEqual(sent);
    expect(q!.backlog > 0 || q!.unread > 0).toBe(true);
    r.setDeaf(false);
    for (let i = 0; i < 50 && r.received.filter((p) => p.transId !== 0n).length < sent + 4; i++) {
      r.m.runFor(1e6);
      r.setDeaf(false);
    }
    expect(new Set(r.received.map((p) => p.transId)).size).toBeGreaterThanOrEqual(sent);
  });
});

describe('storvsp fed arbitrary packets', () => {
  it('never throws; each answer is a COMPLETE_IO as long as the request; the host still answers afterwards', () => {
    const r = rawMachine({ disks: [memDisk(0, MIB)] });
    const gpa = r.alloc(8192);
    let id = 1n;
    fuzz(
      'storage.storvsp-packets',
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 80 }), fc.boolean(), fc.integer({ min: 1, max: 8192 }), (payload, withRange, len) => {
        id++;
        if (withRange) r.channel.sendPacket(gpaDirect([rangeAt(gpa, len)], payload, id));
        else r.channel.sendInband(payload, id, true);
        r.m.runFor(2e5);
        const a = r.answer(id);
        if (a) {
          expect(r.opStatus(a)![0]).toBe(VstorOp.COMPLETE_IO);
          const padded = Math.ceil(payload.length / 8) * 8;
          expect(a.payload.length).toBe(Math.ceil((12 + Math.max(0, Math.min(padded - 12, 52))) / 8) * 8);
        }
      }),
      RUNS,
    );
    const a = r.answer(r.send(VstorOp.EXECUTE_SRB, srb([0, 0, 0, 0, 0, 0])));
    expect(r.opStatus(a)![0]).toBe(VstorOp.COMPLETE_IO);
  });
});
