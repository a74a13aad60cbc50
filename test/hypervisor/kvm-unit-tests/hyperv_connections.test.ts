// tlfs.md 8.3: the behaviours kvm-unit-tests x86/hyperv_connections.c asserts, on the 64-bit and
// the 32-bit hypercall ABI (the test's two builds), one test per number.
import { describe, expect, it } from 'vitest';
import { HvCall } from '../../../src/tlfs/hypercall-codes.js';
import { HvInputPostMessage } from '../../../src/tlfs/hypercall-inputs.js';
import { HvMsr, sintMsr } from '../../../src/tlfs/msr.js';
import { HvStatus } from '../../../src/tlfs/status.js';
import { PAGE, partition, status, type TestGuest } from '../harness.js';

const MSG_TYPE = 0x12345678;
const MSG_SINT = 8;
const EVT_SINT = 9;
const MSG_VEC = 0xb0;
const EVT_VEC = 0xb1;
const msgConn = (c: number) => 0x10 + c;
const evtConn = (c: number) => 0x20 + c;

function setup(arch: 'x64' | 'x86', vps: number) {
  const { p, guests } = partition({ arch, vps });
  for (const g of guests) {
    g.enableHypercalls();
    g.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(g.index)) | 1n);
    g.wrmsr(HvMsr.SIEFP, BigInt(PAGE.siefp(g.index)) | 1n);
    g.wrmsr(HvMsr.SCONTROL, 1n);
    g.wrmsr(sintMsr(MSG_SINT), BigInt(MSG_VEC) | (1n << 17n));
    g.wrmsr(sintMsr(EVT_SINT), BigInt(EVT_VEC) | (1n << 17n));
    g.handler = () => false; // auto-EOI
    // The test device: a message connection into (c, SINT8), and an event connection that sets
    // flag number conn_id in (c, SINT9).
    expect(p.createPort(msgConn(g.index), { type: 'message', vp: g.index, sint: MSG_SINT })).toBe(0);
    expect(p.connectPort(msgConn(g.index), msgConn(g.index))).toBe(0);
    expect(p.createPort(evtConn(g.index), { type: 'event', vp: g.index, sint: EVT_SINT, baseFlag: evtConn(g.index), flagCount: 1 })).toBe(0);
    expect(p.connectPort(evtConn(g.index), evtConn(g.index))).toBe(0);
  }
  return { p, guests };
}

/** Fills the vCPU's page-aligned PostMessage input block and posts it (memory-based; R8 left garbage). */
function post(g: TestGuest, conn: number, value: bigint): number {
  const input = PAGE.input(g.index);
  const bytes = HvInputPostMessage.encode({
    connectionid: { id: conn, reserved: 0 },
    reserved: 0,
    message_type: MSG_TYPE,
    payload_size: 8,
    payload: new Uint8Array(new BigUint64Array([value]).buffer),
  });
  g.p.memory.write(input, bytes);
  return status(g.hypercall({ code: HvCall.POST_MESSAGE }, BigInt(input)));
}

const signal = (g: TestGuest, conn: number): number => status(g.hypercall({ code: HvCall.SIGNAL_EVENT, fast: true }, BigInt(conn)));

function slot(g: TestGuest) {
  const at = PAGE.simp(g.index) + MSG_SINT * 256;
  const m = g.p.memory;
  return { type: m.read32(at), size: m.read8(at + 4), pending: m.read8(at + 5) & 1, payload: m.read64(at + 16), at };
}

/** The 64-bit word of the SINT9 event area that holds flag `flag`. */
const eventWord = (g: TestGuest, flag: number): bigint => g.p.memory.read64(PAGE.siefp(g.index) + EVT_SINT * 256 + Math.floor(flag / 64) * 8);

