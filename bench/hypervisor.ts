// Hypervisor benchmarks: hypercalls in-thread (fast and memory-based, on each ABI) and SynIC
// message delivery with the guest's slot clear + EOM round trip.
import { Arm64Port, Partition, X64Port, X86_32Port } from '../src/hypervisor/index.js';
import { encodeControl } from '../src/tlfs/control.js';
import { HvCall } from '../src/tlfs/hypercall-codes.js';
import { HvInputPostMessage } from '../src/tlfs/hypercall-inputs.js';
import { HvMsr, sintMsr } from '../src/tlfs/msr.js';
import { HV_FUNC_ID, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, HvRegister } from '../src/tlfs/registers.js';
import { HvMessageType } from '../src/tlfs/synic.js';
import type { Case } from './index.js';

const HYPERCALL_PAGE = 0x10000;
const INPUT = 0x20000;
const OUTPUT = 0x21000;
const SIMP = 0x30000;
const SIEFP = 0x31000;

function x64Partition(): { p: Partition; cpu: X64Port } {
  const p = new Partition({ release: 'ws2025', vps: 2, memory: 4 << 20 });
  const cpu = new X64Port(p.vps[0]!);
  cpu.wrmsr(HvMsr.GUEST_OS_ID, 0x8100_0006_01c0_0000n);
  cpu.wrmsr(HvMsr.HYPERCALL, BigInt(HYPERCALL_PAGE) | 1n);
  // Host ports: a message port and an event port whose handlers do nothing.
  p.createPort(1, { type: 'host-message', handler: () => 0 });
  p.connectPort(1, 1);
  p.createPort(2, { type: 'host-event', flagCount: 1, handler: () => undefined });
  p.connectPort(2, 2);
  return { p, cpu };
}

function check(rax: bigint, what: string): void {
  if ((rax & 0xffffn) !== 0n) throw new Error(`${what}: status 0x${(rax & 0xffffn).toString(16)}`);
}

