// The hypercall ABIs (tlfs.md §3.2, §4.1-§4.7), the validation order of §4.9, rep continuation
// (§4.6), and the semantics and statuses of each call a Linux guest issues (§4.12, §5.8).
import { describe, expect, it } from 'vitest';
import type { Arm64Port, X64Port, X86_32Port } from '../../src/hypervisor/cpu.js';
import type { TraceEvent } from '../../src/hypervisor/trace.js';
import { encodeControl } from '../../src/tlfs/control.js';
import { HvCall, HvExtCall } from '../../src/tlfs/hypercall-codes.js';
import { HvInputPostMessage } from '../../src/tlfs/hypercall-inputs.js';
import { HvMsr, sintMsr } from '../../src/tlfs/msr.js';
import { HvRegister, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, sintRegister } from '../../src/tlfs/registers.js';
import { HvStatus } from '../../src/tlfs/status.js';
import { PAGE, partition, repsCompleted, status, type TestGuest } from './harness.js';

const S = HvStatus;

/** WS2025 by default: its x86 guests may use Get/SetVpRegisters (privilege bit 17), WS2022's may not. */
function ready(config: Parameters<typeof partition>[0] = {}) {
  const r = partition({ release: 'ws2025', ...config });
  for (const g of r.guests) if (g.cpu.arch !== 'arm64') g.enableHypercalls();
  return r;
}

/** Writes a GetVpRegisters input naming `names` into the VP's input page. */
function getRegsInput(g: TestGuest, names: number[], vpIndex = HV_VP_INDEX_SELF): bigint {
  const at = PAGE.input(g.index);
  g.p.memory.fill(at, 4096);
  g.p.memory.write64(at, HV_PARTITION_ID_SELF);
  g.p.memory.write32(at + 8, vpIndex);
  names.forEach((n, i) => g.p.memory.write32(at + 16 + 4 * i, n));
  return BigInt(at);
}

function postInput(g: TestGuest, o: { conn?: number; type?: number; size?: number; reserved?: number; payload?: number[] } = {}): bigint {
  const at = PAGE.input(g.index);
  g.p.memory.write(
    at,
    HvInputPostMessage.encode({
      connectionid: { id: o.conn ?? 1, reserved: 0 },
      reserved: o.reserved ?? 0,
      message_type: o.type ?? 1,
      payload_size: o.size ?? 4,
      payload: new Uint8Array(o.payload ?? [1, 2, 3, 4]),
    }),
  );
  return BigInt(at);
}

function events(g: TestGuest): TraceEvent[] {
  const out: TraceEvent[] = [];
  g.p.events.on((e) => out.push(e));
  return out;
}

