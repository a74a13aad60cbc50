// The parser of the Linux module's VMBus snapshot (linux/shim/introspect.c's lines): what it
// makes of the lines the shim writes, and that nothing but SnapshotFormatError comes out of
// arbitrary text. Needs no Linux build.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseLinuxSnapshot, SnapshotFormatError } from '../../src/guest/linux/snapshot.js';
import { fuzz } from '../fuzz/fuzz.js';

describe('the Linux guest’s VMBus snapshot', () => {
  it('the shim’s lines: the connection, each device with its channels, Linux’s enums by name', () => {
    const text = [
      'vmbus 2 5.3',
      'device 5 0e0b6031-5213-4934-818b-38d90ced39db c1d8314c-c0c1-4852-bad0-f76d786796ec 5 4932 hv_utils',
      'channel 5 3 0 -1 0 0 5 12 3 0',
      'device 2 f912ad6d-2b17-48ea-bd65-f927a61c7684 fbc0745f-b3b4-4d0f-b25b-c4773e76cd5f 13 4932 -',
      'channel 2 2 0 7 0 0 2 0 0 1',
      '',
    ].join('\n');
    const s = parseLinuxSnapshot(text);
    expect(s.state).toBe('connected');
    expect(s.version).toBe('5.3');
    expect(s.devices.map((d) => [d.id, d.deviceType, d.vendorId, d.driver, d.channels.map((c) => [c.relid, c.state, c.monitorId, c.interrupts, c.sigEvents, c.rescinded])])).toEqual([
      [5, 5, 4932, 'hv_utils', [[5, 'opened', undefined, 12, 3, false]]],
      [2, 13, 4932, undefined, [[2, 'open', 7, 0, 0, true]]],
    ]);
  });

  it('a disconnected bus has no version', () => {
    expect(parseLinuxSnapshot('vmbus 0 0.0\n')).toEqual({ state: 'disconnected', version: '', devices: [] });
  });

  it('arbitrary text: a snapshot or a SnapshotFormatError, nothing else', () => {
    const word = fc.oneof(fc.constantFrom('vmbus', 'device', 'channel', '-', '1', '-1', '3', 'x'), fc.string({ maxLength: 6 }));
    fuzz(
      'linux.snapshot-text',
      fc.property(fc.array(fc.array(word, { maxLength: 12 }).map((w) => w.join(' ')), { maxLength: 8 }), (lines) => {
        try {
          parseLinuxSnapshot(lines.join('\n'));
        } catch (e) {
          expect(e).toBeInstanceOf(SnapshotFormatError);
        }
      }),
      300,
    );
  });
});
