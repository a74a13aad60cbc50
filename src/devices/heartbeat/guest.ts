// The guest's heartbeat service (Linux 6.1 drivers/hv/hv_util.c heartbeat_onchannelcallback):
// drain the ring; answer NEGOTIATE with Linux's versions (and print the one chosen), a heartbeat
// with its sequence number plus one, anything else with HV_E_FAIL; every answer goes back with
// the received length, TRANSACTION | RESPONSE, and the request's VMBus transaction id.
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { UtilChannel, UtilService, UtilServiceInstance } from '../ic/guest.js';
import { formatIcVersion, HV_E_FAIL, icField, ICMSG_HDR, IcMsgType, IC_RESPONSE_FLAGS, LINUX_UTIL_VERSIONS } from '../ic/wire.js';
import { HeartbeatMsgData } from './wire.js';

const FN = 'heartbeat_onchannelcallback';

export class HeartbeatService implements UtilServiceInstance {
  /** hb_srv_version: what the last NEGOTIATE left there (Linux sets it even when negotiation fails). */
  version: number | undefined;

  constructor(
    private readonly util: UtilChannel,
    private readonly versions: { readonly framework: readonly number[]; readonly message: readonly number[] },
  ) {}

  onChannelCallback(): void {
    const u = this.util;
    const buf = u.buffer;
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (;;) {
      const { recvlen, requestId } = u.recvpacket();
      if (!recvlen) break;
      if (recvlen < ICMSG_HDR) {
        u.logRatelimited(FN, 'short', 'err', `Heartbeat request received. Packet length too small: ${recvlen}`);
        break;
      }
      const type = dv.getUint16(icField('icmsgtype'), true);
      if (type === IcMsgType.NEGOTIATE) {
        const r = u.negotiate(recvlen, this.versions.framework, this.versions.message);
        if (r.message !== undefined) this.version = r.message;
        if (r.ok) u.log('info', `Heartbeat IC version ${formatIcVersion(r.message!)}`);
      } else if (type === IcMsgType.HEARTBEAT) {
        // Only seq_num must be there: the host may leave the reserved area out.
        const seqAt = ICMSG_HDR + HeartbeatMsgData.offsets.seq_num;
        if (recvlen < seqAt + 8) {
          u.logRatelimited(FN, 'data', 'err', `Invalid heartbeat msg data. Length too small: ${recvlen}`);
          break;
        }
        dv.setBigUint64(seqAt, (dv.getBigUint64(seqAt, true) + 1n) & 0xffff_ffff_ffff_ffffn, true);
      } else {
        dv.setUint32(icField('status'), HV_E_FAIL, true);
        u.logRatelimited(FN, 'type', 'err', `Heartbeat request received. Invalid msg type: ${type}`);
      }
      dv.setUint8(icField('icflags'), IC_RESPONSE_FLAGS);
      u.sendpacket(recvlen, requestId);
    }
  }
}

/** The heartbeat service with Linux 6.1's versions (hb_versions 3.0, 1.0; fw_versions 3.0, 1.0). */
export const heartbeatService: UtilService = {
  name: 'heartbeat',
  classId: DeviceClass.HEART_BEAT,
  attach: (util) => new HeartbeatService(util, LINUX_UTIL_VERSIONS.heartbeat),
};
