// Every hypercall the hypervisor implements; any other code is HV_STATUS_INVALID_HYPERCALL_CODE.
import { HypercallDispatcher, type HypercallDef } from './dispatch.js';
import { postMessage, signalEvent } from './messaging.js';
import { getPartitionId, getVpIndexFromApicId, modifySparseGpaPageHostVisibility, queryExtendedCapabilities } from './partition-calls.js';
import {
  flushList,
  flushListEx,
  flushSpace,
  flushSpaceEx,
  notifyLongSpinWait,
  retargetDeviceInterrupt,
  sendSyntheticClusterIpi,
  sendSyntheticClusterIpiEx,
} from './processors.js';
import { getVpRegisters, setVpRegisters } from './vp-registers.js';

export const HYPERCALLS: readonly HypercallDef[] = [
  flushSpace,
  flushList,
  notifyLongSpinWait,
  sendSyntheticClusterIpi,
  flushSpaceEx,
  flushListEx,
  sendSyntheticClusterIpiEx,
  getPartitionId,
  getVpRegisters,
  setVpRegisters,
  postMessage,
  signalEvent,
  retargetDeviceInterrupt,
  getVpIndexFromApicId,
  modifySparseGpaPageHostVisibility,
  queryExtendedCapabilities,
];

export const hypercalls = new HypercallDispatcher(HYPERCALLS);
export type { HypercallDef, HypercallRequest, CallContext } from './dispatch.js';
