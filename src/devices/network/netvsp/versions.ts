// Which NVSP versions each emulated Hyper-V release accepts (DESIGN.md principle 5: versions are
// data). The host accepts exactly the versions OpenVMM's netvsp lists (SUPPORTED_VERSIONS:
// 1, 2, 4, 5, 6, 6.1) up to the release's newest. Which release brought which version is
// inferred from the features each version adds and when Windows Server shipped them: SR-IOV
// (NVSP 4's VF association) with Server 2012, vRSS (NVSP 5's sub-channels) with 2012 R2,
// PacketDirect (NVSP 6) with 2016, receive segment coalescing in the vSwitch (NVSP 6.1's RSC
// capability) with 2019.
import type { ReleaseId } from '../../../hypervisor/release.js';
import { LINUX_NVSP_VERSIONS, NvspVersion } from '../wire/nvsp.js';

export const NVSP_MAX_BY_RELEASE: Readonly<Record<ReleaseId, number>> = {
  ws2012: NvspVersion.V4,
  ws2012r2: NvspVersion.V5,
  ws2016: NvspVersion.V6,
  ws2019: NvspVersion.V61,
  ws2022: NvspVersion.V61,
  ws2025: NvspVersion.V61,
};

/** OpenVMM's SUPPORTED_VERSIONS, which are Linux's list. */
export const HOST_NVSP_VERSIONS: readonly number[] = LINUX_NVSP_VERSIONS;

/** Whether a host of `release` accepts `version` in NVSP_MSG_TYPE_INIT. */
export function hostAccepts(release: ReleaseId, version: number): boolean {
  return HOST_NVSP_VERSIONS.includes(version) && version <= NVSP_MAX_BY_RELEASE[release];
}