describe('validation order (tlfs.md 4.9)', () => {
  it('unknown code, then privilege, then reserved bits, then shape, then the blocks', () => {
    const { guests } = ready({ features: { privilegesHigh: 0 } });
    const g = guests[0]!;
    const rsvd = 1n << 28n;
    // An unknown code wins over reserved bits.
    expect(status(g.hypercall({ code: 0x7777 }) | 0n)).toBe(S.INVALID_HYPERCALL_CODE);
    expect(status(g.hypercall({ code: 0x00ff }))).toBe(S.INVALID_HYPERCALL_CODE);
    // A call the partition may not make is ACCESS_DENIED, whatever else is wrong with it.
    const cpu = g.cpu as X64Port;
    const regs = { rcx: encodeControl({ code: HvCall.POST_MESSAGE }) | rsvd, rdx: 3n, r8: 0n, rax: 0n, xmm: [] };
    cpu.vmcall(regs);
    expect(status(regs.rax)).toBe(S.ACCESS_DENIED);
  });

  it('reserved control bits, the nested bit, and rep fields on a simple call are INVALID_HYPERCALL_INPUT', () => {
    const { guests } = ready();
    const g = guests[0]!;
    const cpu = g.cpu as X64Port;
    const call = (rcx: bigint, rdx = 0n) => {
      const regs = { rcx, rdx, r8: 0n, rax: 0n, xmm: [] };
      cpu.vmcall(regs);
      return status(regs.rax);
    };
    const signal = encodeControl({ code: HvCall.SIGNAL_EVENT, fast: true });
    for (const bit of [27n, 30n, 31n, 44n, 47n, 60n, 63n]) expect(call(signal | (1n << bit)), `bit ${bit}`).toBe(S.INVALID_HYPERCALL_INPUT);
    expect(call(signal | (1n << 32n))).toBe(S.INVALID_HYPERCALL_INPUT); // rep count on a simple call
    expect(call(signal | (1n << 48n))).toBe(S.INVALID_HYPERCALL_INPUT); // rep start on a simple call
    expect(call(signal | (1n << 17n))).toBe(S.INVALID_HYPERCALL_INPUT); // a variable header it does not take
    const getRegs = encodeControl({ code: HvCall.GET_VP_REGISTERS });
    expect(call(getRegs)).toBe(S.INVALID_HYPERCALL_INPUT); // rep count 0
    expect(call(encodeControl({ code: HvCall.GET_VP_REGISTERS, repCount: 2, repStart: 2 }))).toBe(S.INVALID_HYPERCALL_INPUT);
    expect(call(encodeControl({ code: HvCall.POST_MESSAGE, fast: true }))).toBe(S.INVALID_HYPERCALL_INPUT);
  });

  it('input and output blocks: 8-byte aligned, inside RAM, within a page, not an overlay (INVALID_ALIGNMENT)', () => {
    const { p, guests } = ready();
    const g = guests[0]!;
    const names = [HvRegister.VP_INDEX];
    const input = getRegsInput(g, names);
    const call = (inGpa: bigint, outGpa: bigint) => status(g.hypercall({ code: HvCall.GET_VP_REGISTERS, repCount: 1 }, inGpa, outGpa));
    const out = BigInt(PAGE.output(0));
    expect(call(input, out)).toBe(0);
    expect(call(input + 4n, out)).toBe(S.INVALID_ALIGNMENT);
    expect(call(input, out + 4n)).toBe(S.INVALID_ALIGNMENT);
    expect(call(input + 4088n, out)).toBe(S.INVALID_ALIGNMENT); // 20 bytes across a page boundary
    expect(call(input, out + 4088n)).toBe(S.INVALID_ALIGNMENT);
    expect(call(BigInt(p.memory.size), out)).toBe(S.INVALID_ALIGNMENT);
    expect(call(input, (1n << 64n) - 8n)).toBe(S.INVALID_ALIGNMENT);
    expect(call(BigInt(PAGE.hypercall), out)).toBe(S.INVALID_ALIGNMENT); // the hypercall overlay
    expect(call(input, input + 8n)).toBe(S.INVALID_ALIGNMENT); // output overlapping the input
    // A call without output ignores the output GPA (kvm-unit-tests leaves R8 uninitialised).
    expect(status(g.hypercall({ code: HvCall.POST_MESSAGE }, postInput(g), 0x1234_5678_9abc_def1n))).toBe(S.INVALID_CONNECTION_ID);
  });

  it('VMCALL without an enabled hypercall page is #UD, and a CALL into plain RAM is no hypercall', () => {
    const { guests } = partition();
    const cpu = guests[0]!.cpu as X64Port;
    const regs = { rcx: encodeControl({ code: HvCall.SIGNAL_EVENT, fast: true }), rdx: 0n, r8: 0n, rax: 0n, xmm: [] };
    expect(cpu.vmcall(regs)).toBe('#UD');
    expect(cpu.call(PAGE.hypercall, regs)).toBe('#UD');
    expect(cpu.call(1 << 30, regs)).toBe('#GP');
  });
});

