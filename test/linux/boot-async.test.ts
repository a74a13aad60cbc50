// LinuxMachine.bootAsync, the boot the browser page uses: the same steps as boot() with a pause
// awaited between them (the page draws there), so the same log, channels and KVP daemon result;
// an abort stops it before its next step.
import { beforeAll, describe, expect, it } from 'vitest';
import { LinuxMachine } from '../../src/vm/linux-machine.js';
import type { WasmModule } from '../../src/guest/linux/wasm.js';
import { BUILD_TIMEOUT_MS, linuxMissing, linuxModule, linuxSuite } from './linux-module.js';

const texts = (m: LinuxMachine): string[] => m.guest.log.records.map((r) => r.text);

describe.skipIf(linuxMissing !== undefined)(linuxSuite('LinuxMachine.bootAsync'), () => {
  let mod: WasmModule;
  beforeAll(async () => {
    mod = await linuxModule();
  }, BUILD_TIMEOUT_MS);

  it('boots as boot() does, pausing between VMBus, hv_utils and the KVP daemon', async () => {
    const sync = new LinuxMachine(mod, { release: 'ws2022' });
    expect(sync.boot()).toBe(0);
    const m = new LinuxMachine(mod, { release: 'ws2022' });
    // What the log held at each pause: VMBus first, then hv_utils.
    const atPause: string[][] = [];
    const r = await m.bootAsync({ pause: async () => void atPause.push(texts(m)) });
    expect(r).toBe(0);
    expect(m.bootResult).toBe(0);
    expect(atPause).toHaveLength(3);
    expect(atPause[0]).toContain('hv_vmbus: Vmbus version:5.3');
    expect(atPause[0]!.some((t) => t.startsWith('hv_utils:'))).toBe(false);
    expect(atPause[1]).toContain('hv_utils: Heartbeat IC version 3.0');
    expect(texts(m)).toEqual(texts(sync));
    expect(m.nowNs).toBe(sync.nowNs);
    expect(m.guest.vmbusSnapshot()).toEqual(sync.guest.vmbusSnapshot());
    expect(m.kvpDaemon.status).toBe('running');
    expect(sync.kvpDaemon.status).toBe('running');
    sync.host.dispose();
    m.host.dispose();
  });

  it('stops before its next step once aborted', async () => {
    const m = new LinuxMachine(mod, { release: 'ws2022' });
    const abort = new AbortController();
    await m.bootAsync({ signal: abort.signal, pause: async () => abort.abort() });
    expect(texts(m)).toContain('hv_vmbus: Vmbus version:5.3');
    expect(texts(m)).not.toContain('hv_utils: Registering HyperV Utility Driver');
    m.host.dispose();
  });
});
