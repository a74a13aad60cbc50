// What each emulated Hyper-V release offers in an IC's NEGOTIATE request (DESIGN.md principle 5:
// versions are data). Microsoft does not document these sets; the sources are, per entry:
//  - framework 1.0 and 3.0: OpenVMM hyperv_ic/src/common.rs FRAMEWORK_VERSIONS (sent in that
//    order), and Linux's fw_versions (hv_util.c), which knows no others;
//  - heartbeat 1.0 and 3.0: the only heartbeat versions Linux knows (hv_util.c hb_versions);
//    Linux before 4.11 chose 3.0 for every host from Windows 7 on (util_probe), and guests on
//    Windows 10 2004 and WS2022 hosts log "Heartbeat IC version 3.0" (captured dmesg);
//  - shutdown 3.1 adds restart: the 2020 Linux commit "hv_utils: Support host-initiated restart
//    request" says newer Hyper-V hosts can also ask for a restart, and Msvm_ShutdownComponent's
//    InitiateReboot needs Windows Server 2016; 3.2 adds hibernate: the Linux commit "hv_utils:
//    Support host-initiated hibernation request" says the host needs that version to send it, and
//    a guest on a Windows 10 2004 (build 19041) host logs "Shutdown IC version 3.2"; OpenVMM
//    offers 1.0, 3.0, 3.1, 3.2 (hyperv_ic/src/shutdown.rs SHUTDOWN_VERSIONS).
import type { ReleaseId } from '../../hypervisor/release.js';
import { icVersion, UTIL_FW_VERSION, UTIL_WS2K8_FW_VERSION } from './wire.js';

/** The versions a host lists in its NEGOTIATE request, in the order it lists them. */
export interface IcVersionOffer {
  readonly framework: readonly number[];
  readonly message: readonly number[];
}

/**
 * The ICs whose host tables live here. The later ICs (time sync, KVP, VSS, file copy) keep their
 * own per-release tables beside their host and pass them to icOffer.
 */
export type HostIcName = 'heartbeat' | 'shutdown';

/** Every release lists both framework versions, oldest first as OpenVMM does. */
export const HOST_FRAMEWORK_VERSIONS: readonly number[] = [UTIL_WS2K8_FW_VERSION, UTIL_FW_VERSION];

const V1_0 = icVersion(1, 0);
const V3_0 = icVersion(3, 0);
const V3_1 = icVersion(3, 1);
const V3_2 = icVersion(3, 2);

/** Message versions per release and IC, oldest first. */
export const HOST_IC_MESSAGE_VERSIONS: Readonly<Record<ReleaseId, Readonly<Record<HostIcName, readonly number[]>>>> = {
  // UNVERIFIED: heartbeat 3.0 and shutdown 3.0 inferred from Linux's pre-4.11 mapping of Windows 8/8.1 hosts.
  ws2012: { heartbeat: [V1_0, V3_0], shutdown: [V1_0, V3_0] },
  ws2012r2: { heartbeat: [V1_0, V3_0], shutdown: [V1_0, V3_0] },
  // UNVERIFIED: restart (3.1) from the WS2016 requirement of Msvm_ShutdownComponent.InitiateReboot.
  ws2016: { heartbeat: [V1_0, V3_0], shutdown: [V1_0, V3_0, V3_1] },
  // UNVERIFIED: build 17763 predates the first capture with 3.2 (19041); 3.1 chosen.
  ws2019: { heartbeat: [V1_0, V3_0], shutdown: [V1_0, V3_0, V3_1] },
  // 3.2 seen on build 19041 and on a Windows Server host of a hosted CI runner; UNVERIFIED for 20348 itself.
  ws2022: { heartbeat: [V1_0, V3_0], shutdown: [V1_0, V3_0, V3_1, V3_2] },
  ws2025: { heartbeat: [V1_0, V3_0], shutdown: [V1_0, V3_0, V3_1, V3_2] },
};

/** The NEGOTIATE offer of `ic` on `release`. */
export function hostIcOffer(release: ReleaseId, ic: HostIcName): IcVersionOffer {
  return { framework: HOST_FRAMEWORK_VERSIONS, message: HOST_IC_MESSAGE_VERSIONS[release][ic] };
}

/** The NEGOTIATE offer of an IC whose message versions per release are `table` (each IC keeps its own). */
export function icOffer(release: ReleaseId, table: Readonly<Record<ReleaseId, readonly number[]>>): IcVersionOffer {
  return { framework: HOST_FRAMEWORK_VERSIONS, message: table[release] };
}