describe('rep calls and continuation (tlfs.md 4.6)', () => {
  const NAMES = Array.from({ length: 100 }, (_, i) => (i % 2 ? HvRegister.VP_INDEX : sintRegister(i % 16)));

  it('transparent continuation: one CALL, several traps, RCX rep start advanced, all outputs written', () => {
    const { p, guests } = ready({ repQuantum: 8, vps: 2 });
    const g = guests[1]!;
    const seen = events(g);
    const cpu = g.cpu as X64Port;
    const regs = { rcx: encodeControl({ code: HvCall.GET_VP_REGISTERS, repCount: 100 }), rdx: getRegsInput(g, NAMES), r8: BigInt(PAGE.output(1)), rax: 0n, xmm: [] };
    expect(cpu.call(PAGE.hypercall, regs)).toBeUndefined();
    expect(status(regs.rax)).toBe(0);
    expect(repsCompleted(regs.rax)).toBe(100);
    expect(Number((regs.rcx >> 48n) & 0xfffn)).toBe(96); // the last re-execution started at 96
    expect(seen.filter((e) => e.kind === 'trap' && e.what === 'hypercall')).toHaveLength(13);
    for (let i = 0; i < 100; i++) expect(p.memory.read64(PAGE.output(1) + 16 * i)).toBe(i % 2 ? 1n : 0x10000n);
  });

  it("partial completion: SUCCESS with fewer reps, which Linux's hv_do_rep_hypercall loop re-issues", () => {
    const { p, guests } = ready({ repQuantum: 8, repContinuation: 'partial' });
    const g = guests[0]!;
    const input = getRegsInput(g, NAMES);
    let start = 0;
    let calls = 0;
    for (;;) {
      const r = g.hypercall({ code: HvCall.GET_VP_REGISTERS, repCount: 100, repStart: start }, input, BigInt(PAGE.output(0)));
      calls++;
      expect(status(r)).toBe(0);
      if (repsCompleted(r) === 100) break;
      expect(repsCompleted(r)).toBe(start + 8);
      start = repsCompleted(r);
    }
    expect(calls).toBe(13);
    expect(p.memory.read64(PAGE.output(0) + 16 * 99)).toBe(0n);
  });

  it('an element error stops the call: its status, reps completed = its index, later outputs untouched', () => {
    const { p, guests } = ready();
    const g = guests[0]!;
    p.memory.fill(PAGE.output(0), 4096, 0xaa);
    const names = [HvRegister.VP_INDEX, HvRegister.SVERSION, 0x0bad0, HvRegister.VP_INDEX];
    const r = g.hypercall({ code: HvCall.GET_VP_REGISTERS, repCount: 4 }, getRegsInput(g, names), BigInt(PAGE.output(0)));
    expect(status(r)).toBe(S.INVALID_PARAMETER);
    expect(repsCompleted(r)).toBe(2);
    expect(p.memory.read64(PAGE.output(0) + 16)).toBe(1n);
    expect(p.memory.read8(PAGE.output(0) + 32)).toBe(0xaa);
  });

  it('a block error on a continued call reports the rep start as reps completed', () => {
    const { guests } = ready();
    const g = guests[0]!;
    const r = g.hypercall({ code: HvCall.GET_VP_REGISTERS, repCount: 5, repStart: 3 }, getRegsInput(g, [1, 2, 3, 4, 5]) + 4n, BigInt(PAGE.output(0)));
    expect([status(r), repsCompleted(r)]).toEqual([S.INVALID_ALIGNMENT, 3]);
  });

  it('an element that disables hypercalls ends the continuation with #UD, as the re-executed VMCALL would', () => {
    const { p, guests } = ready({ repQuantum: 1 });
    const g = guests[0]!;
    const at = PAGE.input(0);
    p.memory.fill(at, 4096);
    p.memory.write64(at, HV_PARTITION_ID_SELF);
    p.memory.write32(at + 8, HV_VP_INDEX_SELF);
    // Two elements: GUEST_OS_ID = 0 (which disables the hypercall page), then SCONTROL = 1.
    p.memory.write32(at + 16, HvRegister.GUEST_OS_ID);
    p.memory.write32(at + 48, HvRegister.SCONTROL);
    p.memory.write64(at + 64, 1n);
    const cpu = g.cpu as X64Port;
    const regs = { rcx: encodeControl({ code: HvCall.SET_VP_REGISTERS, repCount: 2 }), rdx: BigInt(at), r8: 0n, rax: 0n, xmm: [] };
    expect(cpu.call(PAGE.hypercall, regs)).toBe('#UD');
    expect(p.guestOsId).toBe(0n);
    expect(p.vps[0]!.synic.scontrol).toBe(0n);
  });

  it('a rep start above 0 skips the first elements and writes output from that element on', () => {
    const { p, guests } = ready();
    const g = guests[0]!;
    p.memory.fill(PAGE.output(0), 4096, 0xaa);
    const r = g.hypercall({ code: HvCall.GET_VP_REGISTERS, repCount: 3, repStart: 2 }, getRegsInput(g, [0x0bad0, 0x0bad1, HvRegister.SVERSION]), BigInt(PAGE.output(0)));
    expect(status(r)).toBe(0);
    expect(repsCompleted(r)).toBe(3);
    expect(p.memory.read8(PAGE.output(0))).toBe(0xaa);
    expect(p.memory.read64(PAGE.output(0) + 32)).toBe(1n);
  });
});

