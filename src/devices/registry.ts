// The device set of a VM: which host back ends are offered for a configuration's device list,
// and which guest modules (Linux drivers) the guest kernel loads. New devices plug in here.
import { DEVICE_CLASS, DEFAULT_DEVICES, type DeviceTypeName } from './catalog.js';
import type { GuestModule, HostContext, HostDevice } from './device.js';
import type { DynamicMemoryConfig } from './balloon/controller.js';
import { hvBalloonModule, type HvBalloonOptions } from './balloon/guest.js';
import { attachDmHost } from './balloon/host.js';
import { heartbeatService } from './heartbeat/guest.js';
import { attachHeartbeat } from './heartbeat/host.js';
import { fcopyService } from './fcopy/guest.js';
import { attachFcopy } from './fcopy/host.js';
import { hvSockModule } from './hvsock/guest.js';
import { hvUtilsModule } from './ic/guest.js';
import { makeKvpService } from './kvp/guest.js';
import { netvscModule, type GuestNetConfig } from './network/netvsc/module.js';
import { attachNetvsp, type NicOptions } from './network/netvsp/netvsp.js';
import { attachKvp } from './kvp/host.js';
import { opaqueModules } from './opaque/guest.js';
import { keyboardModule } from './keyboard/guest.js';
import { attachKeyboard, type KeyboardOptions } from './keyboard/host.js';
import { mouseModule } from './mouse/guest.js';
import { attachMouse, type MouseOptions } from './mouse/host.js';
import type { InputLayer } from './input/layer.js';
import type { BlockBackend } from './storage/backend.js';
import { storageModule } from './storage/guest.js';
import { attachStorvsp, type StorvspHost, type StorvspOptions } from './storage/host.js';
import { ScsiDisk } from './storage/scsi-disk.js';
import { ScsiDvd } from './storage/scsi-dvd.js';
import { attachOpaque } from './opaque/host.js';
import { shutdownService } from './shutdown/guest.js';
import { attachShutdown } from './shutdown/host.js';
import { timesyncService } from './timesync/guest.js';
import { attachTimesync } from './timesync/host.js';
import { vssService } from './vss/guest.js';
import { hypervFbModule } from './video/guest.js';
import { attachVideo, type VideoOptions } from './video/host.js';
import { attachVss } from './vss/host.js';

export interface DeviceSpec {
  readonly type: DeviceTypeName;
  /** Instance GUID; derived from the type and its position when not given. */
  readonly instance?: string;
  /** A network device's MAC, queues and back end. */
  readonly nic?: NicOptions;
  /** A storage controller's (scsi, ide, fc) disks and DVDs, opened by the caller. */
  readonly disks?: readonly DiskAttachment[];
  /** A storage controller's host settings (latency, queue depth, versions, WWNs). */
  readonly storage?: StorvspOptions;
  /** The balloon device's dynamic memory policy; without it the VSP answers and never acts. */
  readonly dynamicMemory?: DynamicMemoryConfig;
  /** The video device's host settings (its default resolution). */
  readonly video?: VideoOptions;
  /** The keyboard's host settings (versions it accepts). */
  readonly keyboard?: KeyboardOptions;
  /** The mouse's host settings (versions, the device info it sends). */
  readonly mouse?: MouseOptions;
}

/** A disk or DVD on a storage controller: its LUN (target 0, path 0) and its back end. */
export interface DiskAttachment {
  readonly lun: number;
  readonly backend: BlockBackend;
  /** A read-only DVD drive with the back end as its disc, instead of a disk. */
  readonly dvd?: boolean;
  /** Sectors of the unmap granularity the disk reports (a VHDX's block). */
  readonly unmapGranularity?: number;
}

/** The SCSI target for an attachment: a Hyper-V disk or DVD. */
export function targetFor(d: DiskAttachment): ScsiDisk | ScsiDvd {
  return d.dvd ? new ScsiDvd(d.backend) : new ScsiDisk(d.backend, d.unmapGranularity === undefined ? {} : { unmapGranularity: d.unmapGranularity });
}

/**
 * Offered with an MNF monitor id: the high-rate devices, where the monitor page saves hypercalls
 * (vmbus.md §4.2). Which devices a real Hyper-V monitors is UNVERIFIED; lsvmbus on Hyper-V shows
 * monitor ids on storage and network.
 */
const MONITORED: ReadonlySet<DeviceTypeName> = new Set(['scsi', 'ide', 'network']);

type HostFactory = (ctx: HostContext, instanceId: string, spec: DeviceSpec) => HostDevice;

