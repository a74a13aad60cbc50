// The guest's answer to a NEGOTIATE request, as Linux writes it (drivers/hv/channel_mgmt.c
// vmbus_prep_negotiate_resp; vmbus.md §9.3). It works in place on the receive buffer, which the
// caller then sends back with the received length.
import { ICMSG_HDR, icField, icMajor, icMinor, IcMsgNegotiate, IcVersion, IC_VERSION_NEGOTIATION_MAX_VER_COUNT, icVersion } from './wire.js';

export interface NegotiateOutcome {
  /** Both a framework and a message version were matched: the answer lists one of each. */
  readonly ok: boolean;
  /**
   * What Linux stores in nego_fw_version / nego_srv_version. On failure these are not versions:
   * Linux leaves the host's counts there (count << 16), or the matched framework and the message
   * count; undefined when the packet was too short to be touched at all.
   */
  readonly framework: number | undefined;
  readonly message: number | undefined;
}

/** icmsgsize of every answer: the negotiate header and two versions. */
const ANSWER_SIZE = IcMsgNegotiate.size + 2 * IcVersion.size;

/**
 * Picks, in the guest's order of preference (`fw`, `srv`: decreasing), the first framework and
 * the first message version the host's NEGOTIATE also lists, and rewrites the message into the
 * answer: icmsgsize = 16, counts 1 and 1 (0 and 0 on failure), then the two versions. `buf` is
 * the receive buffer and `buflen` the bytes received; like Linux, the answer may write past
 * `buflen` (those bytes are not sent). `log` gets Linux's pr_err lines (without the module prefix).
 */
export function prepNegotiateResp(buf: Uint8Array, buflen: number, fw: readonly number[], srv: readonly number[], log?: (text: string) => void): NegotiateOutcome {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const N = IcMsgNegotiate.offsets;
  const at = (o: number) => ICMSG_HDR + o;
  const readable = Math.min(buflen, buf.length);
  // Linux checks that the two counts are there before anything else, and then leaves the buffer alone.
  if (readable < at(N.reserved)) {
    log?.('Invalid icmsg negotiate');
    return { ok: false, framework: undefined, message: undefined };
  }
  const put16 = (o: number, v: number) => {
    if (o + 2 <= buf.length) dv.setUint16(o, v, true);
  };
  put16(icField('icmsgsize'), ANSWER_SIZE);
  const frameCount = dv.getUint16(at(N.icframe_vercnt), true);
  const msgCount = dv.getUint16(at(N.icmsg_vercnt), true);
  const version = (j: number): number => {
    const o = at(IcMsgNegotiate.size + j * IcVersion.size);
    return icVersion(dv.getUint16(o + IcVersion.offsets.major, true), dv.getUint16(o + IcVersion.offsets.minor, true));
  };
  // On failure Linux answers with the counts where the versions would be (icframe_major = count, minor 0).
  let framework = icVersion(frameCount, 0);
  let message = icVersion(msgCount, 0);
  let found = false;
  if (frameCount > IC_VERSION_NEGOTIATION_MAX_VER_COUNT || msgCount > IC_VERSION_NEGOTIATION_MAX_VER_COUNT || at(IcMsgNegotiate.size) + (frameCount + msgCount) * IcVersion.size > readable) {
    log?.(`Invalid icmsg negotiate - icframe_major: ${frameCount}, icmsg_major: ${msgCount}`);
  } else {
    const f = fw.find((v) => Array.from({ length: frameCount }, (_, j) => version(j)).includes(v));
    if (f !== undefined) {
      framework = f;
      const s = srv.find((v) => Array.from({ length: msgCount }, (_, j) => version(frameCount + j)).includes(v));
      if (s !== undefined) {
        message = s;
        found = true;
      }
    }
  }
  put16(at(N.icframe_vercnt), found ? 1 : 0);
  put16(at(N.icmsg_vercnt), found ? 1 : 0);
  const first = at(IcMsgNegotiate.size);
  for (const [i, v] of [framework, message].entries()) {
    put16(first + i * IcVersion.size + IcVersion.offsets.major, icMajor(v));
    put16(first + i * IcVersion.size + IcVersion.offsets.minor, icMinor(v));
  }
  return { ok: found, framework, message };
}