describe('fast calls and the register ABIs', () => {
  it('x64 XMM fast input carries a 24-byte flush header; without the feature it is INVALID_HYPERCALL_INPUT', () => {
    for (const [misc, want] of [[undefined, S.SUCCESS], [0, S.INVALID_HYPERCALL_INPUT]] as const) {
      const { guests } = ready(misc === undefined ? {} : { features: { misc } });
      const cpu = guests[0]!.cpu as X64Port;
      // address space in RDX, flags in R8 (ALL_PROCESSORS), processor mask in XMM0 low.
      const regs = { rcx: encodeControl({ code: HvCall.FLUSH_VIRTUAL_ADDRESS_SPACE, fast: true }), rdx: 0x1000n, r8: 1n, rax: 0n, xmm: [3n, 0n] };
      cpu.vmcall(regs);
      expect(status(regs.rax)).toBe(want);
    }
  });

  it('x64 XMM fast output lands in the register pair after the input', () => {
    const { guests } = ready({ vps: 2 });
    const cpu = guests[1]!.cpu as X64Port;
    // GetVpRegisters, rep 1: 16-byte header in RDX:R8, the name in XMM0 low; output at XMM1.
    const regs = { rcx: encodeControl({ code: HvCall.GET_VP_REGISTERS, fast: true, repCount: 1 }), rdx: HV_PARTITION_ID_SELF, r8: BigInt(HV_VP_INDEX_SELF), rax: 0n, xmm: [BigInt(HvRegister.VP_INDEX), 0n, 0n, 0n] };
    cpu.vmcall(regs);
    expect(status(regs.rax)).toBe(0);
    expect(regs.xmm.slice(2, 4)).toEqual([1n, 0n]);
  });

  it('x86-32: EDX:EAX control and result, EBX:ECX input, EDI:ESI output', () => {
    const { p, guests } = ready({ arch: 'x86', vps: 2, apicIds: [7, 9] });
    const g = guests[0]!;
    const at = PAGE.input(0);
    p.memory.write64(at, HV_PARTITION_ID_SELF);
    p.memory.write32(at + 16, 9);
    p.memory.write32(at + 20, 7);
    const cpu = g.cpu as X86_32Port;
    const ctl = encodeControl({ code: HvCall.GET_VP_ID_FROM_APIC_ID, repCount: 2 });
    const regs = { edx: Number(ctl >> 32n), eax: Number(ctl & 0xffffffffn), ebx: 0, ecx: at, edi: 0, esi: PAGE.output(0) };
    expect(cpu.call(PAGE.hypercall, regs)).toBeUndefined();
    expect(regs.eax & 0xffff).toBe(0);
    expect(regs.edx & 0xfff).toBe(2); // reps completed in EDX bits 43:32 of the result
    expect([p.memory.read32(PAGE.output(0)), p.memory.read32(PAGE.output(0) + 4)]).toEqual([1, 0]);
  });

  it('arm64 SMCCC: the function id, the vendor UID and the SMCCC version answer as Linux expects', () => {
    const { guests } = ready({ arch: 'arm64' });
    const cpu = guests[0]!.cpu as Arm64Port;
    const x = [0x8600ff01n];
    cpu.hvc(0, { x });
    expect(x.slice(0, 4)).toEqual([0x4d32ba58n, 0xcd244764n, 0x8eef6c75n, 0x16597024n]);
    const v = [0x80000000n];
    cpu.hvc(0, { x: v });
    expect(v[0]).toBe(0x10002n);
    const bad = [0x46000002n];
    cpu.hvc(0, { x: bad });
    expect(bad[0]).toBe((1n << 64n) - 1n); // SMCCC NOT_SUPPORTED
    expect(cpu.hvc(1, { x: [] })).toBe('#UD');
  });
});

