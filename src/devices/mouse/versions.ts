// Which SYNTHHID versions each emulated Hyper-V release approves (DESIGN.md principle 5).
// Version 2.0 is the only one a guest asks for: Linux's hid-hyperv.c history says 1.0 was used
// by betas before 2008-01-22 and 2.0 since (Windows Server 2008), so every release hvkit emulates
// approves 2.0. UNVERIFIED: whether any release still approves 1.0 or knows a later version; no
// source documents one, so each approves exactly 2.0.
import type { ReleaseId } from '../../hypervisor/release.js';
import { SYNTHHID_INPUT_VERSION } from './wire.js';

export const HOST_SYNTHHID_VERSIONS: Readonly<Record<ReleaseId, readonly number[]>> = {
  ws2012: [SYNTHHID_INPUT_VERSION],
  ws2012r2: [SYNTHHID_INPUT_VERSION],
  ws2016: [SYNTHHID_INPUT_VERSION],
  ws2019: [SYNTHHID_INPUT_VERSION],
  ws2022: [SYNTHHID_INPUT_VERSION],
  ws2025: [SYNTHHID_INPUT_VERSION],
};
