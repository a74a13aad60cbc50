// The network device's wire formats: NVSP on the channel, RNDIS inside it, NDIS objects inside
// RNDIS. Every layout here is checked against the Linux oracle (test/oracle).
import { NDIS_LAYOUTS } from './ndis.js';
import { NVSP_LAYOUTS } from './nvsp.js';
import { RNDIS_LAYOUTS } from './rndis.js';

export * from './ndis.js';
export * from './nvsp.js';
export * from './rndis.js';

export const NET_LAYOUTS = [...NVSP_LAYOUTS, ...RNDIS_LAYOUTS, ...NDIS_LAYOUTS];
