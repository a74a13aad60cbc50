// How the host turns a target's result into the SRB status and the packet status the guest sees
// (OpenVMM scsidisk lib.rs process_result and storvsp lib.rs convert_srb_status_to_nt_status).
import { SenseKey } from './scsi.js';
import { NtStatus, SrbStatus } from './wire.js';

/** The SRB status that accompanies a CHECK CONDITION with this sense key. */
export function srbStatusForResult(senseKey: number): number {
  // ILLEGAL REQUEST is the request's fault (SRB_STATUS_INVALID_REQUEST); everything else is an
  // error of the device (unit attention, write protect, medium errors, not ready).
  return senseKey === SenseKey.ILLEGAL_REQUEST ? SrbStatus.INVALID_REQUEST : SrbStatus.ERROR;
}

/** vstor_packet.status of a COMPLETE_IO for a given SRB status. */
export function ntStatusForSrb(srbStatus: number): number {
  switch (srbStatus & 0x3f) {
    case SrbStatus.SUCCESS:
      return NtStatus.SUCCESS;
    case SrbStatus.INVALID_LUN:
      return NtStatus.DEVICE_DOES_NOT_EXIST;
    case SrbStatus.DATA_OVERRUN:
      return NtStatus.BUFFER_OVERFLOW;
    case SrbStatus.ABORTED:
      return NtStatus.CANCELLED;
    default:
      return NtStatus.IO_DEVICE_ERROR;
  }
}
