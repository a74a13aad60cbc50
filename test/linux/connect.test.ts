// Milestones (a) and (b) of issue 17: Linux 6.1's own vmbus_connect negotiates the VMBus version
// with every release's host, and its REQUESTOFFERS brings every offer into Linux's channel list,
// from which vmbus_add_channel_work registers one device per channel (device names are the
// offers' instance GUIDs, vmbus_device_register's "%pUl").
import { beforeAll, describe, expect, it } from 'vitest';
import { RELEASE_IDS, release } from '../../src/hypervisor/release.js';
import { makeVersion } from '../../src/vmbus/wire/constants.js';
import { LinuxMachine } from '../../src/vm/linux-machine.js';
import type { WasmModule } from '../../src/guest/linux/wasm.js';
import { BUILD_TIMEOUT_MS, linuxMissing, linuxModule, linuxSuite } from './linux-module.js';

describe.skipIf(linuxMissing !== undefined)(linuxSuite('the real Linux VMBus code against hvkit’s host'), () => {
  let mod: WasmModule;
  beforeAll(async () => {
    mod = await linuxModule();
  }, BUILD_TIMEOUT_MS);

  describe.each(RELEASE_IDS)('%s host', (id) => {
    it('vmbus_connect negotiates the host’s version (Linux’s own "Vmbus version:" line)', () => {
      const m = new LinuxMachine(mod, { release: id });
      expect(m.boot({ utils: false })).toBe(0);
      const v = release(id).vmbusVersion;
      const texts = m.guest.log.records.map((r) => r.text);
      expect(texts).toContain(`hv_vmbus: Vmbus version:${v.major}.${v.minor}`);
      expect(m.vmbus!.server.connection?.version).toBe(makeVersion(v.major, v.minor));
      // Nothing Linux prints at warning level or worse: no refused message, no failed call.
      expect(m.guest.log.records.filter((r) => ['emerg', 'alert', 'crit', 'err', 'warn'].includes(r.level)).map((r) => r.text)).toEqual([]);
    });

    it('REQUESTOFFERS: every offer becomes a device on Linux’s bus', () => {
      const m = new LinuxMachine(mod, { release: id });
      m.boot({ utils: false });
      const offered = [...m.vmbus!.server.channels.values()].filter((c) => c.offer.subChannelIndex === 0).map((c) => c.offer.instanceId);
      expect(offered.length).toBeGreaterThan(0);
      const added = m.guest.events.items.filter((e) => e.startsWith('added ')).map((e) => e.split(' ')[1]);
      expect(added.sort()).toEqual(offered.sort());
      expect(m.vmbus!.server.connection?.offersRequested).toBe(true);
    });
  });
});
