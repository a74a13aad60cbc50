// lsvmbus: the lines Linux's tools/hv/lsvmbus prints with no option, -v and -vv, written here by
// hand from the script's formats; and the same lines recomputed, the script's way, from the
// sysfs tree writeSysfs leaves on disk.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatLsvmbus, LSVMBUS_CLASS_DESCRIPTIONS, vmbusSysfsExists } from '../../src/cli/lsvmbus.js';
import { writeSysfs } from '../../src/cli/sysfs.js';
import type { ChannelSnapshot, DeviceSnapshot, VmbusSnapshot } from '../../src/vmbus/client/snapshot.js';
import { channelSnapshot } from './snapshots.js';

function channel(relid: number, targetCpu: number, over: Partial<ChannelSnapshot> = {}): ChannelSnapshot {
  return channelSnapshot({ relid, targetCpu, ...over });
}

function device(id: number, classId: string, instanceId: string, channels: ChannelSnapshot[], deviceType = 16): DeviceSnapshot {
  return { id, classId, instanceId, deviceType, vendorId: 0x1414, driver: undefined, channels };
}

const SCSI = 'ba6163d9-04a1-4d29-b605-72e2ffb1dc7f';
const NIC = 'f8615163-df3e-46c5-913f-f2d2f965ed0e';
const KVP = 'a9a0f4e7-5a45-4d96-b827-8a841e8c03e6';
const HVSOCK = '00000001-facb-11e6-bd58-64006a7986d3';

// Offer order, not id order; sub-channels offered out of relid order; one device with a 3-digit id.
const snapshot: VmbusSnapshot = {
  state: 'connected',
  version: '5.3',
  devices: [
    device(14, NIC, '7a2b1c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d', [
      channel(14, 0, { monitorId: 3, monitor: { serverPending: 0, clientPending: 0, serverLatency: 0, clientLatency: 0, serverConnId: 0, clientConnId: 0 } }),
      channel(20, 1, { subChannelIndex: 1 }),
      channel(15, 3, { subChannelIndex: 2 }),
    ], 3),
    device(2, SCSI, 'D34B2567-B9B6-42B9-8778-0A4EC0B955BF', [channel(2, 1)], 1),
    device(105, HVSOCK, 'c0ffee00-1234-4abc-8def-0123456789ab', [channel(105, 0, { state: 'offer' })]),
    device(9, KVP, '242ff919-07db-4180-9c2e-b86cb68c8c55', [channel(9, 0)], 9),
  ],
};

