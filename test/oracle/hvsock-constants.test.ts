// hv_sock constants against the Linux oracle (net/vmw_vsock/hyperv_transport.c and
// include/linux/hyperv.h as Debian compiled 6.1): the MTU, Linux's send size, packet lengths,
// ring sizes, the close timeout, the offer flags, and where the offer's user area and the port
// of a service id sit.
import { describe, expect, it } from 'vitest';
import * as w from '../../src/devices/hvsock/wire.js';
import { ChannelFlags, VMBUS_PIPE_TYPE_BYTE } from '../../src/vmbus/wire/constants.js';
import { ChannelOffer, OfferChannel } from '../../src/vmbus/wire/messages.js';
import { loadOracle } from './oracle.js';

const { oracle, source } = loadOracle();
const macro = (name: string): number => {
  const m = oracle.macros[name];
  if (!m) throw new Error(`${name} is not in the oracle`);
  return Number(BigInt(m.hex));
};
const field = (struct: string, name: string) => {
  const s = oracle.structs[struct];
  const f = (s?.flat ?? s?.fields)?.find((x) => x.name === name);
  if (!f) throw new Error(`${struct}.${name} is not in the oracle`);
  return f;
};

describe(`hv_sock constants against the Linux oracle (${source})`, () => {
  it('MTU, send buffer, header and packet lengths', () => {
    expect(w.HVS_MTU_SIZE).toBe(macro('HVS_MTU_SIZE'));
    expect(w.HVS_SEND_BUF_SIZE).toBe(macro('HVS_SEND_BUF_SIZE'));
    expect(w.HVS_HEADER_LEN).toBe(macro('HVS_HEADER_LEN'));
    expect(w.HVS_MAX_PKT_SIZE).toBe(macro('HVS_MAX_PKT_SIZE'));
    expect(w.hvsPktLen(w.HVS_MTU_SIZE)).toBe(macro('HVS_MAX_PKT_SIZE'));
  });

  it('ring sizes', () => {
    expect(w.RINGBUFFER_HVS_SIZE).toBe(macro('RINGBUFFER_HVS_SND_SIZE'));
    expect(w.RINGBUFFER_HVS_SIZE).toBe(macro('RINGBUFFER_HVS_RCV_SIZE'));
    expect(w.RINGBUFFER_HVS_MAX_SIZE).toBe(macro('RINGBUFFER_HVS_MAX_SIZE'));
  });

  it('HVS_CLOSE_TIMEOUT is 8 * HZ: 2000 jiffies in a kernel built with HZ=250 (Debian)', () => {
    expect(macro('HVS_CLOSE_TIMEOUT')).toBe(2000);
    expect((macro('HVS_CLOSE_TIMEOUT') / 250) * 1e9).toBe(w.HVS_CLOSE_TIMEOUT_NS);
  });

  it('offer flags and the pipe type', () => {
    expect(ChannelFlags.TLNPI_PROVIDER_OFFER).toBe(macro('VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER'));
    expect(w.HVSOCK_OFFER_FLAGS).toBe(macro('VMBUS_CHANNEL_ENUMERATE_DEVICE_INTERFACE') | macro('VMBUS_CHANNEL_NAMED_PIPE_MODE') | macro('VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER'));
    expect(VMBUS_PIPE_TYPE_BYTE).toBe(macro('VMBUS_PIPE_TYPE_BYTE'));
  });

  it("the byte Linux reads as 'connection from the host' is is_for_guest_accept; the port is the service id's first u32", () => {
    const userDef = field('vmbus_channel_offer_channel', 'offer.u.pipe.user_def');
    const pipeMode = field('vmbus_channel_offer_channel', 'offer.u.pipe.pipe_mode');
    const u = OfferChannel.offsets.offer + ChannelOffer.offsets.u;
    expect(pipeMode.offset_bytes).toBe(u + w.HvsockUserDefined.offsets.pipe_type);
    expect(userDef.offset_bytes).toBe(u + w.HvsockUserDefined.offsets.is_for_guest_accept);
    const port = field('hvs_service_id', 'svm_port');
    expect([port.offset_bytes, port.size_bytes]).toEqual([0, 4]);
  });
});
