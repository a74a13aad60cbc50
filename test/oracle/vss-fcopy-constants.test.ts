// VSS and file-copy constants against the Linux oracle: the operations, the daemon registration
// values, the hot-backup flag, the timeouts and packet sizes of hv_snapshot.c and hv_fcopy.c, the
// copy flags, W_MAX_PATH and DATA_FRAGMENT, and the union views of hv_vss_msg.
import { describe, expect, it } from 'vitest';
import * as F from '../../src/devices/fcopy/wire.js';
import * as V from '../../src/devices/vss/wire.js';
import { loadOracle } from './oracle.js';

const { oracle, source } = loadOracle();
const macro = (name: string): bigint => {
  const m = oracle.macros[name];
  if (!m) throw new Error(`${name} is not in the oracle`);
  return BigInt(m.hex);
};
const enumValues = (name: string): Map<string, bigint> => new Map(oracle.enums[name]!.values.map((x) => [x.name, BigInt(x.value)]));

describe(`VSS and file-copy constants against the Linux oracle (${source})`, () => {
  it('enum hv_vss_op: every value declared', () => {
    const e = enumValues('hv_vss_op');
    expect(e.size).toBe(9);
    for (const [k, val] of e) expect(BigInt((V.VssOp as Record<string, number>)[k.slice('VSS_OP_'.length)] ?? -1), k).toBe(val);
  });

  it('enum hv_fcopy_op', () => {
    const f = enumValues('hv_fcopy_op');
    expect(f.size).toBe(4);
    for (const [k, val] of f) expect(BigInt((F.FcopyOp as Record<string, number>)[k] ?? -1), k).toBe(val);
  });

  it('hv_snapshot.c and the uapi VSS values', () => {
    expect(BigInt(V.VSS_OP_REGISTER)).toBe(macro('VSS_OP_REGISTER'));
    expect(BigInt(V.VSS_OP_REGISTER1)).toBe(macro('VSS_OP_REGISTER1'));
    expect(BigInt(V.VSS_HBU_NO_AUTO_RECOVERY)).toBe(macro('VSS_HBU_NO_AUTO_RECOVERY'));
    expect(BigInt(V.VSS_VERSION)).toBe(macro('VSS_VERSION'));
    expect(BigInt(V.VSS_MAX_PKT_SIZE)).toBe(macro('VSS_MAX_PKT_SIZE'));
    expect(BigInt(V.VSS_FREEZE_TIMEOUT_S)).toBe(macro('VSS_FREEZE_TIMEOUT'));
  });

  it('hv_fcopy.c and the uapi file-copy values', () => {
    expect(BigInt(F.W_MAX_PATH)).toBe(macro('W_MAX_PATH'));
    expect(BigInt(F.OVER_WRITE)).toBe(macro('OVER_WRITE'));
    expect(BigInt(F.CREATE_PATH)).toBe(macro('CREATE_PATH'));
    expect(BigInt(F.DATA_FRAGMENT)).toBe(macro('DATA_FRAGMENT'));
    expect(BigInt(F.FCOPY_VERSION_0)).toBe(macro('FCOPY_VERSION_0'));
    expect(BigInt(F.FCOPY_VERSION_1)).toBe(macro('FCOPY_VERSION_1'));
    expect(BigInt(F.FCOPY_CURRENT_VERSION)).toBe(macro('FCOPY_CURRENT_VERSION'));
    expect(BigInt(F.FCOPY_VERSION)).toBe(macro('WIN8_SRV_VERSION@drivers/hv/hv_fcopy.c'));
    // hv_fcopy_init: max_pkt_size = HV_HYP_PAGE_SIZE * 2, room for a whole WRITE_TO_FILE with its descriptor.
    expect(BigInt(F.FCOPY_MAX_PKT_SIZE)).toBe(2n * macro('HV_HYP_PAGE_SIZE'));
    expect(F.FCOPY_MAX_PKT_SIZE).toBeGreaterThan(16 + 28 + oracle.structs['hv_do_fcopy']!.size);
  });

  it("hv_vss_msg's union members sit where VssAt declares them: error over the operation, dm_info.flags over vss_cf.flags", () => {
    const s = oracle.structs['hv_vss_msg']!;
    const at = (n: string) => (s.flat ?? s.fields).find((f) => f.name === n)!;
    expect(at('error').offset_bytes).toBe(V.VssAt.error);
    expect(at('error').size_bytes).toBe(4);
    expect(at('vss_hdr.operation').offset_bytes).toBe(V.VssAt.operation);
    expect(at('vss_cf.flags').offset_bytes).toBe(V.VssAt.flags);
    expect(at('dm_info.flags').offset_bytes).toBe(V.VssAt.flags);
    expect(V.HvVssCheckDmInfo.size).toBe(V.HvVssCheckFeature.size);
  });
});
