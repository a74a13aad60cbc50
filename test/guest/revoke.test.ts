// Revoking what the guest shared with Hyper-V (tlfs.md §7.1, §7.2): kexec in Linux's order, then
// a write watch over all of RAM proving neither the hypervisor nor the host writes guest memory
// any more; and the crash path, where the crash MSRs carry the panic and only the panicking CPU
// cleans up, leaving the other CPUs' pages live.
import { describe, expect, it } from 'vitest';
import type { TraceEvent } from '../../src/hypervisor/trace.js';
import { HvMsr } from '../../src/tlfs/msr.js';
import { ChannelMessageType as T } from '../../src/vmbus/wire/constants.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { Machine } from '../../src/vm/machine.js';
import type { Arch } from '../../src/hypervisor/features.js';

function boot(arch: Arch, config: { crashMessage?: boolean } = {}) {
  const m = new Machine({ release: 'ws2022', arch, vps: 2, memory: 64 << 20, ...config });
  const events: TraceEvent[] = [];
  m.partition.events.on((e) => void events.push(e));
  m.boot();
  m.runFor(100_000_000);
  return { m, events };
}

const msgType = (hex: string) => Number.parseInt(hex.slice(0, 8).match(/../g)!.reverse().join(''), 16);

/** Everything a host and hypervisor might still do to the guest: time, messages, events, offers, packets. */
function provoke(m: Machine): void {
  m.runFor(1_000_000_000);
  for (const vp of m.partition.vps) {
    vp.synic.enqueue(2, { type: 1, payload: new Uint8Array(32).fill(0xab), internal: true });
    vp.synic.signalFlag(2, 7);
  }
  m.vmbus!.server.offer({ classId: DeviceClass.KVP, instanceId: '12345678-1234-4234-8234-123456789abc' }, {});
  for (const ch of m.vmbus!.server.channels.values()) {
    try {
      ch.sendInband(new Uint8Array(64));
    } catch {
      // a closed channel refuses: exactly what we want
    }
  }
  m.runFor(2_000_000_000);
}

/** Byte ranges [start, end) where two RAM images differ. */
function diff(a: Uint8Array, b: Uint8Array): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const start = i;
    while (i < a.length && a[i] !== b[i]) i++;
    out.push([start, i]);
  }
  return out;
}

describe('kexec: everything shared is revoked, in Linux order', () => {
  for (const arch of ['x64', 'x86'] as const) {
    it(`${arch}: stimers, UNLOAD, the SynICs, the VP assist pages, then guest OS ID, hypercall page and TSC page`, () => {
      const { m, events } = boot(arch);
      const from = events.length;
      m.kernel.kexec();
      expect(m.kernel.stage).toBe('kexec');
      expect(m.kernel.log.lines().some((l) => l.endsWith('kexec_core: Starting new kernel'))).toBe(true);
      const steps: string[] = [];
      const label = (e: TraceEvent): string | undefined => {
        if (e.kind === 'message') return e.dir === 'to-host' ? (msgType(e.payload) === T.UNLOAD ? 'UNLOAD' : undefined) : msgType(e.payload) === T.UNLOAD_RESPONSE ? 'UNLOAD_RESPONSE' : undefined;
        if (e.kind !== 'trap' || e.what !== 'wrmsr') return undefined;
        switch (e.msr) {
          case HvMsr.STIMER0_CONFIG:
          case HvMsr.STIMER0_COUNT:
            return 'stimer0 off';
          case HvMsr.SINT0 + 2:
          case HvMsr.SIMP:
          case HvMsr.SIEFP:
          case HvMsr.SCONTROL:
            return 'SynIC off';
          case HvMsr.VP_ASSIST_PAGE:
            return 'VP assist off';
          case HvMsr.GUEST_OS_ID:
            return 'guest OS ID 0';
          case HvMsr.HYPERCALL:
            return 'hypercall page off';
          case HvMsr.REFERENCE_TSC:
            return 'TSC page off';
        }
        return undefined;
      };
      for (const e of events.slice(from)) {
        const l = label(e);
        if (l && steps.at(-1) !== l) steps.push(l);
      }
      expect(steps).toEqual(['stimer0 off', 'UNLOAD', 'UNLOAD_RESPONSE', 'SynIC off', 'VP assist off', 'guest OS ID 0', 'hypercall page off', 'TSC page off']);
      // The hypervisor agrees: nothing is enabled any more.
      const p = m.partition;
      expect(p.guestOsId).toBe(0n);
      for (const vp of p.vps) expect([vp.synic.enabled, vp.synic.simpEnabled, vp.synic.siefpEnabled, vp.vpAssist & 1n]).toEqual([false, false, false, 0n]);
      expect(m.vmbus!.server.connection).toBeUndefined();
      expect(m.vmbus!.server.state().gpadls).toBe(0);
    });

    it(`${arch}: afterwards a write watch over all of RAM sees no write from the hypervisor or the host`, () => {
      const { m } = boot(arch);
      // The watch can fail: before kexec the same provocation writes guest memory.
      const live = m.partition.memory.bytes.slice();
      provoke(m);
      expect(diff(live, m.partition.memory.bytes).length).toBeGreaterThan(0);

      m.kernel.kexec();
      const after = m.partition.memory.bytes.slice();
      provoke(m);
      expect(diff(after, m.partition.memory.bytes)).toEqual([]);
    });
  }

  it('arm64: Linux 6.1 has no Hyper-V kexec hook, so nothing is revoked and the hypervisor still writes (tlfs.md §7.2, UNVERIFIED upstream)', () => {
    const { m } = boot('arm64');
    m.kernel.kexec();
    expect(m.partition.vps[0]!.synic.simpEnabled).toBe(true);
    const after = m.partition.memory.bytes.slice();
    provoke(m);
    expect(diff(after, m.partition.memory.bytes).length).toBeGreaterThan(0);
  });
});

