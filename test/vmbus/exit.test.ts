// Module exit as Linux 6.1 does it (vmbus_exit: UNLOAD, then vmbus_free_channels releasing every
// relid): the model guest's VmbusClient.exit and what hvkit's host makes of the releases that
// follow an UNLOAD.
import { describe, expect, it } from 'vitest';
import { ChannelMessageType as T } from '../../src/vmbus/wire/constants.js';
import { encodeChannelMessage } from '../../src/vmbus/wire/messages.js';
import { offerEcho, VmbusRig } from './harness.js';

describe('module exit (vmbus_exit)', () => {
  it('UNLOAD, then one RELID_RELEASED per channel: the host takes each once, without a violation', () => {
    const rig = new VmbusRig({ release: 'ws2022' });
    offerEcho(rig, 1);
    offerEcho(rig, 2);
    rig.boot();
    expect(rig.server.connection).toBeDefined();
    rig.client.exit();
    rig.run();
    expect(rig.server.connection).toBeUndefined();
    expect(rig.client.channels).toEqual([]);
    expect(rig.server.violations.items).toEqual([]);
    // A second release of a relid, or one the unload did not have, is the guest's mistake.
    rig.server.handleMessage(encodeChannelMessage(T.RELID_RELEASED, { child_relid: 1 }), 0);
    rig.server.handleMessage(encodeChannelMessage(T.RELID_RELEASED, { child_relid: 99 }), 0);
    expect(rig.server.violations.items.map((v) => v.message)).toEqual(['RELID_RELEASED', 'RELID_RELEASED']);
  });

  it('a release before any connection is still a violation (no UNLOAD explains it)', () => {
    const rig = new VmbusRig({ release: 'ws2022' });
    offerEcho(rig, 1);
    rig.server.handleMessage(encodeChannelMessage(T.RELID_RELEASED, { child_relid: 1 }), 0);
    expect(rig.server.violations.items.map((v) => `${v.message}: ${v.detail}`)).toEqual(['RELID_RELEASED: received before the connection was made']);
  });
});
