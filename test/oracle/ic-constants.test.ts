// Integration-component constants against the Linux oracle: message types, header flags, the
// statuses, the framework and service versions Linux's util drivers offer, hv_util.c's ring and
// receive buffer sizes and the default max_pkt_size, and what the daemon-backed services share
// (hyperv_vmbus.h: hvutil_device_state, HV_UTIL_TIMEOUT, HV_UTIL_NEGO_TIMEOUT).
import { describe, expect, it } from 'vitest';
import { UTIL_RECV_BUFFER_BYTES, utilRingBytes } from '../../src/devices/ic/guest.js';
import { HvutilState, HV_UTIL_NEGO_TIMEOUT_NS, HV_UTIL_TIMEOUT_NS } from '../../src/devices/ic/transport.js';
import * as ic from '../../src/devices/ic/wire.js';
import { HeartbeatMessage, HeartbeatMsgData } from '../../src/devices/heartbeat/wire.js';
import { VMBUS_DEFAULT_MAX_PKT_SIZE } from '../../src/vmbus/wire/constants.js';
import { loadOracle } from './oracle.js';

const { oracle, source } = loadOracle();
const macro = (name: string): bigint => {
  const m = oracle.macros[name];
  if (!m) throw new Error(`${name} is not in the oracle`);
  return BigInt(m.hex);
};