describe('the crash path (panic with kdump loaded)', () => {
  it('the crash MSRs carry the kernel log with the panic message when the host offers a message buffer', () => {
    const { m } = boot('x64');
    m.kernel.panic('hvkit test panic');
    const report = m.partition.crashes.at(-1)!;
    expect(report.control).toBe((1n << 63n) | (1n << 62n));
    expect(report.params[3]).toBe(BigInt(m.kernel.panicPage!));
    expect(report.message).toMatch(/\] Kernel panic - not syncing: hvkit test panic\n$/);
    expect(Number(report.params[4])).toBe(new TextEncoder().encode(report.message!).length);
  });

  it('without a message buffer: P0 = 0, P1 = the guest OS ID, P2..P4 = RIP, RAX, RSP, then CRASH_CTL bit 63', () => {
    const { m } = boot('x64', { crashMessage: false });
    const osId = m.partition.guestOsId;
    m.kernel.panic('no buffer');
    const r = m.partition.crashes.at(-1)!;
    expect(r.control).toBe(1n << 63n);
    expect(r.params).toEqual([0n, osId, m.kernel.panicRegs.pc, m.kernel.panicRegs.ax, m.kernel.panicRegs.sp]);
    expect(m.kernel.log.lines('emerg')).toEqual([expect.stringMatching(/Kernel panic - not syncing: no buffer$/)]);
  });

  it('VMBus is unloaded by polling; only the panicking CPU turns its SynIC off, the others stay mapped and still receive writes', () => {
    const { m } = boot('x64');
    m.kernel.currentCpu = 1;
    m.kernel.panic('on CPU1');
    m.kernel.currentCpu = 0;
    expect(m.kernel.vmbus!.status).toBe('disconnected');
    expect(m.vmbus!.server.connection).toBeUndefined();
    const [vp0, vp1] = m.partition.vps;
    expect([vp1!.synic.simpEnabled, vp0!.synic.simpEnabled]).toEqual([false, true]);
    // hv_cpu_die never runs on the crash path: every VP assist page stays enabled; the hypercall page does not.
    expect(m.partition.vps.map((vp) => vp.vpAssist & 1n)).toEqual([1n, 1n]);
    expect(m.partition.guestOsId).toBe(0n);
    const cpu0 = m.kernel.cpus[0]!;
    expect(m.kernel.log.lines('debug').filter((l) => l.includes('stay enabled'))).toEqual([
      expect.stringContaining(`CPU0: SynIC message page 0x${cpu0.synic!.messagePage.toString(16)}, event page 0x${cpu0.synic!.eventPage.toString(16)} and VP assist page 0x${cpu0.vpAssistPage!.toString(16)} stay enabled`),
    ]);
    // The hole: CPU0's pages are still written; nothing else is.
    const after = m.partition.memory.bytes.slice();
    provoke(m);
    const pages = [cpu0.synic!.messagePage, cpu0.synic!.eventPage];
    const writes = diff(after, m.partition.memory.bytes);
    expect(writes.length).toBeGreaterThan(0);
    for (const [start, end] of writes) expect(pages.some((p) => start >= p && end <= p + 4096)).toBe(true);
  });
});
