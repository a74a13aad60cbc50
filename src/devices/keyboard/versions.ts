// Which synth_kbd versions each emulated Hyper-V release accepts (DESIGN.md principle 5).
// Version 1.0 is the only one any guest driver asks for: Linux's SYNTH_KBD_VERSION and Project
// Mu's HK_VERSION_WIN8 name it, after Windows 8 / Server 2012, the first release hvkit emulates.
// UNVERIFIED: whether a later release accepts anything else; no source documents another
// version, so every release accepts exactly 1.0 and refuses the rest (PROTOCOL_ACCEPTED clear).
import type { ReleaseId } from '../../hypervisor/release.js';
import { SYNTH_KBD_VERSION } from './wire.js';

export const HOST_KBD_VERSIONS: Readonly<Record<ReleaseId, readonly number[]>> = {
  ws2012: [SYNTH_KBD_VERSION],
  ws2012r2: [SYNTH_KBD_VERSION],
  ws2016: [SYNTH_KBD_VERSION],
  ws2019: [SYNTH_KBD_VERSION],
  ws2022: [SYNTH_KBD_VERSION],
  ws2025: [SYNTH_KBD_VERSION],
};