describe(`IC constants against the Linux oracle (${source})`, () => {
  it('ICMSGTYPE_*: every Linux message type is declared with its value', () => {
    const linux = Object.keys(oracle.macros).filter((k) => k.startsWith('ICMSGTYPE_'));
    expect(linux.length).toBe(7);
    for (const k of linux) expect(BigInt((ic.IcMsgType as Record<string, number>)[k.slice('ICMSGTYPE_'.length)] ?? -1), k).toBe(macro(k));
  });

  it('ICMSGHDRFLAG_*, ICMSG_HDR and the negotiation limit', () => {
    expect(BigInt(ic.IcMsgHdrFlag.TRANSACTION)).toBe(macro('ICMSGHDRFLAG_TRANSACTION'));
    expect(BigInt(ic.IcMsgHdrFlag.REQUEST)).toBe(macro('ICMSGHDRFLAG_REQUEST'));
    expect(BigInt(ic.IcMsgHdrFlag.RESPONSE)).toBe(macro('ICMSGHDRFLAG_RESPONSE'));
    expect(BigInt(ic.ICMSG_HDR)).toBe(macro('ICMSG_HDR'));
    expect(BigInt(ic.IC_VERSION_NEGOTIATION_MAX_VER_COUNT)).toBe(macro('IC_VERSION_NEGOTIATION_MAX_VER_COUNT'));
  });

  it('statuses (include/uapi/linux/hyperv.h)', () => {
    const pairs: [number, string][] = [
      [ic.HV_S_OK, 'HV_S_OK'],
      [ic.HV_E_FAIL, 'HV_E_FAIL'],
      [ic.HV_S_CONT, 'HV_S_CONT'],
      [ic.HV_ERROR_NOT_SUPPORTED, 'HV_ERROR_NOT_SUPPORTED'],
      [ic.HV_ERROR_MACHINE_LOCKED, 'HV_ERROR_MACHINE_LOCKED'],
      [ic.HV_ERROR_DEVICE_NOT_CONNECTED, 'HV_ERROR_DEVICE_NOT_CONNECTED'],
      [ic.HV_INVALIDARG, 'HV_INVALIDARG'],
      [ic.HV_GUID_NOTFOUND, 'HV_GUID_NOTFOUND'],
      [ic.HV_ERROR_ALREADY_EXISTS, 'HV_ERROR_ALREADY_EXISTS'],
      [ic.HV_ERROR_DISK_FULL, 'HV_ERROR_DISK_FULL'],
    ];
    for (const [ours, name] of pairs) expect(BigInt(ours), name).toBe(macro(name));
  });

  it("the versions Linux 6.1's util drivers offer, in its order", () => {
    const V = ic.LINUX_UTIL_VERSIONS;
    const big = (vs: readonly number[]) => vs.map(BigInt);
    expect(BigInt(ic.UTIL_FW_VERSION)).toBe(macro('UTIL_FW_VERSION'));
    expect(BigInt(ic.UTIL_WS2K8_FW_VERSION)).toBe(macro('UTIL_WS2K8_FW_VERSION'));
    expect(big(V.shutdown.framework)).toEqual([macro('UTIL_FW_VERSION'), macro('UTIL_WS2K8_FW_VERSION')]);
    expect(BigInt(V.shutdown.framework.length)).toBe(macro('FW_VER_COUNT'));
    expect(big(V.shutdown.message)).toEqual([macro('SD_VERSION_3_2'), macro('SD_VERSION_3_1'), macro('SD_VERSION'), macro('SD_VERSION_1')]);
    expect(BigInt(V.shutdown.message.length)).toBe(macro('SD_VER_COUNT'));
    expect(big(V.timesync.message)).toEqual([macro('TS_VERSION'), macro('TS_VERSION_3'), macro('TS_VERSION_1')]);
    expect(BigInt(V.timesync.message.length)).toBe(macro('TS_VER_COUNT'));
    expect(big(V.heartbeat.message)).toEqual([macro('HB_VERSION'), macro('HB_VERSION_1')]);
    expect(BigInt(V.heartbeat.message.length)).toBe(macro('HB_VER_COUNT'));
    expect(big(V.kvp.message)).toEqual([macro('WIN8_SRV_VERSION'), macro('WIN7_SRV_VERSION'), macro('WS2008_SRV_VERSION')]);
    expect(BigInt(V.kvp.message.length)).toBe(macro('KVP_VER_COUNT'));
    expect(big(V.vss.message)).toEqual([macro('VSS_VERSION')]);
    expect(BigInt(V.vss.framework.length)).toBe(macro('FW_VER_COUNT@drivers/hv/hv_snapshot.c'));
    expect(big(V.fcopy.message)).toEqual([macro('WIN8_SRV_VERSION@drivers/hv/hv_fcopy.c')]);
    expect(BigInt(V.fcopy.framework.length)).toBe(macro('FW_VER_COUNT@drivers/hv/hv_fcopy.c'));
  });

  it("hv_util.c's rings: VMBUS_RING_SIZE(3 * HV_HYP_PAGE_SIZE) with 4 KiB pages", () => {
    expect(BigInt(utilRingBytes(4096))).toBe(macro('HV_UTIL_RING_SEND_SIZE'));
    expect(BigInt(utilRingBytes(4096))).toBe(macro('HV_UTIL_RING_RECV_SIZE'));
  });

  it("util_probe's receive buffer (HV_HYP_PAGE_SIZE * 4) and a channel's max_pkt_size until a service raises it", () => {
    expect(BigInt(UTIL_RECV_BUFFER_BYTES)).toBe(4n * macro('HV_HYP_PAGE_SIZE'));
    expect(BigInt(VMBUS_DEFAULT_MAX_PKT_SIZE)).toBe(macro('VMBUS_DEFAULT_MAX_PKT_SIZE'));
  });

  it('enum hvutil_device_state, in order, and HV_UTIL_TIMEOUT / HV_UTIL_NEGO_TIMEOUT (seconds)', () => {
    const states = oracle.enums['hvutil_device_state']!.values;
    expect(states.length).toBe(Object.keys(HvutilState).length);
    for (const x of states) expect(BigInt((HvutilState as Record<string, number>)[x.name.slice('HVUTIL_'.length)] ?? -1), x.name).toBe(BigInt(x.value));
    expect(BigInt(HV_UTIL_TIMEOUT_NS / 1e9)).toBe(macro('HV_UTIL_TIMEOUT'));
    expect(BigInt(HV_UTIL_NEGO_TIMEOUT_NS / 1e9)).toBe(macro('HV_UTIL_NEGO_TIMEOUT'));
  });

  it("the host's heartbeat body begins with Linux's seq_num", () => {
    expect(HeartbeatMessage.offsets.sequence_number).toBe(HeartbeatMsgData.offsets.seq_num);
    expect(HeartbeatMessage.fields.sequence_number.size).toBe(HeartbeatMsgData.fields.seq_num.size);
    // Linux's length check: ICMSG_HDR + sizeof(u64) of the 40-byte struct.
    expect(HeartbeatMessage.size).toBeGreaterThanOrEqual(8);
  });
});
