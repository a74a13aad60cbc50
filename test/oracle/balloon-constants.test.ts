// Dynamic memory constants against the Linux oracle: enum dm_message_type, dm_info_type,
// hv_dm_state, the DYNMEM_PROTOCOL_VERSION_* enum, HA_CHUNK and PAGES_IN_2M
// (drivers/hv/hv_balloon.c). The structures themselves are in oracle.test.ts.
import { describe, expect, it } from 'vitest';
import * as w from '../../src/devices/balloon/wire.js';
import { loadOracle } from './oracle.js';

const { oracle, source } = loadOracle();
const macro = (name: string): bigint => {
  const m = oracle.macros[name];
  if (!m) throw new Error(`${name} is not in the oracle`);
  return BigInt(m.hex);
};
const enumValues = (name: string): [string, bigint][] => oracle.enums[name]!.values.map((v) => [v.name, BigInt(v.value)]);

describe(`dynamic memory constants against the Linux oracle (${source})`, () => {
  it('enum dm_message_type: every value', () => {
    const linux = enumValues('dm_message_type');
    expect(linux.length).toBe(15);
    for (const [k, v] of linux) expect(BigInt((w.DmMessageType as Record<string, number>)[k] ?? -1), k).toBe(v);
  });

  it('enum dm_info_type and enum hv_dm_state', () => {
    for (const [k, v] of enumValues('dm_info_type')) expect(BigInt((w.DmInfoType as Record<string, number>)[k] ?? -1), k).toBe(v);
    const states = enumValues('hv_dm_state');
    expect(states.length).toBe(6);
    for (const [k, v] of states) expect(BigInt((w.HvDmState as Record<string, number>)[k] ?? -1), k).toBe(v);
  });

  it('DYNMEM_PROTOCOL_VERSION_*: every one, and how the guest prints them', () => {
    const linux = Object.keys(oracle.macros).filter((k) => k.startsWith('DYNMEM_PROTOCOL_VERSION_'));
    expect(linux.length).toBe(7);
    for (const k of linux) {
      const ours = (w.DynmemVersion as Record<string, number>)[k] ?? (w.DynmemVersion as Record<string, number>)[k.slice('DYNMEM_PROTOCOL_VERSION_'.length)];
      expect(BigInt(ours ?? -1), k).toBe(macro(k));
    }
    expect(w.dynmemVersionString(w.DynmemVersion.WIN7)).toBe('0.3');
    expect(w.dynmemVersionString(w.DynmemVersion.WIN8)).toBe('1.0');
    expect(w.dynmemVersionString(w.DynmemVersion.WIN10)).toBe('2.0');
  });

  it('HA_CHUNK and PAGES_IN_2M for 4 KiB pages', () => {
    expect(BigInt(w.haChunk(4096))).toBe(macro('HA_CHUNK'));
    expect(BigInt(w.pagesIn2M(4096))).toBe(macro('PAGES_IN_2M'));
  });

  it('a balloon response of the most ranges fills the 4 KiB send buffer and no more', () => {
    expect(w.DmBalloonResponse.size + w.MAX_RANGES_PER_BALLOON_RESPONSE * w.DmMemPageRange.size).toBeLessThanOrEqual(w.DM_PAGE_SIZE);
    expect(w.DmBalloonResponse.size + (w.MAX_RANGES_PER_BALLOON_RESPONSE + 1) * w.DmMemPageRange.size).toBeGreaterThan(w.DM_PAGE_SIZE);
  });
});