/** storvsp for a storage controller, with its disks attached before the guest sees it. */
function attachStorage(ctx: HostContext, instanceId: string, spec: DeviceSpec): StorvspHost {
  const kind = spec.type === 'fc' ? 'fc' : spec.type === 'ide' ? 'ide' : 'scsi';
  const host = attachStorvsp(ctx, instanceId, { ...spec.storage, kind });
  // An IDE controller's one device sits at the target its instance GUID names (storvsc_probe).
  const target = kind === 'ide' ? parseInt(instanceId.slice(9, 13), 16) & 0xff : 0;
  for (const d of spec.disks ?? []) host.attach({ path: 0, target, lun: d.lun }, targetFor(d));
  return host;
}

/** Back ends that speak their device's protocol; every other type gets the opaque one. */
const HOST_FACTORIES: ReadonlyMap<DeviceTypeName, HostFactory> = new Map<DeviceTypeName, HostFactory>([
  ['balloon', (ctx, id, spec) => attachDmHost(ctx, id, spec.dynamicMemory ? { dynamicMemory: spec.dynamicMemory } : {})],
  ['heartbeat', (ctx, id) => attachHeartbeat(ctx, id)],
  ['shutdown', (ctx, id) => attachShutdown(ctx, id)],
  ['timesync', (ctx, id) => attachTimesync(ctx, id)],
  ['kvp', (ctx, id) => attachKvp(ctx, id)],
  ['vss', (ctx, id) => attachVss(ctx, id)],
  ['fcopy', (ctx, id) => attachFcopy(ctx, id)],
  ['video', (ctx, id, spec) => attachVideo(ctx, id, spec.video)],
  ['keyboard', (ctx, id, spec) => attachKeyboard(ctx, id, spec.keyboard)],
  ['mouse', (ctx, id, spec) => attachMouse(ctx, id, spec.mouse)],
  ['scsi', attachStorage],
  ['ide', attachStorage],
  ['fc', attachStorage],
]);

/**
 * A stable instance GUID for the n-th device of a type: Hyper-V makes them random per VM; hvkit
 * derives them (FNV-1a over the name, spread with xorshift) so runs and tests are reproducible.
 */
export function deriveInstanceId(type: string, n: number): string {
  let h = 0x811c9dc5;
  for (const c of `${type}#${n}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    h ^= h << 13;
    h ^= h >>> 17;
    h ^= h << 5;
    h >>>= 0;
    bytes[i] = h & 0xff;
  }
  bytes[6] = (bytes[6]! & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Offers every device of `specs` (the default set when undefined), in order. */
export function attachDevices(ctx: HostContext, specs: readonly DeviceSpec[] = DEFAULT_DEVICES.map((type) => ({ type }))): HostDevice[] {
  const seen = new Map<string, number>();
  return specs.map((spec) => {
    const n = seen.get(spec.type) ?? 0;
    seen.set(spec.type, n + 1);
    const instanceId = (spec.instance ?? deriveInstanceId(spec.type, n)).toLowerCase();
    if (spec.type === 'network') return attachNetvsp(ctx, instanceId, spec.nic);
    const factory = HOST_FACTORIES.get(spec.type);
    if (factory) return factory(ctx, instanceId, spec);
    return attachOpaque(ctx, spec.type, DEVICE_CLASS[spec.type], instanceId, { monitor: MONITORED.has(spec.type) });
  });
}

/**
 * The guest's VMBus driver modules, in the order the kernel initialises them. A distribution
 * kernel loads them as modules in whatever order udev asks; the model fixes one.
 */
export function builtinModules(pageSize: number, options: { network?: GuestNetConfig; balloon?: HvBalloonOptions; input?: InputLayer } = {}): GuestModule[] {
  // hv_netvsc, hv_balloon, hyperv_keyboard and hid_hyperv take the places their opaque drivers
  // had, so drivers register in the same order; hv_storvsc, the first of them, is storvsc itself
  // now; hyperv_fb registers after hid_hyperv, where Linux's module order puts it. The two input
  // drivers share the kernel's input layer, when it has one (the machine gives it).
  const input = options.input;
  const real: Record<string, () => GuestModule> = {
    hv_netvsc: () => netvscModule(options.network),
    hv_balloon: () => hvBalloonModule(options.balloon),
    ...(input ? { hyperv_keyboard: () => keyboardModule(input, pageSize), hid_hyperv: () => mouseModule(input, pageSize) } : {}),
  };
  const modules = opaqueModules(pageSize).flatMap((m) => {
    const mod = real[m.name]?.() ?? m;
    return m.name === 'hid_hyperv' ? [mod, hypervFbModule()] : [mod];
  });
  return [storageModule(), ...modules, hvUtilsModule([shutdownService, timesyncService, heartbeatService, makeKvpService(), vssService, fcopyService], { pageSize }), hvSockModule()];
}
