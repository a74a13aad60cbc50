// Which dynamic memory protocol versions each emulated Hyper-V release's VSP accepts (DESIGN.md
// principle 5: versions are data). Linux's hv_balloon.c names the versions after the Windows
// release that brought them: 0.3 = WIN7 (Windows Server 2008 R2 SP1, where Dynamic Memory
// began), 1.0 = WIN8 (Windows Server 2012), 2.0 = WIN10 (Windows Server 2016). A host accepts its
// own version and every older one, which is what Linux's fallback from WIN10 to WIN8 to WIN7
// expects of it.
//
// UNVERIFIED: Windows Server 2012 R2 is given 1.0 (no version is named after Windows 8.1; nothing
// documents a 2012 R2 host answering 2.0). The host refuses a version it does not know with
// is_accepted 0, as the guest's fallback loop needs (version_resp in hv_balloon.c).
import type { ReleaseId } from '../../hypervisor/release.js';
import { DynmemVersion } from './wire.js';

const V = DynmemVersion;

/** The protocol versions each release's dynamic memory VSP accepts. */
export const HOST_DYNMEM_VERSIONS: Readonly<Record<ReleaseId, readonly number[]>> = {
  ws2012: [V.WIN7, V.WIN8],
  ws2012r2: [V.WIN7, V.WIN8],
  ws2016: [V.WIN7, V.WIN8, V.WIN10],
  ws2019: [V.WIN7, V.WIN8, V.WIN10],
  ws2022: [V.WIN7, V.WIN8, V.WIN10],
  ws2025: [V.WIN7, V.WIN8, V.WIN10],
};

/** The order hv_balloon asks in: WIN10 first, then WIN8, then WIN7 as its last attempt (balloon_connect_vsp, version_resp). */
export const GUEST_DYNMEM_VERSIONS: readonly number[] = [V.WIN10, V.WIN8, V.WIN7];

/** DM_INFO_MESSAGE exists from 1.0 on (enum dm_message_type: DM_VERSION_1_MAX). */
export const hasInfoMessage = (version: number): boolean => version >= V.WIN8;
