// The /sys/bus/vmbus/devices tree: every value in Linux's printf format (drivers/hv/vmbus_drv.c),
// the files Linux hides or cannot read, and the tree written to disk.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sysfsFiles, writeSysfs } from '../../src/cli/sysfs.js';
import type { DeviceSnapshot, VmbusSnapshot } from '../../src/vmbus/client/snapshot.js';
import { channelSnapshot } from './snapshots.js';

const channel = channelSnapshot;

const NIC_GUID = 'f8615163-df3e-46c5-913f-f2d2f965ed0e';
const NIC_DIR = '7a2b1c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const HB_DIR = 'fd149e91-82e0-4a7d-afa6-2a4166cbd7c0';
const SOCK_DIR = 'c0ffee00-1234-4abc-8def-0123456789ab';

const nic: DeviceSnapshot = {
  id: 14,
  classId: NIC_GUID,
  instanceId: NIC_DIR,
  deviceType: 3,
  vendorId: 0x1414,
  driver: 'hv_netvsc',
  channels: [
    channel({
      relid: 14,
      monitorId: 3,
      targetCpu: 0,
      connectionId: 0x10e,
      interrupts: 1234,
      sigEvents: 77,
      // 12 KiB data areas; the inbound ring has wrapped.
      outbound: { interruptMask: 0, readIndex: 128, writeIndex: 256, bytesAvailToRead: 128, bytesAvailToWrite: 12160, pendingSendSize: 0, dataSize: 12288 },
      inbound: { interruptMask: 1, readIndex: 4000, writeIndex: 64, bytesAvailToRead: 8352, bytesAvailToWrite: 3936, pendingSendSize: 0, dataSize: 12288 },
      // Bit 31 of the pending word set: Linux's "%d" prints it negative. Reserved conn-id bits set: not shown.
      monitor: { serverPending: 0x80000008, clientPending: 8, serverLatency: 100, clientLatency: 200, serverConnId: 0xab00010e, clientConnId: 0x10e },
    }),
    channel({ relid: 20, subChannelIndex: 1, targetCpu: 1, monitorId: 9, monitor: { serverPending: 0, clientPending: 0x200, serverLatency: 0, clientLatency: 65535, serverConnId: 0, clientConnId: 0 } }),
    channel({ relid: 15, subChannelIndex: 2, targetCpu: 2, state: 'offer' }),
  ],
};

const heartbeat: DeviceSnapshot = {
  id: 3,
  classId: '57164f39-9115-4e78-ab55-382f3bd5422d',
  instanceId: HB_DIR,
  deviceType: 11,
  vendorId: 0x1414,
  driver: 'hv_utils',
  channels: [
    channel({
      relid: 3,
      interrupts: 2 ** 40, // beyond 32 bits: "%llu"
      sigEvents: 5,
      outbound: { interruptMask: 0, readIndex: 0, writeIndex: 0, bytesAvailToRead: 0, bytesAvailToWrite: 4096, pendingSendSize: 0, dataSize: 4096 },
      inbound: { interruptMask: 0, readIndex: 24, writeIndex: 24, bytesAvailToRead: 0, bytesAvailToWrite: 4096, pendingSendSize: 0, dataSize: 4096 },
    }),
  ],
};

// An unknown class (an hv_sock-like service GUID), never opened, no driver, GUIDs in upper case.
const sock: DeviceSnapshot = {
  id: 9,
  classId: '00000001-FACB-11E6-BD58-64006A7986D3',
  instanceId: SOCK_DIR.toUpperCase(),
  deviceType: 16,
  vendorId: 0x1414,
  driver: undefined,
  channels: [channel({ relid: 9, state: 'offer' })],
};

const snapshot: VmbusSnapshot = { state: 'connected', version: '5.3', devices: [nic, heartbeat, sock] };

const filesOf = (files: Map<string, string>, prefix: string): Map<string, string> =>
  new Map([...files].filter(([k]) => k.startsWith(prefix) && !k.slice(prefix.length).includes('/')).map(([k, v]) => [k.slice(prefix.length), v]));