describe('HvCallPostMessage (tlfs.md 4.12.1, 5.8)', () => {
  function withPort() {
    const r = ready({ vps: 2, messageQueueDepth: 4 });
    const [g0, g1] = r.guests as [TestGuest, TestGuest];
    g1.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(1)) | 1n);
    g1.wrmsr(HvMsr.SCONTROL, 1n);
    g1.wrmsr(sintMsr(2), 0x50n);
    r.p.createPort(0x40, { type: 'message', vp: 1, sint: 2 });
    r.p.connectPort(0x41, 0x40);
    return { ...r, g0, g1 };
  }
  const post = (g: TestGuest, o: Parameters<typeof postInput>[1]) => status(g.hypercall({ code: HvCall.POST_MESSAGE }, postInput(g, o)));

  it('answers each bad input with its status', () => {
    const { p, g0, g1 } = withPort();
    expect(post(g0, { conn: 0x41 })).toBe(S.SUCCESS);
    expect(post(g0, { conn: 0x41, type: 0 })).toBe(S.INVALID_PARAMETER);
    expect(post(g0, { conn: 0x41, type: 0x80000001 })).toBe(S.INVALID_PARAMETER);
    expect(post(g0, { conn: 0x41, size: 241 })).toBe(S.INVALID_PARAMETER);
    expect(post(g0, { conn: 0x41, reserved: 1 })).toBe(S.INVALID_HYPERCALL_INPUT);
    expect(post(g0, { conn: 0x99 })).toBe(S.INVALID_CONNECTION_ID);
    p.memory.write8(PAGE.input(0) + 3, 1); // connection id reserved byte
    expect(status(g0.hypercall({ code: HvCall.POST_MESSAGE }, BigInt(PAGE.input(0))))).toBe(S.INVALID_HYPERCALL_INPUT);
    g1.wrmsr(sintMsr(2), 0x10050n);
    expect(post(g0, { conn: 0x41 })).toBe(S.INVALID_SYNIC_STATE);
    p.deletePort(0x40);
    expect(post(g0, { conn: 0x41 })).toBe(S.INVALID_PORT_ID);
    p.createPort(0x40, { type: 'event', vp: 1, sint: 2, baseFlag: 0, flagCount: 1 });
    expect(post(g0, { conn: 0x41 })).toBe(S.INVALID_PORT_ID); // wrong port type
  });

  it('queues behind a busy slot until the queue is full: INSUFFICIENT_BUFFERS, and nothing is lost', () => {
    const { p, g0, g1 } = withPort();
    const results = Array.from({ length: 7 }, (_, i) => post(g0, { conn: 0x41, payload: [i] }));
    // One in the slot, four queued, then back-pressure.
    expect(results).toEqual([0, 0, 0, 0, 0, S.INSUFFICIENT_BUFFERS, S.INSUFFICIENT_BUFFERS]);
    const got: number[] = [];
    for (let i = 0; i < 5; i++) {
      const slot = PAGE.simp(1) + 2 * 256;
      got.push(p.memory.read8(slot + 16));
      expect(p.memory.read8(slot + 5) & 1).toBe(i < 4 ? 1 : 0);
      p.memory.write32(slot, 0);
      g1.wrmsr(HvMsr.EOM, 0n);
    }
    expect(got).toEqual([0, 1, 2, 3, 4]);
  });

  it('a host port receives the message and its status goes back to the guest', () => {
    const { p, g0 } = withPort();
    const seen: { type: number; bytes: number[]; vp: number }[] = [];
    p.createPort(0x1, { type: 'host-message', handler: (m) => (seen.push({ type: m.type, bytes: [...m.payload], vp: m.vp }), seen.length > 1 ? S.INSUFFICIENT_BUFFERS : 0) });
    p.connectPort(0x4, 0x1);
    expect(post(g0, { conn: 4, type: 1, size: 3, payload: [9, 8, 7, 6] })).toBe(0);
    expect(post(g0, { conn: 4 })).toBe(S.INSUFFICIENT_BUFFERS);
    expect(seen[0]).toEqual({ type: 1, bytes: [9, 8, 7], vp: 0 });
  });

  it('without the post-messages privilege: ACCESS_DENIED', () => {
    const { guests } = ready({ features: { privilegesHigh: 0x20 } });
    expect(post(guests[0]!, { conn: 1 })).toBe(S.ACCESS_DENIED);
  });
});

