// VMBus constants, enums and class GUIDs against the Linux oracle.
import { AddRemoveTransferPageSet, AdditionalData, DataGpadl, EstablishGpadl, TeardownGpadl } from '../../src/vmbus/wire/packets.js';
import { describe, expect, it } from 'vitest';
import { guidToBytes } from '../../src/tlfs/struct.js';
import * as c from '../../src/vmbus/wire/constants.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { loadOracle } from './oracle.js';

const { oracle, source } = loadOracle();
const macro = (name: string): bigint => {
  const m = oracle.macros[name];
  if (!m) throw new Error(`${name} is not in the oracle`);
  return BigInt(m.hex);
};
const enumValues = (name: string) => new Map(oracle.enums[name]!.values.map((v) => [v.name, BigInt(v.value)]));

describe(`VMBus constants against the Linux oracle (${source})`, () => {
  it('channel message types (enum vmbus_channel_message_type)', () => {
    const e = enumValues('vmbus_channel_message_type');
    for (const [name, v] of e) {
      const key = name.replace('CHANNELMSG_', '').replace(/^(\d+)$/, 'MSG_$1');
      expect(BigInt((c.ChannelMessageType as Record<string, number>)[key] ?? -1), name).toBe(v);
    }
    expect(e.size).toBe(Object.keys(c.ChannelMessageType).length);
  });

  it('packet types (enum vmbus_packet_type)', () => {
    for (const [name, v] of enumValues('vmbus_packet_type')) expect(BigInt((c.PacketType as Record<string, number>)[name.replace('VM_PKT_', '')] ?? -1), name).toBe(v);
  });

  it('protocol versions Linux 6.1 knows', () => {
    for (const [k, v] of Object.entries(c.VmbusVersion)) {
      if (k === 'WIN10_V6_0') continue; // newer than 6.1 (confidential VMBus, 2025)
      expect(BigInt(v), k).toBe(macro(`VERSION_${k}`));
    }
    expect(c.VmbusVersion.WIN10_V6_0).toBe(0x60000);
  });

  it('connection ids, SINT, flags and sizes', () => {
    const pairs: [number, string][] = [
      [c.VMBUS_MESSAGE_SINT, 'VMBUS_MESSAGE_SINT'],
      [c.VMBUS_MESSAGE_CONNECTION_ID, 'VMBUS_MESSAGE_CONNECTION_ID'],
      [c.VMBUS_MESSAGE_CONNECTION_ID_4, 'VMBUS_MESSAGE_CONNECTION_ID_4'],
      [c.VMBUS_MESSAGE_PORT_ID, 'VMBUS_MESSAGE_PORT_ID'],
      [c.VMBUS_EVENT_CONNECTION_ID, 'VMBUS_EVENT_CONNECTION_ID'],
      [c.VMBUS_EVENT_PORT_ID, 'VMBUS_EVENT_PORT_ID'],
      [c.VMBUS_MONITOR_CONNECTION_ID, 'VMBUS_MONITOR_CONNECTION_ID'],
      [c.VMBUS_MONITOR_PORT_ID, 'VMBUS_MONITOR_PORT_ID'],
      [c.MAX_SIZE_CHANNEL_MESSAGE, 'MAX_SIZE_CHANNEL_MESSAGE'],
      [c.MAX_USER_DEFINED_BYTES, 'MAX_USER_DEFINED_BYTES'],
      [c.MAX_PIPE_USER_DEFINED_BYTES, 'MAX_PIPE_USER_DEFINED_BYTES'],
      [c.VMBUS_PIPE_TYPE_BYTE, 'VMBUS_PIPE_TYPE_BYTE'],
      [c.VMBUS_PIPE_TYPE_MESSAGE, 'VMBUS_PIPE_TYPE_MESSAGE'],
      [c.VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, 'VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED'],
      [c.VMBUS_PKT_TRAILER, 'VMBUS_PKT_TRAILER'],
      [c.VMBUS_DEFAULT_MAX_PKT_SIZE, 'VMBUS_DEFAULT_MAX_PKT_SIZE'],
      [c.MAX_PAGE_BUFFER_COUNT, 'MAX_PAGE_BUFFER_COUNT'],
      [c.MAX_MULTIPAGE_BUFFER_COUNT, 'MAX_MULTIPAGE_BUFFER_COUNT'],
      [c.VMBUS_CONNECT_CPU, 'VMBUS_CONNECT_CPU'],
      [c.ChannelFlags.ENUMERATE_DEVICE_INTERFACE, 'VMBUS_CHANNEL_ENUMERATE_DEVICE_INTERFACE'],
      [c.ChannelFlags.CONFIDENTIAL_RING_BUFFER, 'VMBUS_CHANNEL_SERVER_SUPPORTS_TRANSFER_PAGES'],
      [c.ChannelFlags.CONFIDENTIAL_EXTERNAL_MEMORY, 'VMBUS_CHANNEL_SERVER_SUPPORTS_GPADLS'],
      [c.ChannelFlags.NAMED_PIPE_MODE, 'VMBUS_CHANNEL_NAMED_PIPE_MODE'],
      [c.ChannelFlags.LOOPBACK_OFFER, 'VMBUS_CHANNEL_LOOPBACK_OFFER'],
      [c.ChannelFlags.PARENT_OFFER, 'VMBUS_CHANNEL_PARENT_OFFER'],
      [c.ChannelFlags.REQUEST_MONITORED_NOTIFICATION, 'VMBUS_CHANNEL_REQUEST_MONITORED_NOTIFICATION'],
      [c.ChannelFlags.TLNPI_PROVIDER_OFFER, 'VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER'],
    ];
    for (const [ours, name] of pairs) expect(BigInt(ours), name).toBe(macro(name));
  });

  it('device class GUIDs: text and wire bytes', () => {
    for (const [k, g] of Object.entries(DeviceClass)) {
      const o = oracle.guids[`HV_${k}_GUID`];
      expect(o, `HV_${k}_GUID`).toBeDefined();
      expect(g).toBe(o!.guid);
      expect(Buffer.from(guidToBytes(g)).toString('hex')).toBe(o!.bytes);
    }
  });

  it('channel states (enum vmbus_channel_state)', () => {
    const e = enumValues('vmbus_channel_state');
    expect([...e.values()]).toEqual([0n, 1n, 2n, 3n]);
  });
});

