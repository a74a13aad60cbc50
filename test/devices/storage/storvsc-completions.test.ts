// storvsc reads each completion where the channel's reader copied it (its private buffer, as
// Linux's foreach_vmbus_pkt hands packets out) and matches it to a request by its tag. Here the
// test is the host for the guest's READs: it holds many of them, fills their pages and completes
// them in a random order, between completions that name no request in flight (the id of one that
// already completed, a tag never issued, ids with high bits, id 0, a short packet). Each request
// must get its own bytes and its own result when its completion comes, and no other; the rest
// are counted as bad packets and logged as Linux's storvsc_on_channel_callback logs them.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzz } from '../../fuzz/fuzz.js';
import type { BlockRequest } from '../../../src/devices/storage/storvsc/block.js';
import { Vstor } from '../../../src/devices/storage/srb-fields.js';
import { NtStatus, SrbStatus, VmscsiRequest, VstorOp, VSTOR_PACKET_HEADER } from '../../../src/devices/storage/wire.js';
import { guestMachine, memDisk } from './harness.js';

const BLOCK = 4096;

/** A COMPLETE_IO of a READ that moved `tx` bytes, laid out as storvsp lays its completions out. */
function completeIo(tx: number): Uint8Array {
  const p = new Uint8Array(VSTOR_PACKET_HEADER + VmscsiRequest.size);
  const dv = new DataView(p.buffer);
  dv.setUint32(Vstor.operation, VstorOp.COMPLETE_IO, true);
  dv.setUint32(Vstor.status, NtStatus.SUCCESS, true);
  p[Vstor.srbStatus] = SrbStatus.SUCCESS;
  dv.setUint32(Vstor.dataTransferLength, tx, true);
  return p;
}

const contents = (lba: number) => Uint8Array.from({ length: BLOCK }, (_, i) => (lba * 13 + i * 7) & 0xff);

