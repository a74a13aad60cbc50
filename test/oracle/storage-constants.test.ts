// Storage constants against the Linux oracle: enum vstor_packet_operation and
// storvsc_request_type, the SRB flags and statuses, the protocol versions, channel property
// flags, storvsc's limits and packet size, and the transaction ids of its own requests
// (drivers/scsi/storvsc_drv.c, include/linux/hyperv.h). The sizes of the structures themselves
// are in oracle.test.ts; the sense data (not a Linux structure) is checked against SPC-4 here.
import { describe, expect, it } from 'vitest';
import * as w from '../../src/devices/storage/wire.js';
import { fixedSense, normalizeSense, SenseKey, Asc } from '../../src/devices/storage/scsi.js';
import { loadOracle } from './oracle.js';

const { oracle, source } = loadOracle();
const macro = (name: string): bigint => {
  const m = oracle.macros[name];
  if (!m) throw new Error(`${name} is not in the oracle`);
  return BigInt(m.hex);
};
const enumValues = (name: string): [string, bigint][] => oracle.enums[name]!.values.map((v) => [v.name, BigInt(v.value)]);

describe(`storage constants against the Linux oracle (${source})`, () => {
  it('VSTOR_OPERATION_*: every value of enum vstor_packet_operation', () => {
    const linux = enumValues('vstor_packet_operation');
    expect(linux.length).toBe(14);
    for (const [k, v] of linux) expect(BigInt((w.VstorOp as Record<string, number>)[k.slice('VSTOR_OPERATION_'.length)] ?? -1), k).toBe(v);
  });

  it('enum storvsc_request_type ("matches Windows-end")', () => {
    for (const [k, v] of enumValues('storvsc_request_type')) expect(BigInt((w.StorvscRequestType as Record<string, number>)[k] ?? -1), k).toBe(v);
  });

  it('SRB_FLAGS_* and SRB_STATUS_*: every one Linux defines', () => {
    const flags = Object.keys(oracle.macros).filter((k) => k.startsWith('SRB_FLAGS_'));
    expect(flags.length).toBeGreaterThan(20);
    for (const k of flags) expect(BigInt((w.SrbFlags as Record<string, number>)[k.slice('SRB_FLAGS_'.length)] ?? -1), k).toBe(macro(k));
    const statuses = Object.keys(oracle.macros).filter((k) => k.startsWith('SRB_STATUS_'));
    expect(statuses.length).toBeGreaterThan(5);
    for (const k of statuses) expect(BigInt((w.SrbStatus as Record<string, number>)[k.slice('SRB_STATUS_'.length)] ?? -1), k).toBe(macro(k));
    expect(BigInt(w.SRB_SIMPLE_TAG_REQUEST)).toBe(macro('SRB_SIMPLE_TAG_REQUEST'));
  });

  it('VMSTOR_PROTO_VERSION_*, STORAGE_CHANNEL_*, REQUEST_COMPLETION_FLAG', () => {
    for (const v of ['WIN6', 'WIN7', 'WIN8', 'WIN8_1', 'WIN10'] as const) expect(BigInt(w.VmstorVersion[v]), v).toBe(macro(`VMSTOR_PROTO_VERSION_${v}`));
    expect(BigInt(w.STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL)).toBe(macro('STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL'));
    expect(BigInt(w.STORAGE_CHANNEL_REMOVABLE_FLAG)).toBe(macro('STORAGE_CHANNEL_REMOVABLE_FLAG'));
    expect(BigInt(w.STORAGE_CHANNEL_EMULATED_IDE_FLAG)).toBe(macro('STORAGE_CHANNEL_EMULATED_IDE_FLAG'));
    expect(BigInt(w.REQUEST_COMPLETION_FLAG)).toBe(macro('REQUEST_COMPLETION_FLAG'));
  });

  it("storvsc's limits, sizes and packet size", () => {
    const pairs: [number, string][] = [
      [w.STORVSC_MAX_CMD_LEN, 'STORVSC_MAX_CMD_LEN'],
      [w.STORVSC_SENSE_BUFFER_SIZE, 'STORVSC_SENSE_BUFFER_SIZE'],
      [w.STORVSC_MAX_BUF_LEN_WITH_PADDING, 'STORVSC_MAX_BUF_LEN_WITH_PADDING'],
      [w.STORVSC_MAX_LUNS_PER_TARGET, 'STORVSC_MAX_LUNS_PER_TARGET'],
      [w.STORVSC_MAX_TARGETS, 'STORVSC_MAX_TARGETS'],
      [w.STORVSC_MAX_CHANNELS, 'STORVSC_MAX_CHANNELS'],
      [w.STORVSC_FC_MAX_LUNS_PER_TARGET, 'STORVSC_FC_MAX_LUNS_PER_TARGET'],
      [w.STORVSC_FC_MAX_TARGETS, 'STORVSC_FC_MAX_TARGETS'],
      [w.STORVSC_FC_MAX_CHANNELS, 'STORVSC_FC_MAX_CHANNELS'],
      [w.STORVSC_FC_MAX_XFER_SIZE, 'STORVSC_FC_MAX_XFER_SIZE'],
      [w.STORVSC_IDE_MAX_LUNS_PER_TARGET, 'STORVSC_IDE_MAX_LUNS_PER_TARGET'],
      [w.STORVSC_IDE_MAX_TARGETS, 'STORVSC_IDE_MAX_TARGETS'],
      [w.STORVSC_IDE_MAX_CHANNELS, 'STORVSC_IDE_MAX_CHANNELS'],
      [w.STORVSC_MAX_PKT_SIZE, 'STORVSC_MAX_PKT_SIZE'],
    ];
    for (const [ours, name] of pairs) expect(BigInt(ours), name).toBe(macro(name));
    // The union is the largest member: the 52-byte request; the payload is cdb or sense.
    expect(w.VstorPacket.size - w.VSTOR_PACKET_HEADER).toBe(w.VmscsiRequest.size);
    expect(w.VmscsiRequest.offsets.payload + w.STORVSC_SENSE_BUFFER_SIZE).toBe(w.VmscsiRequest.offsets.reserve);
  });

  it('the Windows 8 extension: 16 bytes, absent before protocol 5.1 (vmscsi_size_delta)', () => {
    expect(w.VmscsiRequest.size - w.VMSCSI_REQUEST_SIZE_PRE_WIN8).toBe(16);
    expect(w.vmscsiRequestSize(w.VmstorVersion.WIN7)).toBe(0x24);
    expect(w.vmscsiRequestSize(w.VmstorVersion.WIN6)).toBe(0x24);
    expect(w.vmscsiRequestSize(w.VmstorVersion.WIN8)).toBe(0x34);
    expect(w.vstorPacketSize(w.VmstorVersion.WIN7)).toBe(48);
    expect(w.vstorPacketSize(w.VmstorVersion.WIN10)).toBe(64);
  });

  it('VMBUS_RQST_INIT and VMBUS_RQST_RESET', () => {
    expect(w.VMBUS_RQST_INIT).toBe(macro('VMBUS_RQST_INIT'));
    expect(w.VMBUS_RQST_RESET).toBe(macro('VMBUS_RQST_RESET'));
  });
});

describe('fixed-format sense data (SPC-4 4.5.3)', () => {
  it('is 18 bytes: response code 0x70, sense key at 2, additional length 10, ASC and ASCQ at 12 and 13', () => {
    expect(w.FixedSense.size).toBe(18);
    const s = fixedSense(SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE);
    expect([...s]).toEqual([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0x00, 0, 0, 0, 0]);
    expect(normalizeSense(s)).toEqual({ responseCode: 0x70, key: 5, asc: 0x21, ascq: 0 });
  });
});
