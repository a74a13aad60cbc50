// What each emulated Hyper-V release's storvsp accepts and reports (DESIGN.md principle 5:
// versions are data). Sources:
//  - the protocol versions are named after the Windows release that brought them (Linux
//    storvsc_drv.c's version history: "Win7: 4.2, Win8: 5.1, Win8.1: 6.0, Win10: 6.2"); a host
//    accepts its own and every older one, 2.0 (Windows Server 2008) included, as OpenVMM's
//    storvsp accepts 2.0, 4.2, 5.1 and 6.0 (lib.rs Version::parse);
//  - multi-channel from 5.1 (Linux: "Hosts that implement protocol version of 5.1 and above
//    support multi-channel"; OpenVMM: multi_channel_supported = version >= Win8);
//  - max_transfer_bytes 256 KiB: what OpenVMM's storvsp answers to QUERY_PROPERTIES (lib.rs);
//  - the sub-channel count: Linux's own rule for what Hyper-V offers, one channel per
//    storvsc_vcpus_per_sub_channel (4) VPs beyond the first (storvsc_probe: "The number of
//    sub-channels offerred is based on the number of VCPUs in the guest"). UNVERIFIED against a
//    host: Hyper-V does not document it.
import type { ReleaseId } from '../../hypervisor/release.js';
import { VmstorVersion } from './wire.js';

const V = VmstorVersion;

/** The protocol versions each release's storvsp accepts. */
export const HOST_VMSTOR_VERSIONS: Readonly<Record<ReleaseId, readonly number[]>> = {
  ws2012: [V.WIN6, V.WIN7, V.WIN8],
  ws2012r2: [V.WIN6, V.WIN7, V.WIN8, V.WIN8_1],
  ws2016: [V.WIN6, V.WIN7, V.WIN8, V.WIN8_1, V.WIN10],
  ws2019: [V.WIN6, V.WIN7, V.WIN8, V.WIN8_1, V.WIN10],
  ws2022: [V.WIN6, V.WIN7, V.WIN8, V.WIN8_1, V.WIN10],
  ws2025: [V.WIN6, V.WIN7, V.WIN8, V.WIN8_1, V.WIN10],
};

/** vmstorage_channel_properties.max_transfer_bytes. */
export const HOST_MAX_TRANSFER_BYTES = 0x40000;

/** VPs per sub-channel (Linux's storvsc_vcpus_per_sub_channel, which mirrors the host). */
export const VPS_PER_SUB_CHANNEL = 4;

/** Sub-channels the host offers a guest with `vps` virtual processors. */
export const hostSubChannels = (vps: number): number => Math.floor(Math.max(0, vps - 1) / VPS_PER_SUB_CHANNEL);

/** Whether a negotiated protocol supports sub-channels. */
export const multiChannel = (version: number): boolean => version >= V.WIN8;
