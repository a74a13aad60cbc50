// hvkit's public API: `import { Machine } from 'hvkit'`. A machine and its configuration, the
// device API a host back end uses, the driver API a guest driver uses, the ring, the decoder and
// the trace. Everything else is internal and may change.

// A whole VM: host, guest and the deterministic scheduler; or the guest in a worker thread.
export { Machine, type MachineConfig, type MachineExit, type PaceOptions } from './vm/machine.js';
export { ThreadedMachine, type GuestReport, type ThreadedConfig, type ThreadedRunOptions } from './vm/threaded/machine.js';
export type { GuestContext, Workload } from './vm/threaded/guest-context.js';
export { Host, type HostConfig } from './vm/host.js';
export { ConfigError, DEFAULT_VM_CONFIG, loadVmConfig, parseVmConfig, parseVmConfigText, type VmConfig, type VmDevice } from './vm/config.js';
export { parseScript, runScript, SCRIPT_GRAMMAR, ScriptError, type ScriptOptions, type Step, type StepResult } from './vm/script.js';
export { DirectoryFiles } from './vm/dirfs.js';
export { connectToVm, guestConnect, guestListen, HvsockDuplex, hostHvsock, listen, runUntilClosed, runWhile, type HostSide } from './vm/hvsock-stream.js';
export type { HostHvListener, HostHvSocket, HvsockHost, HvsockHostOptions } from './devices/hvsock/host.js';
export { HvSocketError, type HvSocketEvents, type HvSocketStats } from './devices/hvsock/socket.js';

// Networking: the NICs of a machine, switches, labs of several VMs, captures, QEMU-framed sockets.
export { guestNetwork, hostNics } from './vm/network.js';
export { Lab, type LabVm } from './vm/lab.js';
export { VirtualSwitch, type SwitchOptions, type SwitchStats } from './devices/network/switch.js';
export { NO_NETWORK, type FrameTap, type NetBackend, type NetEndpoint, type NetLink } from './devices/network/backend.js';
export { NetvspDevice, type NicOptions, type NetvspStats } from './devices/network/netvsp/netvsp.js';
export type { NetvscGuest, GuestNetConfig, RawSocket, RawBatchSocket } from './devices/network/netvsc/module.js';
export type { FrameBatch } from './devices/network/netvsc/frame-batch.js';
export type { NetDevice } from './devices/network/netvsc/netdev.js';
export { PcapngWriter } from './devices/network/pcapng.js';
export { PcapFile, PcapBackend } from './vm/network/pcap-file.js';
export { StreamBackend, UdpBackend } from './vm/network/sockets.js';

// The hypervisor and the releases it emulates.
export { Partition, PartitionConfigError, type PartitionConfig } from './hypervisor/partition.js';
export { RELEASE_IDS, RELEASES, type ReleaseId } from './hypervisor/release.js';
export { ARCHES, type Arch } from './hypervisor/features.js';

// The device API (host side) and the driver API (guest side).
export { VmbusServer, type Violation } from './vmbus/server/server.js';
export { HostChannel, type ChannelHandler, type OfferSpec, type OpenRequest } from './vmbus/server/channel.js';
export { VmbusClient, type VmbusDriver } from './vmbus/client/client.js';
export { GuestChannel, type OpenOptions } from './vmbus/client/channel.js';
export type { ChannelSnapshot, DeviceSnapshot, VmbusSnapshot } from './vmbus/client/snapshot.js';
export type { PacketHead, ParsedPacket } from './vmbus/wire/packets.js';
export { DeviceClass } from './vmbus/wire/guids.js';
export { DEFAULT_DEVICES, DEVICE_TYPES, type DeviceTypeName } from './devices/catalog.js';
export type { DeviceSpec } from './devices/registry.js';
export type { GuestFiles, HostContext, HostDevice } from './devices/device.js';
export { SynthvidHost, HOST_RESOLUTIONS, type RenderedFrame, type Resolution, type Situation, type VideoOptions } from './devices/video/host.js';
export type { Framebuffer, FramebufferMode } from './devices/framebuffer.js';
export { Fbcon } from './guest/fbcon.js';

// The ring buffer, and the decoder of `hvkit decode`.
export { initRing, RingCorruptError, RingReader, RingWriter } from './vmbus/ring/ring.js';
export { contiguousRing, pagedRing, windowRing, type RingMemory } from './vmbus/ring/memory.js';
export { describeBytes, formatReport, reportJson, type DecodeAs, type Decoded } from './vmbus/wire/describe.js';

// The guest kernel's state and log.
export type { Kernel, KernelState } from './guest/kernel.js';
export type { LogRecord } from './guest/klog.js';

// Traces: the event stream, recording it, reading it back.
export type { TraceEvent, TraceKind } from './hypervisor/trace.js';
export { attachTrace } from './trace/attach.js';
export { openTraceFile, type TraceFile } from './trace/writer.js';
export { parseTrace, readTraceFile, TraceFileError } from './trace/reader.js';
export { formatEvent } from './trace/format.js';