describe('legacy packet layouts as vmbus.md §8.2 lists them (DATA_USING_GPADL is not in the oracle)', () => {
  it('sizes and offsets as the spec lists them', () => {
    // "descriptor, u32 gpadl, u16 pageset id, u16 reserved = 24 bytes"
    expect([AddRemoveTransferPageSet.size, AddRemoveTransferPageSet.offsets.gpadl, AddRemoveTransferPageSet.offsets.xfer_pageset_id]).toEqual([24, 16, 20]);
    // "descriptor, u32 gpadl, u32 range count, ranges" (Linux declares room for one range)
    expect([EstablishGpadl.offsets.range_cnt, EstablishGpadl.offsets.range]).toEqual([20, 24]);
    // "descriptor, u32 gpadl, u32 reserved = 24 bytes" (teardown; DATA_USING_GPADL the same)
    expect([TeardownGpadl.size, DataGpadl.size, DataGpadl.offsets.gpadl]).toEqual([24, 24, 16]);
    // "descriptor, u64 total bytes, u32 offset, u32 byte count, data"
    expect([AdditionalData.offsets.total_bytes, AdditionalData.offsets.offset, AdditionalData.offsets.byte_cnt, AdditionalData.offsets.data]).toEqual([16, 24, 28, 32]);
    expect(AddRemoveTransferPageSet.size).toBe(24);
  });
});