describe('storvsc completions, matched by tag and read in place', () => {
  it('requests completed in any order, between completions of no request in flight, each get their own bytes and no other', () => {
    // storvsp answers everything but READ(10), which the test holds (its answer hook) and answers.
    let held = 0;
    let holding = false;
    const g = guestMachine({ disks: [memDisk(0)], storage: { answer: (op, r) => !(holding && op === VstorOp.EXECUTE_SRB && r?.payload[0] === 0x28 && ++held > 0) } });
    const sda = g.storage.disks[0]!;
    const dev = [...g.storage.driver.devices.values()][0]!;
    const ram = g.m.partition.memory;
    const host = g.host.primary;
    holding = true;
    const requests = fc.integer({ min: 1, max: 24 }).chain((n) => fc.tuple(fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }), fc.array(fc.tuple(fc.nat(n), fc.nat(6)), { maxLength: 12 })));
    fuzz(
      'storage.storvsc-completions-by-tag',
      fc.property(requests, ([order, noise]) => {
        const n = order.length;
        held = 0;
        const badBefore = dev.badPackets;
        const gpas = Array.from({ length: n }, () => g.m.kernel.mm.allocContiguous(BLOCK));
        const lbas = Array.from({ length: n }, (_, i) => 8 * (i * 37 + 5));
        const reqs: BlockRequest[] = lbas.map((lba, i) => sda.read(lba, 8, { into: ram.view(gpas[i]!, BLOCK).fill(0xee) }));
        g.m.runFor(1e6);
        // Every READ reached the host and waits there. Issued in order, they hold tags 0..n-1: ids 1..n.
        expect(held).toBe(n);
        expect(reqs.every((r) => r.result === undefined)).toBe(true);
        const done = new Set<number>();
        for (let k = 0; k <= n; k++) {
          for (const [at, kind] of noise) {
            if (at !== k) continue;
            // A completion naming no request in flight: one already completed (if any), a tag
            // never issued, ids with high bits, id 0; or a packet shorter than a vstor_packet.
            const ids = [done.size ? BigInt([...done][0]! + 1) : 0x1000n, 0x1000n, (1n << 32n) | 1n, 0xffff_ffff_0000_0001n, 0x1_0000_0000n, 0n, 1n];
            host.sendCompletion(ids[kind]!, kind === 6 ? completeIo(BLOCK).subarray(0, 20) : completeIo(BLOCK));
          }
          if (k === n) break;
          const i = order[k]!;
          ram.write(gpas[i]!, contents(lbas[i]!));
          host.sendCompletion(BigInt(i + 1), completeIo(BLOCK));
          g.m.runFor(1e5);
          done.add(i);
          const r = reqs[i]!.result;
          expect(r?.ok && [...r.data!]).toEqual([...contents(lbas[i]!)]);
          for (let j = 0; j < n; j++) if (!done.has(j)) expect(reqs[j]!.result).toBeUndefined();
        }
        g.m.runFor(1e5);
        expect(dev.badPackets - badBefore).toBe(noise.length);
        expect(dev.outstanding).toBe(0);
        for (const gpa of gpas) g.m.kernel.mm.freeContiguous(gpa, BLOCK);
      }),
      40,
    );
    const lines = g.lines();
    for (const what of ['Incorrect transaction ID', 'Invalid packet with ID of 0', 'Invalid pkt: id=1, len=24, minlen=64']) expect(lines.some((l) => l.endsWith(`: ${what}`))).toBe(true);
    // The host answers again: the disk reads.
    holding = false;
    const r = sda.read(0, 8);
    g.m.waitUntil(() => r.result !== undefined, 1e9);
    expect(r.result?.ok).toBe(true);
  });

  it("a command is handed out again only after its request completed: reads issued while others are in flight, completed in any order, each get their own bytes", () => {
    // storvsp holds every READ(10), noting its LBA and transaction id; the test completes them.
    const held = new Map<number, bigint>();
    let holding = false;
    const g = guestMachine({
      disks: [memDisk(0)],
      storage: {
        answer: (op, r, transId) => {
          if (!(holding && op === VstorOp.EXECUTE_SRB && r?.payload[0] === 0x28)) return true;
          held.set(new DataView(r.payload.buffer, r.payload.byteOffset).getUint32(2), transId);
          return false;
        },
      },
    });
    const sda = g.storage.disks[0]!;
    const dev = [...g.storage.driver.devices.values()][0]!;
    const ram = g.m.partition.memory;
    holding = true;
    const waves = fc.array(fc.tuple(fc.integer({ min: 1, max: 12 }), fc.nat()), { minLength: 1, maxLength: 5 });
    let nextLba = 8;
    fuzz(
      'storage.storvsc-commands-reused',
      fc.property(waves, fc.nat(), (wavesOf, seed) => {
        const inFlight: { lba: number; gpa: number; req: BlockRequest }[] = [];
        let rnd = seed;
        const pick = (n: number) => {
          rnd = (rnd * 1103515245 + 12345) >>> 0;
          return rnd % n;
        };
        for (const [count, completeNow] of wavesOf) {
          // A wave of reads joins those in flight (their commands come from the pool, given back by
          // the requests completed before)...
          for (let i = 0; i < count; i++) {
            const lba = (nextLba = (nextLba + 8 * 37) % (64 * 2048 - 8));
            const gpa = g.m.kernel.mm.allocContiguous(BLOCK);
            inFlight.push({ lba, gpa, req: sda.read(lba, 8, { into: ram.view(gpa, BLOCK).fill(0xee) }) });
          }
          g.m.runFor(1e6);
          // ...then some of all those in flight complete, in a random order.
          for (let k = completeNow % (inFlight.length + 1); k > 0; k--) {
            const [r] = inFlight.splice(pick(inFlight.length), 1);
            const id = held.get(r!.lba)!;
            expect(r!.req.result).toBeUndefined();
            ram.write(r!.gpa, contents(r!.lba));
            g.host.primary.sendCompletion(id, completeIo(BLOCK));
            g.m.runFor(1e5);
            const res = r!.req.result;
            expect(res?.ok && [...res.data!]).toEqual([...contents(r!.lba)]);
            for (const o of inFlight) expect(o.req.result).toBeUndefined();
            g.m.kernel.mm.freeContiguous(r!.gpa, BLOCK);
          }
        }
        // The rest complete, in a random order.
        while (inFlight.length) {
          const [r] = inFlight.splice(pick(inFlight.length), 1);
          ram.write(r!.gpa, contents(r!.lba));
          g.host.primary.sendCompletion(held.get(r!.lba)!, completeIo(BLOCK));
          g.m.runFor(1e5);
          const res = r!.req.result;
          expect(res?.ok && [...res.data!]).toEqual([...contents(r!.lba)]);
          g.m.kernel.mm.freeContiguous(r!.gpa, BLOCK);
        }
        expect(dev.outstanding).toBe(0);
        held.clear();
      }),
      30,
    );
    expect(dev.badPackets).toBe(0);
  });
});
