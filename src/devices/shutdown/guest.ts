// The guest's shutdown service (Linux 6.1 drivers/hv/hv_util.c shutdown_onchannelcallback and
// hv_shutdown_init): one packet per interrupt; NEGOTIATE answered with Linux's versions; a
// shutdown request answered S_OK for flags 0/1 (power off) and 2/3 (restart), for 4/5
// (hibernate) S_OK only if the guest can hibernate, HV_E_FAIL otherwise; the answer goes out
// before the action starts, which then runs from process context (schedule_work).
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { UtilChannel, UtilService, UtilServiceInstance } from '../ic/guest.js';
import { formatIcVersion, HV_E_FAIL, HV_S_OK, icField, ICMSG_HDR, IcMsgType, IC_RESPONSE_FLAGS, LINUX_UTIL_VERSIONS } from '../ic/wire.js';
import { ShutdownMsgData } from './wire.js';

const FN = 'shutdown_onchannelcallback';

export interface ShutdownServiceOptions {
  /**
   * hv_is_hibernation_supported(): not the root partition and ACPI S4 offered by the firmware,
   * which Hyper-V does only for VMs with hibernation enabled. Default false.
   */
  readonly hibernationSupported?: boolean;
}

export class ShutdownService implements UtilServiceInstance {
  /** sd_srv_version: what the last NEGOTIATE left there. */
  version: number | undefined;

  constructor(
    private readonly util: UtilChannel,
    private readonly versions: { readonly framework: readonly number[]; readonly message: readonly number[] },
    /** hibernation_supported, read once at util_init as Linux does. */
    private readonly hibernationSupported: boolean,
  ) {}

  onChannelCallback(): void {
    const u = this.util;
    const dv = new DataView(u.buffer.buffer, u.buffer.byteOffset, u.buffer.byteLength);
    const { recvlen, requestId } = u.recvpacket();
    if (!recvlen) return;
    if (recvlen < ICMSG_HDR) return u.logRatelimited(FN, 'short', 'err', `Shutdown request received. Packet length too small: ${recvlen}`);
    let work: 'poweroff' | 'reboot' | 'hibernate' | undefined;
    const type = dv.getUint16(icField('icmsgtype'), true);
    if (type === IcMsgType.NEGOTIATE) {
      const r = u.negotiate(recvlen, this.versions.framework, this.versions.message);
      if (r.message !== undefined) this.version = r.message;
      if (r.ok) u.log('info', `Shutdown IC version ${formatIcVersion(r.message!)}`);
    } else if (type === IcMsgType.SHUTDOWN) {
      if (recvlen < ICMSG_HDR + ShutdownMsgData.size) return u.logRatelimited(FN, 'data', 'err', `Invalid shutdown msg data. Packet length too small: ${recvlen}`);
      const setStatus = (s: number) => dv.setUint32(icField('status'), s, true);
      // 0 shut down, 2 restart, 4 hibernate; bit 0 asks for force, and Linux always forces.
      switch (dv.getUint32(ICMSG_HDR + ShutdownMsgData.offsets.flags, true)) {
        case 0:
        case 1:
          setStatus(HV_S_OK);
          work = 'poweroff';
          u.log('info', 'Shutdown request received - graceful shutdown initiated');
          break;
        case 2:
        case 3:
          setStatus(HV_S_OK);
          work = 'reboot';
          u.log('info', 'Restart request received - graceful restart initiated');
          break;
        case 4:
        case 5:
          u.log('info', 'Hibernation request received');
          setStatus(this.hibernationSupported ? HV_S_OK : HV_E_FAIL);
          if (this.hibernationSupported) work = 'hibernate';
          break;
        default:
          setStatus(HV_E_FAIL);
          u.log('info', 'Shutdown request received - Invalid request');
      }
    } else {
      dv.setUint32(icField('status'), HV_E_FAIL, true);
      u.logRatelimited(FN, 'type', 'err', `Shutdown request received. Invalid msg type: ${type}`);
    }
    dv.setUint8(icField('icflags'), IC_RESPONSE_FLAGS);
    u.sendpacket(recvlen, requestId);
    if (!work) return;
    // The work items: orderly_poweroff, orderly_reboot, or the "hibernate" uevent (send_hibernate_uevent).
    if (work === 'hibernate') u.log('info', 'Sent hibernation uevent');
    u.services.requestShutdown(work);
  }
}

/** The shutdown service with Linux 6.1's versions (sd_versions 3.2, 3.1, 3.0, 1.0; fw 3.0, 1.0). */
export function makeShutdownService(options: ShutdownServiceOptions = {}): UtilService {
  return {
    name: 'shutdown',
    classId: DeviceClass.SHUTDOWN,
    attach: (util) => new ShutdownService(util, LINUX_UTIL_VERSIONS.shutdown, options.hibernationSupported ?? false),
  };
}

/** The shutdown service of a guest that cannot hibernate (Hyper-V's default: no ACPI S4). */
export const shutdownService: UtilService = makeShutdownService();