describe('formatLsvmbus', () => {
  it('no option: "VMBUS ID %2s: <description>", sorted by id as an integer', () => {
    expect(formatLsvmbus(snapshot, 0)).toEqual([
      'VMBUS ID  2: Synthetic SCSI Controller',
      'VMBUS ID  9: [Data Exchange]',
      'VMBUS ID 14: Synthetic network adapter',
      'VMBUS ID 105: Unknown',
    ]);
  });

  it('-v: the class GUID, then each channel by relid, then a blank line', () => {
    expect(formatLsvmbus(snapshot, 1)).toEqual([
      'VMBUS ID  2: Class_ID = {ba6163d9-04a1-4d29-b605-72e2ffb1dc7f} - Synthetic SCSI Controller',
      '\tRel_ID=2, target_cpu=1',
      '',
      'VMBUS ID  9: Class_ID = {a9a0f4e7-5a45-4d96-b827-8a841e8c03e6} - [Data Exchange]',
      '\tRel_ID=9, target_cpu=0',
      '',
      'VMBUS ID 14: Class_ID = {f8615163-df3e-46c5-913f-f2d2f965ed0e} - Synthetic network adapter',
      '\tRel_ID=14, target_cpu=0',
      '\tRel_ID=15, target_cpu=3',
      '\tRel_ID=20, target_cpu=1',
      '',
      'VMBUS ID 105: Class_ID = {00000001-facb-11e6-bd58-64006a7986d3} - Unknown',
      '\tRel_ID=105, target_cpu=0',
      '',
    ]);
  });

  it('-vv: adds the instance GUID and the sysfs path (lower case, the folder without braces)', () => {
    expect(formatLsvmbus(snapshot, 2)).toEqual([
      'VMBUS ID  2: Class_ID = {ba6163d9-04a1-4d29-b605-72e2ffb1dc7f} - Synthetic SCSI Controller',
      '\tDevice_ID = {d34b2567-b9b6-42b9-8778-0a4ec0b955bf}',
      '\tSysfs path: /sys/bus/vmbus/devices/d34b2567-b9b6-42b9-8778-0a4ec0b955bf',
      '\tRel_ID=2, target_cpu=1',
      '',
      'VMBUS ID  9: Class_ID = {a9a0f4e7-5a45-4d96-b827-8a841e8c03e6} - [Data Exchange]',
      '\tDevice_ID = {242ff919-07db-4180-9c2e-b86cb68c8c55}',
      '\tSysfs path: /sys/bus/vmbus/devices/242ff919-07db-4180-9c2e-b86cb68c8c55',
      '\tRel_ID=9, target_cpu=0',
      '',
      'VMBUS ID 14: Class_ID = {f8615163-df3e-46c5-913f-f2d2f965ed0e} - Synthetic network adapter',
      '\tDevice_ID = {7a2b1c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}',
      '\tSysfs path: /sys/bus/vmbus/devices/7a2b1c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
      '\tRel_ID=14, target_cpu=0',
      '\tRel_ID=15, target_cpu=3',
      '\tRel_ID=20, target_cpu=1',
      '',
      'VMBUS ID 105: Class_ID = {00000001-facb-11e6-bd58-64006a7986d3} - Unknown',
      '\tDevice_ID = {c0ffee00-1234-4abc-8def-0123456789ab}',
      '\tSysfs path: /sys/bus/vmbus/devices/c0ffee00-1234-4abc-8def-0123456789ab',
      '\tRel_ID=105, target_cpu=0',
      '',
    ]);
  });

  it('an empty connected bus prints nothing; a bus that never connected has no sysfs folder', () => {
    const empty: VmbusSnapshot = { state: 'connected', version: '5.3', devices: [] };
    expect(formatLsvmbus(empty, 1)).toEqual([]);
    expect(vmbusSysfsExists(empty)).toBe(true);
    const none: VmbusSnapshot = { state: 'disconnected', version: '', devices: [] };
    expect(formatLsvmbus(none, 0)).toEqual(["/sys/bus/vmbus/devices doesn't exist: exiting..."]);
    expect(vmbusSysfsExists(none)).toBe(false);
    expect(vmbusSysfsExists(snapshot)).toBe(true);
  });

  it("vmbus_dev_dict: lsvmbus's descriptions for every class it knows", () => {
    const dict: Record<string, string> = {
      '{0e0b6031-5213-4934-818b-38d90ced39db}': '[Operating system shutdown]',
      '{9527e630-d0ae-497b-adce-e80ab0175caf}': '[Time Synchronization]',
      '{57164f39-9115-4e78-ab55-382f3bd5422d}': '[Heartbeat]',
      '{a9a0f4e7-5a45-4d96-b827-8a841e8c03e6}': '[Data Exchange]',
      '{35fa2e29-ea23-4236-96ae-3a6ebacba440}': '[Backup (volume checkpoint)]',
      '{34d14be3-dee4-41c8-9ae7-6b174977c192}': '[Guest services]',
      '{525074dc-8985-46e2-8057-a307dc18a502}': '[Dynamic Memory]',
      '{cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a}': 'Synthetic mouse',
      '{f912ad6d-2b17-48ea-bd65-f927a61c7684}': 'Synthetic keyboard',
      '{da0a7802-e377-4aac-8e77-0558eb1073f8}': 'Synthetic framebuffer adapter',
      '{f8615163-df3e-46c5-913f-f2d2f965ed0e}': 'Synthetic network adapter',
      '{32412632-86cb-44a2-9b5c-50d1417354f5}': 'Synthetic IDE Controller',
      '{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}': 'Synthetic SCSI Controller',
      '{2f9bcc4a-0069-4af3-b76b-6fd0be528cda}': 'Synthetic fiber channel adapter',
      '{8c2eaf3d-32a7-4b09-ab99-bd1f1c86b501}': 'Synthetic RDMA adapter',
      '{44c4f61d-4444-4400-9d52-802e27ede19f}': 'PCI Express pass-through',
      '{276aacf4-ac15-426c-98dd-7521ad3f01fe}': '[Reserved system device]',
      '{f8e65716-3cb3-4a06-9a60-1889c5cccab5}': '[Reserved system device]',
      '{3375baf4-9e15-4b30-b765-67acb10d607b}': '[Reserved system device]',
    };
    expect(LSVMBUS_CLASS_DESCRIPTIONS.size).toBe(Object.keys(dict).length);
    for (const [braced, desc] of Object.entries(dict)) {
      const guid = braced.slice(1, -1);
      expect(formatLsvmbus({ state: 'connected', version: '5.3', devices: [device(1, guid, '11111111-2222-3333-4444-555555555555', [])] }, 0)).toEqual([`VMBUS ID  1: ${desc}`]);
    }
  });

  it('a device without channels: -v prints the header and the blank line only', () => {
    const bare: VmbusSnapshot = { state: 'connected', version: '5.3', devices: [device(7, 'c376c1c3-d276-48d2-90a9-c04748072c60', '11111111-2222-3333-4444-555555555555', [])] };
    expect(formatLsvmbus(bare, 1)).toEqual(['VMBUS ID  7: Class_ID = {c376c1c3-d276-48d2-90a9-c04748072c60} - Unknown', '']);
  });
});

