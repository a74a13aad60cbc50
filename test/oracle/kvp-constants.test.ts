// KVP constants against the Linux oracle: the operations and pools (enum hv_kvp_exchg_op,
// hv_kvp_exchg_pool), the daemon registrations, value types, address families, the size limits
// of include/uapi/linux/hyperv.h, and hv_kvp_init's max_pkt_size (the transaction states and
// timeouts the daemon-backed services share are checked in ic-constants.test.ts).
import { describe, expect, it } from 'vitest';
import { KvpRecord } from '../../src/devices/kvp/pool.js';
import * as kvp from '../../src/devices/kvp/wire.js';
import { loadOracle } from './oracle.js';

const { oracle, source } = loadOracle();
const macro = (name: string): bigint => {
  const m = oracle.macros[name];
  if (!m) throw new Error(`${name} is not in the oracle`);
  return BigInt(m.hex);
};
const enumValues = (name: string): [string, bigint][] => oracle.enums[name]!.values.map((v) => [v.name, BigInt(v.value)]);

describe(`KVP constants against the Linux oracle (${source})`, () => {
  it('KVP_OP_*: every operation of enum hv_kvp_exchg_op, and the two registrations', () => {
    const linux = enumValues('hv_kvp_exchg_op');
    expect(linux.length).toBe(7);
    for (const [k, v] of linux) expect(BigInt((kvp.KvpOp as Record<string, number>)[k.slice('KVP_OP_'.length)] ?? -1), k).toBe(v);
    expect(BigInt(kvp.KVP_OP_REGISTER)).toBe(macro('KVP_OP_REGISTER'));
    expect(BigInt(kvp.KVP_OP_REGISTER1)).toBe(macro('KVP_OP_REGISTER1'));
  });

  it('KVP_POOL_*: every pool of enum hv_kvp_exchg_pool', () => {
    const linux = enumValues('hv_kvp_exchg_pool');
    expect(linux.map(([k]) => k)).toEqual(['KVP_POOL_EXTERNAL', 'KVP_POOL_GUEST', 'KVP_POOL_AUTO', 'KVP_POOL_AUTO_EXTERNAL', 'KVP_POOL_AUTO_INTERNAL', 'KVP_POOL_COUNT']);
    for (const [k, v] of linux) expect(BigInt((kvp.KvpPool as Record<string, number>)[k.slice('KVP_POOL_'.length)] ?? -1), k).toBe(v);
  });

  it('value types, address families and the size limits', () => {
    expect(BigInt(kvp.RegType.SZ)).toBe(macro('REG_SZ'));
    expect(BigInt(kvp.RegType.U32)).toBe(macro('REG_U32'));
    expect(BigInt(kvp.RegType.U64)).toBe(macro('REG_U64'));
    expect(BigInt(kvp.AddrFamily.NONE)).toBe(macro('ADDR_FAMILY_NONE'));
    expect(BigInt(kvp.AddrFamily.IPV4)).toBe(macro('ADDR_FAMILY_IPV4'));
    expect(BigInt(kvp.AddrFamily.IPV6)).toBe(macro('ADDR_FAMILY_IPV6'));
    expect(BigInt(kvp.HV_KVP_EXCHANGE_MAX_KEY_SIZE)).toBe(macro('HV_KVP_EXCHANGE_MAX_KEY_SIZE'));
    expect(BigInt(kvp.HV_KVP_EXCHANGE_MAX_VALUE_SIZE)).toBe(macro('HV_KVP_EXCHANGE_MAX_VALUE_SIZE'));
    expect(BigInt(kvp.MAX_ADAPTER_ID_SIZE)).toBe(macro('MAX_ADAPTER_ID_SIZE'));
    expect(BigInt(kvp.MAX_IP_ADDR_SIZE)).toBe(macro('MAX_IP_ADDR_SIZE'));
    expect(BigInt(kvp.MAX_GATEWAY_SIZE)).toBe(macro('MAX_GATEWAY_SIZE'));
  });

  it('hv_kvp_init: max_pkt_size = HV_HYP_PAGE_SIZE * 4, which the IP-info requests need (28 + 7430 bytes)', () => {
    expect(BigInt(kvp.KVP_MAX_PKT_SIZE)).toBe(4n * macro('HV_HYP_PAGE_SIZE'));
    expect(kvp.KVP_MAX_PKT_SIZE).toBeGreaterThan(16 + 28 + oracle.structs['hv_kvp_ip_msg']!.size);
  });

  it("the host's request body is an hv_kvp_msg prefix holding the largest non-IP member (OpenVMM's KvpMessage, 2580 bytes)", () => {
    const body = oracle.structs['hv_kvp_msg']!.fields.find((f) => f.name === 'body')!;
    const enumerate = oracle.structs['hv_kvp_msg_enumerate']!.size;
    expect(kvp.KVP_EXCHANGE_BYTES).toBe(body.offset_bytes + enumerate);
    expect(kvp.KVP_EXCHANGE_BYTES).toBe(2580);
  });

  it("the daemon's kvp_record is a key of HV_KVP_EXCHANGE_MAX_KEY_SIZE then a value of _VALUE_SIZE (tools/hv/hv_kvp_daemon.c)", () => {
    expect([KvpRecord.offsets.key, KvpRecord.offsets.value, KvpRecord.size]).toEqual([0, Number(macro('HV_KVP_EXCHANGE_MAX_KEY_SIZE')), 2560]);
  });
});
