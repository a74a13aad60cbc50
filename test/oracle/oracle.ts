// Access to the Linux layout oracle (../shared/oracle/linux-hv-layouts.json, read from a real
// kernel's BTF). When the steering repository sits beside this one the full file is used;
// otherwise the vendored subset in test/fixtures, which scripts/oracle-subset.ts extracts and
// oracle.test.ts keeps identical to the full file.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TLFS_LAYOUTS } from '../../src/tlfs/layouts.js';
import { VMBUS_LAYOUTS } from '../../src/vmbus/wire/layouts.js';
import { IC_LAYOUTS } from '../../src/devices/ic/wire.js';
import { HEARTBEAT_LAYOUTS } from '../../src/devices/heartbeat/wire.js';
import { SHUTDOWN_LAYOUTS } from '../../src/devices/shutdown/wire.js';
import { KVP_LAYOUTS } from '../../src/devices/kvp/wire.js';
import { TIMESYNC_LAYOUTS } from '../../src/devices/timesync/wire.js';
import { VSS_LAYOUTS } from '../../src/devices/vss/wire.js';
import { FCOPY_LAYOUTS } from '../../src/devices/fcopy/wire.js';
import { HVSOCK_LAYOUTS } from '../../src/devices/hvsock/wire.js';
import { NET_LAYOUTS } from '../../src/devices/network/wire/index.js';
import { STORAGE_LAYOUTS } from '../../src/devices/storage/wire.js';
import { BALLOON_LAYOUTS } from '../../src/devices/balloon/wire.js';
import { VIDEO_LAYOUTS } from '../../src/devices/video/wire.js';
import { KEYBOARD_LAYOUTS } from '../../src/devices/keyboard/wire.js';
import { MOUSE_LAYOUTS } from '../../src/devices/mouse/wire.js';

/** Every declared layout the oracle checks. */
export const LAYOUTS = [...TLFS_LAYOUTS, ...VMBUS_LAYOUTS, ...IC_LAYOUTS, ...HEARTBEAT_LAYOUTS, ...SHUTDOWN_LAYOUTS, ...KVP_LAYOUTS, ...TIMESYNC_LAYOUTS, ...VSS_LAYOUTS, ...FCOPY_LAYOUTS, ...HVSOCK_LAYOUTS, ...NET_LAYOUTS, ...STORAGE_LAYOUTS, ...BALLOON_LAYOUTS, ...VIDEO_LAYOUTS, ...KEYBOARD_LAYOUTS, ...MOUSE_LAYOUTS];

const here = dirname(fileURLToPath(import.meta.url));
export const FULL_ORACLE_PATH = resolve(here, '../../../shared/oracle/linux-hv-layouts.json');
export const SUBSET_PATH = resolve(here, '../fixtures/oracle-subset.json');

export interface OracleField {
  name: string;
  offset_bytes: number;
  size_bytes: number;
  bit_offset?: number;
  bit_size?: number;
}
export interface OracleStruct {
  name: string;
  kind: string;
  size: number;
  flat?: OracleField[];
  fields: OracleField[];
}
export interface OracleEnum {
  values: { name: string; value: number | string }[];
}
export interface OracleSubset {
  kernel: unknown;
  structs: Record<string, OracleStruct>;
  enums: Record<string, OracleEnum>;
  macros: Record<string, { value: number | string; hex: string }>;
  guids: Record<string, { guid: string; bytes: string | number[] }>;
}