/**
 * The script's logic, read from a written tree: each folder's id, class_id, device_id and
 * channel_vp_mapping, devices sorted by int(id), mapping lines by int(relid).
 */
async function lsvmbusFromTree(root: string, verbose: number): Promise<string[]> {
  const dict = new Map([...LSVMBUS_CLASS_DESCRIPTIONS].map(([g, d]) => [`{${g}}`, d]));
  const attr = async (dev: string, name: string): Promise<string[]> => {
    try {
      return (await readFile(join(root, dev, name), 'utf8')).split(/(?<=\n)/);
    } catch {
      return [];
    }
  };
  const devs = [];
  for (const f of await readdir(root)) {
    const vmbusId = (await attr(f, 'id'))[0]!.trim();
    const classId = (await attr(f, 'class_id'))[0]!.trim();
    const deviceId = (await attr(f, 'device_id'))[0]!.trim();
    const mapping = (await attr(f, 'channel_vp_mapping'))
      .map((c) => c.trim())
      .sort((a, b) => parseInt(a.split(':')[0]!, 10) - parseInt(b.split(':')[0]!, 10))
      .map((c) => `\tRel_ID=${c.split(':')[0]}, target_cpu=${c.split(':')[1]}`);
    let chn = mapping.join('\n');
    if (chn) chn += '\n';
    devs.push({ sysfsPath: `/sys/bus/vmbus/devices/${f}`, vmbusId, classId, deviceId, desc: dict.get(classId) ?? 'Unknown', chn });
  }
  devs.sort((a, b) => parseInt(a.vmbusId, 10) - parseInt(b.vmbusId, 10));
  let printed = '';
  for (const d of devs) {
    const id = d.vmbusId.padStart(2);
    if (verbose === 0) printed += `VMBUS ID ${id}: ${d.desc}\n`;
    else if (verbose === 1) printed += `VMBUS ID ${id}: Class_ID = ${d.classId} - ${d.desc}\n${d.chn}\n`;
    else printed += `VMBUS ID ${id}: Class_ID = ${d.classId} - ${d.desc}\n\tDevice_ID = ${d.deviceId}\n\tSysfs path: ${d.sysfsPath}\n${d.chn}\n`;
  }
  return printed === '' ? [] : printed.slice(0, -1).split('\n');
}

describe('lsvmbus parses back from the tree writeSysfs writes', () => {
  const tmp = mkdtemp(join(tmpdir(), 'hvkit-lsvmbus-'));
  afterAll(async () => rm(await tmp, { recursive: true, force: true }));

  it('the script, run on the written tree, prints what formatLsvmbus prints', async () => {
    const root = join(await tmp, 'devices');
    await writeSysfs(root, snapshot);
    for (const v of [0, 1, 2] as const) expect(await lsvmbusFromTree(root, v)).toEqual(formatLsvmbus(snapshot, v));
  });
});