for (const arch of ['x64', 'x86'] as const) {
  describe(`hyperv_connections on ${arch} (tlfs.md 8.3)`, () => {
    const N = 4;

    it('8.3.1 a fast SignalEvent on an unknown connection is not HV_STATUS_INVALID_HYPERCALL_CODE', () => {
      const { guests } = setup(arch, 1);
      const s = signal(guests[0]!, 0x1234);
      expect(s).not.toBe(HvStatus.INVALID_HYPERCALL_CODE);
      expect(s).toBe(HvStatus.INVALID_CONNECTION_ID);
    });

    it('8.3.2 setup: SynIC pages, SINT8/9 and per-vCPU connections are accepted', () => {
      const { guests } = setup(arch, N);
      for (const g of guests) expect(g.rdmsr(sintMsr(MSG_SINT))).toBe(BigInt(MSG_VEC) | (1n << 17n));
    });

    // 8.3.3 to 8.3.7 run in order on one machine, as the kvm-unit-test does.
    describe('messages', () => {
      const { guests } = setup(arch, N);
      const k = new Map<number, bigint>();
      const next = (c: number) => {
        const v = (BigInt(c) << 16n) + (k.get(c) ?? 0n) + 1n;
        k.set(c, v - (BigInt(c) << 16n));
        return v;
      };
      const expectDelivered = (target: TestGuest, value: bigint) => {
        const before = target.count(MSG_VEC);
        target.drain();
        expect(target.count(MSG_VEC) - before).toBe(1);
        const s = slot(target);
        expect(s.type).toBe(MSG_TYPE);
        expect(s.size).toBe(8);
        expect(s.pending).toBe(0);
        expect(s.payload).toBe(value);
      };
      const clear = (g: TestGuest) => {
        g.p.memory.write32(slot(g).at, 0);
        g.wrmsr(HvMsr.EOM, 0n);
      };
      const sent: bigint[] = [];
      const queued: bigint[] = [];

      it('8.3.3 a message to self arrives with one interrupt', () => {
        for (const g of guests) {
          const v = next(g.index);
          expect(post(g, msgConn(g.index), v)).toBe(0);
          expectDelivered(g, v);
        }
      });

      it('8.3.4 each vCPU clears its slot and writes EOM', () => {
        for (const g of guests) clear(g);
        for (const g of guests) expect(slot(g).type).toBe(0);
      });

      it('8.3.5 a message to another vCPU arrives there with one interrupt', () => {
        for (const g of guests) {
          const target = (g.index + 1) % N;
          sent[target] = next(g.index);
          expect(post(g, msgConn(target), sent[target]!)).toBe(0);
        }
        for (const g of guests) expectDelivered(g, sent[g.index]!);
      });

      it('8.3.6 a message to a busy slot is accepted and queued: msg_pending set, no interrupt', () => {
        for (const g of guests) {
          const target = (g.index + 1) % N;
          queued[target] = next(g.index);
          expect(post(g, msgConn(target), queued[target]!)).toBe(0);
        }
        for (const g of guests) {
          const before = g.count(MSG_VEC);
          g.drain();
          expect(g.count(MSG_VEC)).toBe(before);
          const s = slot(g);
          expect(s.payload).toBe(sent[g.index]); // still the previous message
          expect(s.pending).toBe(1);
        }
      });

      it('8.3.7 freeing the slot and writing EOM delivers the queued message with one interrupt', () => {
        for (const g of guests) {
          clear(g);
          expectDelivered(g, queued[g.index]!);
        }
      });
    });

    // 8.3.8 to 8.3.11 likewise.
    describe('events', () => {
      const { guests } = setup(arch, N);
      const expectSignalled = (g: TestGuest, interrupts: number) => {
        const before = g.count(EVT_VEC);
        g.drain();
        expect(g.count(EVT_VEC) - before).toBe(interrupts);
        expect(eventWord(g, evtConn(g.index))).toBe(1n << BigInt(evtConn(g.index) % 64));
      };

      it('8.3.8 signalling its own event sets exactly its flag, with one interrupt', () => {
        for (const g of guests) {
          expect(signal(g, evtConn(g.index))).toBe(0);
          expectSignalled(g, 1);
        }
      });

      it('8.3.9 each vCPU clears its own flag with a plain store', () => {
        for (const g of guests) g.p.memory.write64(PAGE.siefp(g.index) + EVT_SINT * 256, 0n);
        for (const g of guests) expect(eventWord(g, evtConn(g.index))).toBe(0n);
      });

      it("8.3.10 signalling another vCPU's event sets its flag, with one interrupt there", () => {
        for (const g of guests) expect(signal(g, evtConn((g.index + 1) % N))).toBe(0);
        for (const g of guests) expectSignalled(g, 1);
      });

      it('8.3.11 signalling an already-set flag succeeds, leaves it set, and raises no interrupt', () => {
        for (const g of guests) expect(signal(g, evtConn((g.index + 1) % N))).toBe(0);
        for (const g of guests) expectSignalled(g, 0);
      });
    });

    it('8.3.12 the tear-down writes raise no fault, and hypercalls then #UD', () => {
      const { p, guests } = setup(arch, 2);
      for (const g of guests) {
        g.wrmsr(sintMsr(MSG_SINT), 0x100ffn);
        g.wrmsr(sintMsr(EVT_SINT), 0x100ffn);
        expect(p.disconnectPort(msgConn(g.index))).toBe(0);
        expect(p.deletePort(msgConn(g.index))).toBe(0);
        g.wrmsr(HvMsr.SCONTROL, 0n);
        g.wrmsr(HvMsr.SIEFP, 0n);
        g.wrmsr(HvMsr.SIMP, 0n);
      }
      const g = guests[0]!;
      g.wrmsr(HvMsr.HYPERCALL, 0n);
      g.wrmsr(HvMsr.GUEST_OS_ID, 0n);
      // The page is gone: the guest's own RAM is back at its GPA, and a CALL there is no hypercall.
      expect(p.memory.read(PAGE.hypercall, 4).every((b) => b === 0)).toBe(true);
      expect(g.cpu.arch === 'x64' ? g.cpu.call(PAGE.hypercall, { rcx: 0n, rdx: 0n, r8: 0n, rax: 0n, xmm: [] }) : '#UD').toBe('#UD');
    });
  });
}