describe('sysfsFiles: device attributes', () => {
  const files = sysfsFiles(snapshot);

  it('a monitored, open device: every attribute, in vmbus_dev_attrs order', () => {
    expect([...filesOf(files, `${NIC_DIR}/`)]).toEqual([
      ['id', '14\n'],
      ['state', '3\n'],
      ['monitor_id', '3\n'],
      ['class_id', '{f8615163-df3e-46c5-913f-f2d2f965ed0e}\n'],
      ['device_id', '{7a2b1c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}\n'],
      ['modalias', 'vmbus:635161f83edfc546913ff2d2f965ed0e\n'],
      ['numa_node', '0\n'],
      ['server_monitor_pending', '-2147483640\n'],
      ['client_monitor_pending', '8\n'],
      ['server_monitor_latency', '100\n'],
      ['client_monitor_latency', '200\n'],
      ['server_monitor_conn_id', '270\n'],
      ['client_monitor_conn_id', '270\n'],
      ['out_intr_mask', '0\n'],
      ['out_read_index', '128\n'],
      ['out_write_index', '256\n'],
      ['out_read_bytes_avail', '128\n'],
      ['out_write_bytes_avail', '12160\n'],
      ['in_intr_mask', '1\n'],
      ['in_read_index', '4000\n'],
      ['in_write_index', '64\n'],
      ['in_read_bytes_avail', '8352\n'],
      ['in_write_bytes_avail', '3936\n'],
      ['channel_vp_mapping', '14:0\n20:1\n15:2\n'],
      ['vendor', '0x1414\n'],
      ['device', '0x3\n'],
      ['driver_override', '(null)\n'],
      ['uevent', 'DRIVER=hv_netvsc\nMODALIAS=vmbus:635161f83edfc546913ff2d2f965ed0e\n'],
    ]);
  });

  it('no monitor allocated: monitor_id and the six monitor page files are hidden', () => {
    const hb = filesOf(files, `${HB_DIR}/`);
    expect([...hb.keys()].filter((k) => k.includes('monitor'))).toEqual([]);
    expect(hb.get('id')).toBe('3\n');
    expect(hb.get('class_id')).toBe('{57164f39-9115-4e78-ab55-382f3bd5422d}\n');
    expect(hb.get('modalias')).toBe('vmbus:394f16571591784eab55382f3bd5422d\n');
    expect(hb.get('device')).toBe('0xb\n');
    expect(hb.get('channel_vp_mapping')).toBe('3:0\n');
    expect(hb.get('in_read_index')).toBe('24\n');
  });

  it('no rings (never opened): the out_*/in_* files, which would fail with EINVAL, are left out', () => {
    expect([...filesOf(files, `${SOCK_DIR}/`)]).toEqual([
      ['id', '9\n'],
      ['state', '0\n'],
      ['class_id', '{00000001-facb-11e6-bd58-64006a7986d3}\n'],
      ['device_id', '{c0ffee00-1234-4abc-8def-0123456789ab}\n'],
      ['modalias', 'vmbus:01000000cbfae611bd5864006a7986d3\n'],
      ['numa_node', '0\n'],
      ['channel_vp_mapping', '9:0\n'],
      ['vendor', '0x1414\n'],
      ['device', '0x10\n'],
      ['driver_override', '(null)\n'],
      ['uevent', 'MODALIAS=vmbus:01000000cbfae611bd5864006a7986d3\n'],
    ]);
  });

  it('one folder per device, named by the lower-case instance GUID without braces', () => {
    expect(new Set([...files.keys()].map((k) => k.split('/')[0]))).toEqual(new Set([NIC_DIR, HB_DIR, SOCK_DIR]));
  });

  it('an empty, disconnected bus has no files', () => {
    expect(sysfsFiles({ state: 'disconnected', version: '', devices: [] }).size).toBe(0);
  });
});

