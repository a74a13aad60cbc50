// Which synthvid versions each side uses. The guest's order follows Linux 6.1 hyperv_fb.c
// synthvid_connect_vsp, which decides by the VMBus version negotiated, never by a build number;
// the host's highest version per release is data (DESIGN.md principle 5).
import type { ReleaseId } from '../../hypervisor/release.js';
import { VmbusVersion } from '../../vmbus/wire/constants.js';
import { SynthvidVersion } from './wire.js';

/**
 * The versions Linux asks for, in order, given vmbus_proto_version: WIN10 then WIN8 on VMBus
 * 4.0 and 5.0, WIN8 alone on 2.4 and 3.0, WIN10 alone on every other (newer) version.
 */
export function guestSynthvidVersions(vmbusVersion: number): readonly number[] {
  switch (vmbusVersion) {
    case VmbusVersion.WIN10:
    case VmbusVersion.WIN10_V5:
      return [SynthvidVersion.WIN10, SynthvidVersion.WIN8];
    case VmbusVersion.WIN8:
    case VmbusVersion.WIN8_1:
      return [SynthvidVersion.WIN8];
    default:
      return [SynthvidVersion.WIN10];
  }
}

export interface SynthvidHostVersions {
  /** Versions the host accepts. */
  readonly accepted: readonly number[];
  /** Whether it answers SYNTHVID_RESOLUTION_REQUEST (only meaningful with WIN10). */
  readonly resolutionRequest: boolean;
}

/**
 * Per release. Windows Server 2012 and 2012 R2 speak synthvid 3.2 (hyperv_fb.c: "Full HD
 * 1920x1080 with 32 bit color on Windows Server 2012"); 2016 and later 3.5. Linux says the
 * resolution query needs a "Windows 10 RS5+" host (2019); hvkit's 2016 answers it too, so the
 * guest does not sit out VSP_TIMEOUT (UNVERIFIED for a real 2016 host).
 */
export const HOST_SYNTHVID: Readonly<Record<ReleaseId, SynthvidHostVersions>> = {
  ws2012: { accepted: [SynthvidVersion.WIN7, SynthvidVersion.WIN8], resolutionRequest: false },
  ws2012r2: { accepted: [SynthvidVersion.WIN7, SynthvidVersion.WIN8], resolutionRequest: false },
  ws2016: { accepted: [SynthvidVersion.WIN7, SynthvidVersion.WIN8, SynthvidVersion.WIN10], resolutionRequest: true },
  ws2019: { accepted: [SynthvidVersion.WIN7, SynthvidVersion.WIN8, SynthvidVersion.WIN10], resolutionRequest: true },
  ws2022: { accepted: [SynthvidVersion.WIN7, SynthvidVersion.WIN8, SynthvidVersion.WIN10], resolutionRequest: true },
  ws2025: { accepted: [SynthvidVersion.WIN7, SynthvidVersion.WIN8, SynthvidVersion.WIN10], resolutionRequest: true },
};

/** "3.5" for a synthvid version word. */
export const synthvidVersionString = (v: number): string => `${v & 0xffff}.${v >>> 16}`;