export function hypervisorCases(batch: number): Case[] {
  const fn = 'baseline: function call';
  const cases: Case[] = [];

  // The guest's doorbell, and what tracing adds to it: nothing while no one listens (the same
  // call in a partition whose trace had a listener that has left), and the events when one does.
  const SIGNAL = 'hypercall x64 fast: SignalEvent to a host port';
  for (const tracing of ['off', 'was on', 'on'] as const) {
    const { p, cpu } = x64Partition();
    const leave = p.events.on(() => undefined);
    if (tracing === 'was on') leave();
    const regs = { rcx: 0n, rdx: 0n, r8: 0n, rax: 0n, xmm: [] as bigint[] };
    const control = encodeControl({ code: HvCall.SIGNAL_EVENT, fast: true });
    cases.push({
      name: tracing === 'off' ? SIGNAL : tracing === 'was on' ? `${SIGNAL}, a trace listener came and went` : `${SIGNAL}, traced (a listener)`,
      baseline: tracing === 'was on' ? SIGNAL : fn,
      batch,
      unit: 'call',
      ...(tracing === 'off' ? { goal: { of: 'ratio' as const, atMost: 20, text: '≤ 20 function calls' } } : {}),
      ...(tracing === 'was on' ? { goal: { of: 'ratio' as const, atMost: 1.1, text: '≈ 1× untraced (within 10%)' } } : {}),
      run: () => {
        for (let i = 0; i < batch; i++) {
          regs.rcx = control;
          regs.rdx = 2n;
          cpu.call(HYPERCALL_PAGE, regs);
        }
        check(regs.rax, 'SignalEvent');
      },
    });
    if (tracing === 'off') leave();
  }

  {
    const { p, cpu } = x64Partition();
    p.memory.write(INPUT, HvInputPostMessage.encode({ connectionid: { id: 1, reserved: 0 }, reserved: 0, message_type: 1, payload_size: 240, payload: new Uint8Array(240) }));
    const regs = { rcx: 0n, rdx: 0n, r8: 0n, rax: 0n, xmm: [] as bigint[] };
    const control = encodeControl({ code: HvCall.POST_MESSAGE });
    cases.push({
      name: 'hypercall x64 memory: PostMessage 240 B to a host port',
      baseline: fn,
      batch,
      unit: 'call',
      run: () => {
        for (let i = 0; i < batch; i++) {
          regs.rcx = control;
          regs.rdx = BigInt(INPUT);
          cpu.call(HYPERCALL_PAGE, regs);
        }
        check(regs.rax, 'PostMessage');
      },
    });
  }

  {
    const { p, cpu } = x64Partition();
    p.memory.write64(INPUT, HV_PARTITION_ID_SELF);
    p.memory.write32(INPUT + 8, HV_VP_INDEX_SELF);
    for (let i = 0; i < 8; i++) p.memory.write32(INPUT + 16 + 4 * i, HvRegister.VP_INDEX);
    const regs = { rcx: 0n, rdx: 0n, r8: 0n, rax: 0n, xmm: [] as bigint[] };
    const control = encodeControl({ code: HvCall.GET_VP_REGISTERS, repCount: 8 });
    cases.push({
      name: 'hypercall x64 memory rep: GetVpRegisters x8',
      baseline: fn,
      batch: batch / 10,
      unit: 'call',
      run: () => {
        for (let i = 0; i < batch / 10; i++) {
          regs.rcx = control;
          regs.rdx = BigInt(INPUT);
          regs.r8 = BigInt(OUTPUT);
          cpu.call(HYPERCALL_PAGE, regs);
        }
        check(regs.rax, 'GetVpRegisters');
      },
    });
  }

  {
    const p = new Partition({ release: 'ws2025', arch: 'x86', vps: 1, memory: 4 << 20 });
    const cpu = new X86_32Port(p.vps[0]!);
    cpu.wrmsr(HvMsr.GUEST_OS_ID, 1n);
    cpu.wrmsr(HvMsr.HYPERCALL, BigInt(HYPERCALL_PAGE) | 1n);
    p.createPort(2, { type: 'host-event', flagCount: 1, handler: () => undefined });
    p.connectPort(2, 2);
    const regs = { eax: 0, edx: 0, ebx: 0, ecx: 0, esi: 0, edi: 0 };
    cases.push({
      name: 'hypercall x86-32 fast: SignalEvent to a host port',
      baseline: fn,
      batch,
      unit: 'call',
      run: () => {
        for (let i = 0; i < batch; i++) {
          regs.edx = 0;
          regs.eax = HvCall.SIGNAL_EVENT | (1 << 16);
          regs.ebx = 0;
          regs.ecx = 2;
          cpu.call(HYPERCALL_PAGE, regs);
        }
        if (regs.eax & 0xffff) throw new Error('x86 SignalEvent failed');
      },
    });
  }

  {
    const p = new Partition({ release: 'ws2025', arch: 'arm64', vps: 1, memory: 4 << 20, tscHz: 25_000_000 });
    const cpu = new Arm64Port(p.vps[0]!);
    p.createPort(2, { type: 'host-event', flagCount: 1, handler: () => undefined });
    p.connectPort(2, 2);
    const x: bigint[] = new Array<bigint>(18).fill(0n);
    const control = encodeControl({ code: HvCall.SIGNAL_EVENT, fast: true });
    cases.push({
      name: 'hypercall arm64 SMCCC fast: SignalEvent to a host port',
      baseline: fn,
      batch,
      unit: 'call',
      run: () => {
        for (let i = 0; i < batch; i++) {
          x[0] = BigInt(HV_FUNC_ID);
          x[1] = control;
          x[2] = 2n;
          cpu.hvc(0, { x });
        }
        check(x[0]!, 'arm64 SignalEvent');
      },
    });
  }

  {
    // The host posts two messages per round; the guest takes the interrupt, copies each out,
    // frees the slot with a compare-and-exchange and writes EOM when msg_pending says so.
    const { p, cpu } = x64Partition();
    cpu.wrmsr(HvMsr.SIMP, BigInt(SIMP) | 1n);
    cpu.wrmsr(HvMsr.SIEFP, BigInt(SIEFP) | 1n);
    cpu.wrmsr(HvMsr.SCONTROL, 1n);
    cpu.wrmsr(sintMsr(2), 0xf3n | (1n << 17n));
    cpu.interruptsEnabled = true;
    p.createPort(3, { type: 'message', vp: 0, sint: 2 });
    p.connectPort(3, 3);
    const payload = new Uint8Array(240).fill(7);
    const slotType = new Uint32Array(p.memory.buffer, SIMP + 2 * 256, 1);
    const copy = new Uint8Array(256);
    let received = 0;
    const take = () => {
      while (cpu.acceptInterrupt() !== undefined) {
        for (;;) {
          const type = Atomics.load(slotType, 0);
          if (type === HvMessageType.NONE) break;
          copy.set(p.memory.view(SIMP + 2 * 256, 256));
          received++;
          const pending = p.memory.read8(SIMP + 2 * 256 + 5) & 1;
          Atomics.compareExchange(slotType, 0, type, HvMessageType.NONE);
          if (pending) cpu.wrmsr(HvMsr.EOM, 0n);
          else break;
        }
      }
    };
    cases.push({
      name: 'SynIC: message delivery + slot clear + EOM',
      baseline: 'baseline: 256-byte copy',
      batch,
      unit: 'message',
      run: () => {
        for (let i = 0; i < batch; i += 2) {
          p.postMessage(3, 1, payload, 1);
          p.postMessage(3, 1, payload, 1);
          take();
        }
        if (received === 0) throw new Error('no message arrived');
      },
    });
  }

  return cases;
}