describe('HvCallSignalEvent (tlfs.md 4.12.2, 5.6)', () => {
  it('flag range, reserved bits, SynIC state, host ports', () => {
    const { p, guests } = ready({ vps: 2 });
    const g = guests[0]!;
    const sig = (q: bigint) => status(g.hypercall({ code: HvCall.SIGNAL_EVENT, fast: true }, q));
    p.createPort(0x50, { type: 'event', vp: 1, sint: 2, baseFlag: 10, flagCount: 2 });
    p.connectPort(0x51, 0x50);
    expect(sig(0x51n)).toBe(S.INVALID_SYNIC_STATE); // VP 1 has no SynIC yet (TLFS)
    guests[1]!.wrmsr(HvMsr.SIEFP, BigInt(PAGE.siefp(1)) | 1n);
    guests[1]!.wrmsr(HvMsr.SCONTROL, 1n);
    guests[1]!.wrmsr(sintMsr(2), 0x60n);
    expect(sig(0x51n | (1n << 32n))).toBe(S.SUCCESS);
    expect(p.memory.read8(PAGE.siefp(1) + 2 * 256 + 1)).toBe(1 << 3); // flag 11
    expect(sig(0x51n | (2n << 32n))).toBe(S.INVALID_PARAMETER);
    expect(sig(0x51n | (1n << 24n))).toBe(S.INVALID_HYPERCALL_INPUT);
    expect(sig(0x51n | (1n << 48n))).toBe(S.INVALID_HYPERCALL_INPUT);
    const flags: number[] = [];
    p.createPort(0x2, { type: 'host-event', flagCount: 1, handler: (f) => flags.push(f) });
    p.connectPort(0x2, 0x2);
    expect(sig(0x2n)).toBe(0);
    expect(flags).toEqual([0]);
    // The memory (slow) form carries the same qword.
    p.memory.write64(PAGE.input(0), 0x2n);
    expect(status(g.hypercall({ code: HvCall.SIGNAL_EVENT }, BigInt(PAGE.input(0))))).toBe(0);
    expect(flags).toEqual([0, 0]);
  });

  it('without the signal-events privilege: ACCESS_DENIED, fast or not, also when calls alternate with a partition that has it', () => {
    const withIt = ready();
    const without = ready({ features: { privilegesHigh: 0x10 } }); // post messages only
    const flags: string[] = [];
    for (const [name, r] of [['with', withIt], ['without', without]] as const) {
      r.p.createPort(0x2, { type: 'host-event', flagCount: 1, handler: () => flags.push(name) });
      r.p.connectPort(0x2, 0x2);
    }
    const sig = (r: typeof withIt) => status(r.guests[0]!.hypercall({ code: HvCall.SIGNAL_EVENT, fast: true }, 0x2n));
    for (let i = 0; i < 3; i++) {
      expect(sig(withIt)).toBe(S.SUCCESS);
      expect(sig(without)).toBe(S.ACCESS_DENIED);
    }
    without.p.memory.write64(PAGE.input(0), 0x2n);
    expect(status(without.guests[0]!.hypercall({ code: HvCall.SIGNAL_EVENT }, BigInt(PAGE.input(0))))).toBe(S.ACCESS_DENIED);
    expect(flags).toEqual(['with', 'with', 'with']);
  });
});

