// A ring's debug info (hv_ringbuffer_get_debuginfo's fields) read by either end: the host, through
// its GPADL mapping of the rings, sees what the guest's snapshot (its sysfs) shows, on every open
// channel of a booted VM, and again while the stream device runs its rings full.
import { describe, expect, it } from 'vitest';
import { StreamDriver } from '../../src/devices/stream/guest.js';
import { StreamDevice } from '../../src/devices/stream/host.js';
import { STREAM_CLASS_ID } from '../../src/devices/stream/frame.js';
import { Machine } from '../../src/vm/machine.js';

describe('ring debug info from both ends', () => {
  it('the host reads the same control pages the guest reports, idle and under a saturating stream', () => {
    const m = new Machine({ release: 'ws2022', vps: 2 });
    const dev = new StreamDevice({ seed: 7, maxData: 3000, toGuest: true });
    m.vmbus!.server.offer({ classId: STREAM_CLASS_ID, instanceId: '00000001-0000-4000-8000-000000000000' }, dev);
    m.boot();
    const compare = (): number => {
      const guest = new Map(m.kernel.vmbus!.snapshot().devices.flatMap((d) => d.channels).map((c) => [c.relid, c]));
      let open = 0;
      for (const ch of m.vmbus!.server.channels.values()) {
        const g = guest.get(ch.relid);
        const h = ch.ringState();
        if (!g?.outbound) {
          expect(h, `relid ${ch.relid}`).toBeUndefined();
          continue;
        }
        open++;
        expect(h, `relid ${ch.relid}`).toEqual({ incoming: g.outbound, outgoing: g.inbound });
      }
      return open;
    };
    expect(compare()).toBe(11);
    const drv = new StreamDriver({ seed: 11, maxData: 3000, ringBytes: 24576 });
    m.kernel.vmbus!.registerDriver(drv);
    let fullSeen = false;
    for (let i = 0; i < 50; i++) {
      m.runFor(20_000);
      expect(compare()).toBe(12);
      const stream = [...m.vmbus!.server.channels.values()].find((c) => c.offer.classId === STREAM_CLASS_ID)!.ringState()!;
      fullSeen ||= stream.incoming.bytesAvailToRead > stream.incoming.dataSize / 2;
      // hv_get_avail_to_write_percent, without a snapshot: what the snapshot's fields give.
      for (const ch of m.kernel.vmbus!.channels) {
        const out = ch.snapshot().outbound;
        expect(ch.availToWritePercent(), `relid ${ch.relid}`).toBe(out && out.dataSize ? Math.floor((out.bytesAvailToWrite * 100) / out.dataSize) : 0);
      }
    }
    expect(fullSeen).toBe(true);
  });
});