describe('sysfsFiles: channels/<relid>/', () => {
  const files = sysfsFiles(snapshot);

  it('a monitored primary with rings: vmbus_chan_attrs in order', () => {
    expect([...filesOf(files, `${NIC_DIR}/channels/14/`)]).toEqual([
      ['out_mask', '0\n'],
      ['in_mask', '1\n'],
      ['read_avail', '8352\n'], // inbound bytes to read
      ['write_avail', '12160\n'], // outbound bytes to write
      ['cpu', '0\n'],
      ['pending', '8\n'], // monitor page 2
      ['latency', '200\n'],
      ['interrupts', '1234\n'],
      ['events', '77\n'],
      ['monitor_id', '3\n'],
      ['subchannel_id', '0\n'],
    ]);
  });

  it('a monitored sub-channel without rings; an unmonitored closed one', () => {
    expect([...filesOf(files, `${NIC_DIR}/channels/20/`)]).toEqual([
      ['cpu', '1\n'],
      ['pending', '512\n'],
      ['latency', '65535\n'],
      ['interrupts', '0\n'],
      ['events', '0\n'],
      ['monitor_id', '9\n'],
      ['subchannel_id', '1\n'],
    ]);
    expect([...filesOf(files, `${NIC_DIR}/channels/15/`)]).toEqual([
      ['cpu', '2\n'],
      ['interrupts', '0\n'],
      ['events', '0\n'],
      ['subchannel_id', '2\n'],
    ]);
  });

  it('counters print as unsigned 64-bit', () => {
    expect(files.get(`${HB_DIR}/channels/3/interrupts`)).toBe('1099511627776\n');
    expect(files.get(`${HB_DIR}/channels/3/events`)).toBe('5\n');
    expect(files.get(`${HB_DIR}/channels/3/write_avail`)).toBe('4096\n');
  });

  it('every channel of every device has its folder, named by decimal relid', () => {
    const dirs = new Set([...files.keys()].filter((k) => k.includes('/channels/')).map((k) => k.split('/').slice(0, 3).join('/')));
    expect(dirs).toEqual(new Set([`${NIC_DIR}/channels/14`, `${NIC_DIR}/channels/20`, `${NIC_DIR}/channels/15`, `${HB_DIR}/channels/3`, `${SOCK_DIR}/channels/9`]));
  });
});

describe('writeSysfs', () => {
  const tmp = mkdtemp(join(tmpdir(), 'hvkit-sysfs-'));
  afterAll(async () => rm(await tmp, { recursive: true, force: true }));

  it('writes DIR/<guid>/... as /sys/bus/vmbus/devices holds it, and the files read back', async () => {
    const dir = join(await tmp, 'devices'); // created if missing
    await writeSysfs(dir, snapshot);
    expect((await readdir(dir)).sort()).toEqual([NIC_DIR, HB_DIR, SOCK_DIR].sort());
    expect(await readFile(join(dir, NIC_DIR, 'class_id'), 'utf8')).toBe('{f8615163-df3e-46c5-913f-f2d2f965ed0e}\n');
    expect(await readFile(join(dir, NIC_DIR, 'channel_vp_mapping'), 'utf8')).toBe('14:0\n20:1\n15:2\n');
    expect(await readFile(join(dir, NIC_DIR, 'channels', '20', 'monitor_id'), 'utf8')).toBe('9\n');
    expect((await readdir(join(dir, NIC_DIR, 'channels'))).sort()).toEqual(['14', '15', '20']);
    expect(await readFile(join(dir, HB_DIR, 'id'), 'utf8')).toBe('3\n');
    await expect(readFile(join(dir, SOCK_DIR, 'out_intr_mask'), 'utf8')).rejects.toThrow(/ENOENT/);
    // Every file of the map, nothing more in a device folder.
    const files = sysfsFiles(snapshot);
    for (const [path, text] of files) expect(await readFile(join(dir, ...path.split('/')), 'utf8')).toBe(text);
    const top = (await readdir(join(dir, SOCK_DIR))).sort();
    expect(top).toEqual([...filesOf(files, `${SOCK_DIR}/`).keys(), 'channels'].sort());
  });

  it('writing again overwrites in place', async () => {
    const dir = join(await tmp, 'again');
    await writeSysfs(dir, snapshot);
    const moved: VmbusSnapshot = { ...snapshot, devices: [{ ...heartbeat, channels: [{ ...heartbeat.channels[0]!, targetCpu: 1 }] }] };
    await writeSysfs(dir, moved);
    expect(await readFile(join(dir, HB_DIR, 'channel_vp_mapping'), 'utf8')).toBe('3:1\n');
    expect(await readFile(join(dir, HB_DIR, 'channels', '3', 'cpu'), 'utf8')).toBe('1\n');
  });
});