/** Enums whose values hvkit declares. */
export const WANTED_ENUMS = [
  'hv_message_type',
  'HV_GENERIC_SET_FORMAT',
  'hv_interrupt_source',
  'hv_mem_host_visibility',
  'hv_isolation_type',
  'vmbus_channel_message_type',
  'vmbus_packet_type',
  'vmbus_channel_state',
  'hv_kvp_exchg_op',
  'hv_kvp_exchg_pool',
  'hvutil_device_state',
  'hv_vss_op',
  'hv_fcopy_op',
  'ndis_per_pkt_info_type',
  'nvsp_subchannel_operation',
  'nvsp_vm_datapath',
  'rndis_per_pkt_info_interal_type',
  'vstor_packet_operation',
  'storvsc_request_type',
  'dm_message_type',
  'dm_info_type',
  'hv_dm_state',
  'synthvid_msg_type',
  'synth_kbd_msg_type',
  'synthhid_msg_type',
  'pipe_prot_msg_type',
];
/** Macro families hvkit declares constants for (anonymous-enum constants count as macros). */
export const WANTED_MACRO =
  /^(HV_|HVCALL_|HYPERV_|HVMSG_|VERSION_|VMBUS_|MAX_(SIZE_CHANNEL|USER_DEFINED|PIPE_USER|PAGE_BUFFER|MULTIPAGE|CHANNEL_RELIDS)|ICMSG|ICTIMESYNCFLAG_|WLTIMEDELTA|IC_VERSION_NEGOTIATION|UTIL_(FW|WS2K8)_|(HB|SD|TS|VSS)_(MAJOR|MINOR|VERSION|VER_COUNT)|(WIN7|WIN8|WS2008)_SRV_VERSION|(FW|KVP|FCOPY)_VER_COUNT|KVP_OP_REGISTER|REG_(SZ|U32|U64)$|ADDR_FAMILY_|MAX_(ADAPTER_ID|IP_ADDR|GATEWAY)_SIZE$|VSS_(OP_REGISTER|HBU_|FREEZE_TIMEOUT|MAX_PKT_SIZE)|W_MAX_PATH$|OVER_WRITE$|CREATE_PATH$|DATA_FRAGMENT$|FCOPY_(VERSION_|CURRENT_VERSION)|HVS_|RINGBUFFER_HVS_|NVSP_|NVSC_|NETVSC_|NDIS_|RNDIS_|OID_|VRSS_|ITAB_NUM|TRANSPORT_INFO_|VERSION_4_OFFLOAD_SIZE$|HV_(DEFAULT|TCP4|TCP6|UDP4|UDP6)_L4HASH$|SRB_|STORVSC_|VMSTOR_|STORAGE_CHANNEL_|REQUEST_COMPLETION_FLAG$|MAX_MULTIPAGE_BUFFER_|DYNMEM_|HA_CHUNK$|PAGES_IN_2M$|SYNTHVID_|HVFB_|CURSOR_|RING_BUFSIZE$|SYNTH_KBD_|IS_(UNICODE|BREAK|E0|E1)$|XTKBD_|HK_MAXIMUM|KBD_VSC_|INPUTVSC_|SYNTHHID_)/;

interface FullOracle {
  kernel: unknown;
  structs: Record<string, OracleStruct>;
  enums: Record<string, OracleEnum>;
  anonymous_enums: (OracleEnum & { values: { name: string; value: number | string; hex: string }[] })[];
  compiled: {
    structs: Record<string, OracleStruct>;
    enums: Record<string, OracleEnum>;
    macros: Record<string, { value: number | string; hex: string }>;
    guids: Record<string, { guid: string; bytes: string | number[] }>;
  };
}

/** The subset of the full oracle that hvkit's declarations need. Deterministic. */
export function extractSubset(full: FullOracle): OracleSubset {
  const structs: Record<string, OracleStruct> = {};
  for (const l of LAYOUTS) {
    const s = full.structs[l.name] ?? full.compiled.structs[l.name];
    if (s) structs[l.name] = { name: s.name, kind: s.kind, size: s.size, fields: s.fields, ...(s.flat ? { flat: s.flat } : {}) };
  }
  const enums: Record<string, OracleEnum> = {};
  for (const n of WANTED_ENUMS) {
    const e = full.enums[n] ?? full.compiled.enums[n];
    if (e) enums[n] = { values: e.values.map((v) => ({ name: v.name, value: v.value })) };
  }
  const all = new Map<string, { value: number | string; hex: string }>(Object.entries(full.compiled.macros));
  for (const e of full.anonymous_enums) for (const v of e.values) if (!all.has(v.name)) all.set(v.name, { value: v.value, hex: v.hex });
  const macros: Record<string, { value: number | string; hex: string }> = {};
  for (const [k, v] of [...all].sort(([a], [b]) => a.localeCompare(b))) {
    if (WANTED_MACRO.test(k)) macros[k] = { value: v.value, hex: v.hex };
  }
  return { kernel: full.kernel, structs, enums, macros, guids: full.compiled.guids };
}

/** HVKIT_ORACLE=subset runs the checks as a machine without the steering repository would. */
export function fullOracle(): FullOracle | undefined {
  if (process.env['HVKIT_ORACLE'] === 'subset') return undefined;
  return existsSync(FULL_ORACLE_PATH) ? (JSON.parse(readFileSync(FULL_ORACLE_PATH, 'utf8')) as FullOracle) : undefined;
}

export function loadOracle(): { oracle: OracleSubset; source: 'full' | 'subset' } {
  const full = fullOracle();
  if (full) return { oracle: extractSubset(full), source: 'full' };
  return { oracle: JSON.parse(readFileSync(SUBSET_PATH, 'utf8')) as OracleSubset, source: 'subset' };
}