describe('processor sets: TLB flushes and cluster IPIs (tlfs.md 4.12.3-4.12.5)', () => {
  it('flushes report whom they reached; bad flags and sets are refused; without the hint ACCESS_DENIED', () => {
    const { p, guests } = ready({ vps: 4 });
    const g = guests[0]!;
    const seen = events(g);
    const at = PAGE.input(0);
    const flush = (flags: bigint, mask: bigint) => {
      p.memory.write64(at, 0x1000n);
      p.memory.write64(at + 8, flags);
      p.memory.write64(at + 16, mask);
      return status(g.hypercall({ code: HvCall.FLUSH_VIRTUAL_ADDRESS_SPACE }, BigInt(at)));
    };
    expect(flush(0n, 0b1010n)).toBe(0);
    expect(flush(1n, 0n)).toBe(0);
    expect(flush(1n << 5n, 0n)).toBe(S.INVALID_PARAMETER);
    expect(seen.filter((e) => e.kind === 'tlb-flush').map((e) => (e as { targets: unknown }).targets)).toEqual([[1, 3], 'all']);
    // The list form: rep count = GVA ranges.
    p.memory.write64(at + 8, 0n);
    expect(repsCompleted(g.hypercall({ code: HvCall.FLUSH_VIRTUAL_ADDRESS_LIST, repCount: 3 }, BigInt(at)))).toBe(3);
    // Ex form with a sparse set: banks in the variable header, which must match the mask.
    const ex = (varHead: number, format: bigint, mask: bigint, banks: bigint[]) => {
      p.memory.fill(at, 4096);
      p.memory.write64(at + 16, format);
      p.memory.write64(at + 24, mask);
      banks.forEach((b, i) => p.memory.write64(at + 32 + 8 * i, b));
      return status(g.hypercall({ code: HvCall.FLUSH_VIRTUAL_ADDRESS_SPACE_EX, varHeadSize: varHead }, BigInt(at)));
    };
    expect(ex(1, 0n, 1n, [0b100n])).toBe(0);
    expect(ex(2, 0n, 1n, [0b100n, 0n])).toBe(S.INVALID_HYPERCALL_INPUT);
    expect(ex(0, 1n, 0n, [])).toBe(0);
    expect(ex(0, 1n, 1n, [])).toBe(S.INVALID_HYPERCALL_INPUT); // format ALL with a bank mask
    expect(ex(0, 2n, 0n, [])).toBe(S.INVALID_PARAMETER);
    const none = ready({ features: { hints: 0 } });
    const gn = none.guests[0]!;
    expect(status(gn.hypercall({ code: HvCall.FLUSH_VIRTUAL_ADDRESS_SPACE, fast: true }))).toBe(S.ACCESS_DENIED);
  });

  it('SendSyntheticClusterIpi raises the vector on each target; Ex reaches VP indices above 63', () => {
    const { p, guests } = ready({ release: 'ws2016', vps: 70 });
    const g = guests[0]!;
    const ipi = (vector: number, mask: bigint) => status(g.hypercall({ code: HvCall.SEND_IPI, fast: true }, BigInt(vector), mask));
    expect(ipi(0x40, 0b110n)).toBe(0);
    expect([1, 2, 3].map((i) => p.vps[i]!.apic.isPending(0x40))).toEqual([true, true, false]);
    expect(ipi(0x0f, 1n)).toBe(S.INVALID_HYPERCALL_INPUT);
    expect(ipi(0x100, 1n)).toBe(S.INVALID_HYPERCALL_INPUT);
    expect(status(g.hypercall({ code: HvCall.SEND_IPI, fast: true }, 0x40n | (1n << 32n), 1n))).toBe(S.INVALID_HYPERCALL_INPUT);
    const at = PAGE.input(0);
    p.memory.write32(at, 0x41);
    p.memory.write64(at + 8, 0n);
    p.memory.write64(at + 16, 0b10n); // bank 1: VP indices 64..127
    p.memory.write64(at + 24, 0b10n); // VP 65
    expect(status(g.hypercall({ code: HvCall.SEND_IPI_EX, varHeadSize: 1 }, BigInt(at)))).toBe(0);
    expect(p.vps[65]!.apic.isPending(0x41)).toBe(true);
    expect(p.vps[64]!.apic.isPending(0x41)).toBe(false);
  });

  it('NotifyLongSpinWait succeeds while the spin hint asks for notifications', () => {
    expect(status(ready().guests[0]!.hypercall({ code: HvCall.NOTIFY_LONG_SPIN_WAIT, fast: true }, 0xfffn))).toBe(0);
    expect(status(ready({ features: { spinRetries: 0xffffffff } }).guests[0]!.hypercall({ code: HvCall.NOTIFY_LONG_SPIN_WAIT, fast: true }, 1n))).toBe(S.ACCESS_DENIED);
  });
});

describe('partition calls', () => {
  it('HvCallGetPartitionId needs the privilege, then writes the id', () => {
    expect(status(ready().guests[0]!.hypercall({ code: HvCall.GET_PARTITION_ID }, 0n, BigInt(PAGE.output(0))))).toBe(S.ACCESS_DENIED);
    const { p, guests } = ready({ features: { privilegesHigh: 0x32 }, partitionId: 0x1234n });
    expect(status(guests[0]!.hypercall({ code: HvCall.GET_PARTITION_ID }, 0n, BigInt(PAGE.output(0))))).toBe(0);
    expect(p.memory.read64(PAGE.output(0))).toBe(0x1234n);
  });

  it('HvCallGetVpIndexFromApicId maps a permuted APIC numbering; an unknown APIC id stops it', () => {
    const { p, guests } = ready({ vps: 3, apicIds: [10, 20, 30] });
    const g = guests[0]!;
    const at = PAGE.input(0);
    p.memory.write64(at, HV_PARTITION_ID_SELF);
    [30, 10, 99].forEach((a, i) => p.memory.write32(at + 16 + 4 * i, a));
    const r = g.hypercall({ code: HvCall.GET_VP_ID_FROM_APIC_ID, repCount: 3 }, BigInt(at), BigInt(PAGE.output(0)));
    expect(status(r)).toBe(S.INVALID_PARAMETER);
    expect(repsCompleted(r)).toBe(2);
    expect([p.memory.read32(PAGE.output(0)), p.memory.read32(PAGE.output(0) + 4)]).toEqual([2, 0]);
  });

  it('HvCallModifySparseGpaPageHostVisibility: isolated partitions only; records visibility per 4 KiB page', () => {
    const at = BigInt(PAGE.input(0));
    expect(status(ready().guests[0]!.hypercall({ code: HvCall.MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY, repCount: 1 }, at))).toBe(S.ACCESS_DENIED);
    const { p, guests } = ready({ isolation: { type: 'snp', paravisor: true, sharedGpaBoundaryBits: 0 } });
    const g = guests[0]!;
    const vis = (v: number, gpns: number[]) => {
      p.memory.write64(Number(at), HV_PARTITION_ID_SELF);
      p.memory.write32(Number(at) + 8, v);
      gpns.forEach((n, i) => p.memory.write64(Number(at) + 16 + 8 * i, BigInt(n)));
      return g.hypercall({ code: HvCall.MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY, repCount: gpns.length }, at);
    };
    expect(status(vis(3, [5, 6]))).toBe(0);
    expect([p.hostVisibility.get(5), p.hostVisibility.get(6)]).toEqual([3, 3]);
    expect(status(vis(2, [5]))).toBe(S.INVALID_PARAMETER);
    const r = vis(0, [5, 1 << 30]);
    expect([status(r), repsCompleted(r)]).toEqual([S.INVALID_PARAMETER, 1]);
    expect(p.hostVisibility.has(5)).toBe(false);
  });

  it('HvCallRetargetDeviceInterrupt: known devices only; a processor set in the variable header', () => {
    const { p, guests } = ready({ vps: 4 });
    const g = guests[0]!;
    const at = PAGE.input(0);
    const retarget = (device: bigint, flags: number, sets: bigint[], varHead: number) => {
      p.memory.fill(at, 4096);
      p.memory.write64(at, HV_PARTITION_ID_SELF);
      p.memory.write64(at + 8, device);
      p.memory.write32(at + 16, 1); // MSI
      p.memory.write32(at + 40, 0x30);
      p.memory.write32(at + 44, flags);
      sets.forEach((q, i) => p.memory.write64(at + 48 + 8 * i, q));
      return status(g.hypercall({ code: HvCall.RETARGET_INTERRUPT, varHeadSize: varHead }, BigInt(at)));
    };
    expect(retarget(7n, 0, [0b11n], 0)).toBe(S.INVALID_DEVICE_ID);
    p.deviceInterrupts.set(7n, undefined);
    expect(retarget(7n, 0, [0b11n], 0)).toBe(0);
    expect(p.deviceInterrupts.get(7n)).toEqual({ vector: 0x30, targets: [0, 1] });
    expect(retarget(7n, 2, [0n, 1n, 0b1000n], 2)).toBe(0);
    expect(p.deviceInterrupts.get(7n)).toEqual({ vector: 0x30, targets: [3] });
    expect(retarget(7n, 2, [0n, 1n, 0b1000n], 3)).toBe(S.INVALID_HYPERCALL_INPUT);
    expect(retarget(7n, 0, [1n], 1)).toBe(S.INVALID_HYPERCALL_INPUT);
    expect(retarget(7n, 8, [1n], 0)).toBe(S.INVALID_PARAMETER);
  });

  it('HvExtCallQueryCapabilities reports no extended calls; its fast form is refused', () => {
    const { p, guests } = ready();
    const g = guests[0]!;
    p.memory.write64(PAGE.output(0), 0xffn);
    expect(status(g.hypercall({ code: HvExtCall.QUERY_CAPABILITIES }, 0n, BigInt(PAGE.output(0))))).toBe(0);
    expect(p.memory.read64(PAGE.output(0))).toBe(0n);
    expect(status(g.hypercall({ code: HvExtCall.QUERY_CAPABILITIES, fast: true }))).toBe(S.INVALID_HYPERCALL_INPUT);
  });
});
