// The options that describe a VM, shared by `run` and `lsvmbus`: a configuration file and the
// flags that override it. A flag given on the command line wins over the file; the file wins
// over the flags' defaults.
import { Option, type Command } from 'commander';
import type { DeviceSpec } from '../devices/registry.js';
import { ARCHES, ARCH_MAX_VPS, type Arch } from '../hypervisor/features.js';
import { RELEASE_IDS, type ReleaseId } from '../hypervisor/release.js';
import type { GuestPageSize } from '../memory/pages.js';
import { assignLuns, ConfigError, DEFAULT_VM_CONFIG, MAX_LUN, MAX_MEMORY, MIN_MEMORY, formatByteSize, loadVmConfig, pageSizeName, parseVmConfig, type VmConfig, type VmOverrideField, type VmOverrides } from '../vm/config.js';
import { openVmDevices } from '../vm/disks.js';
import type { MachineConfig } from '../vm/machine.js';
import type { OpenedNics } from '../vm/network/backends.js';
import { checkNicFields, parseNicSpec } from '../vm/network/nic-config.js';
import { UsageError } from './errors.js';
import { parseDiskOption, parseDynamicMemoryOption, parsePageSize, parsePositiveInt, parseSize, type DiskOption, type DynamicMemoryOption } from './parse.js';

export interface VmOptions {
  config?: string;
  disk?: DiskOption[];
  release: ReleaseId;
  arch: Arch;
  vps: number;
  memory: number;
  pageSize: GuestPageSize;
  nic: string[];
  dynamicMemory?: DynamicMemoryOption;
}

export function addVmOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'VM configuration file (JSON, see schema/vm.schema.json)')
    .addOption(new Option('--release <release>', 'Hyper-V release to emulate').choices(RELEASE_IDS).default(DEFAULT_VM_CONFIG.release))
    .addOption(new Option('--arch <arch>', 'guest architecture').choices(ARCHES).default(DEFAULT_VM_CONFIG.arch))
    .option('--vps <n>', `virtual processors (at most ${ARCH_MAX_VPS.x64} on x64 and x86, ${ARCH_MAX_VPS.arm64} on arm64, fewer on older releases)`, parsePositiveInt, DEFAULT_VM_CONFIG.vps)
    .addOption(new Option('--memory <size>', `guest RAM, ${formatByteSize(MIN_MEMORY)} to ${formatByteSize(MAX_MEMORY)}`).argParser(parseSize).default(DEFAULT_VM_CONFIG.memory, formatByteSize(DEFAULT_VM_CONFIG.memory)))
    .addOption(new Option('--page-size <size>', 'guest page size: 4k, 16k or 64k (16k and 64k on arm64)').argParser(parsePageSize).default(DEFAULT_VM_CONFIG.pageSize, pageSizeName(DEFAULT_VM_CONFIG.pageSize)))
    .option(
      '--nic <spec>',
      'a NIC: switch=NAME | pcap=FILE | udp=HOST:PORT,peer=HOST:PORT | stream=HOST:PORT[,server=on], then [,mac=MAC][,queues=N][,ip=ADDR/PREFIX][,gateway=ADDR]; repeat for more NICs (the first configures the VM\'s first network device)',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option('--dynamic-memory <min=SIZE,max=SIZE,buffer=PERCENT>', 'Hyper-V Dynamic Memory: the balloon device keeps RAM between min and max (default: --memory, the startup RAM) at demand plus buffer percent (5 to 2000, default 20)', parseDynamicMemoryOption)
    .option('--disk <path[,ro][,lun=N][,dvd]>', `a disk image (VHDX or raw) or, with dvd, an ISO, on the VM's first SCSI controller; repeatable (LUNs 0 to ${MAX_LUN})`, parseDiskOption);
}

/**
 * The VM the options describe: the file's settings, overridden by flags given explicitly. Flags
 * face the file's own checks, and an error names the flag.
 */
export function vmFromOptions(cmd: Command, o: VmOptions): VmConfig {
  const overrides: VmOverrides = {};
  const flag = (name: keyof VmOptions, field: VmOverrideField, value: unknown) => {
    if (cmd.getOptionValueSource(name) === 'cli') overrides[field] = { value, option: `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` };
  };
  flag('release', 'release', o.release);
  flag('arch', 'arch', o.arch);
  flag('vps', 'cpus', o.vps);
  flag('memory', 'memory', o.memory);
  flag('pageSize', 'pageSize', pageSizeName(o.pageSize));
  flag('dynamicMemory', 'dynamicMemory', o.dynamicMemory);
  const vm = o.config ? loadVmConfig(o.config, overrides) : parseVmConfig({}, 'the defaults', overrides);
  if (o.disk?.length) addDisks(vm, o.disk);
  return withNics(vm, o.nic ?? []);
}

/** --disk: the disks go to the first SCSI controller, which is added when the VM has none. */
function addDisks(vm: VmConfig, disks: DiskOption[]): void {
  let scsi = vm.devices.find((d) => d.type === 'scsi');
  if (!scsi) vm.devices.push((scsi = { type: 'scsi' }));
  const name = (d: DiskOption) => `--disk ${[d.path, ...(d.readOnly ? ['ro'] : []), ...(d.lun === undefined ? [] : [`lun=${d.lun}`]), ...(d.dvd ? ['dvd'] : [])].join(',')}`;
  const added = assignLuns(
    disks.map((d) => ({ path: d.path, ...(d.lun === undefined ? {} : { lun: d.lun }), readOnly: d.readOnly, dvd: d.dvd, origin: name(d) })),
    (j, reason) => {
      throw new ConfigError(name(disks[j]!), undefined, reason);
    },
    (scsi.disks ?? []).map((d) => d.lun),
  );
  scsi.disks = [...(scsi.disks ?? []), ...added];
}

/**
 * Applies --nic options: the n-th configures the VM's n-th network device, the rest add network
 * devices at the end. Each is checked as the VM file's fields are; an error names --nic.
 */
export function withNics(vm: VmConfig, specs: readonly string[]): VmConfig {
  if (specs.length === 0) return vm;
  const devices = vm.devices.map((d) => ({ ...d }));
  const slots = devices.flatMap((d, i) => (d.type === 'network' ? [i] : []));
  specs.forEach((spec, n) => {
    const fail = (reason: string): never => {
      throw new UsageError(`--nic ${JSON.stringify(spec)}: ${reason}`);
    };
    const nic = { ...checkNicFields('network', parseNicSpec(spec, fail), (field, reason) => fail(`${field}: ${reason}`))!, origin: `--nic ${JSON.stringify(spec)}` };
    const at = slots[n];
    if (at === undefined) devices.push({ type: 'network', nic });
    else devices[at] = { ...devices[at]!, nic };
  });
  const seen = new Map<string, string>();
  for (const d of devices) {
    const mac = d.nic?.mac;
    if (!mac) continue;
    if (seen.has(mac)) throw new UsageError(`--nic: two NICs have the MAC ${mac}`);
    seen.set(mac, mac);
  }
  if (devices.length > 2047) throw new UsageError('--nic: a VM has at most 2047 devices');
  return { ...vm, devices };
}

/**
 * A Machine configuration for a VM configuration: its disk images opened (DiskOpenError), with
 * `net` its NICs' opened back ends; the guest's addresses come from the network devices either way.
 */
export function machineConfig(vm: VmConfig, net?: OpenedNics): MachineConfig {
  const dm = vm.dynamicMemory;
  const devices: DeviceSpec[] = openVmDevices(vm).map((d, i) => {
    const nic = net?.nics.get(i);
    if (dm && d.type === 'balloon') return { ...d, dynamicMemory: { startup: vm.memory, ...dm } };
    return nic ? { ...d, nic } : d;
  });
  const interfaces = vm.devices.filter((d) => d.type === 'network').map((d) => (d.nic?.ip ? { address: d.nic.ip, ...(d.nic.gateway ? { gateway: d.nic.gateway } : {}) } : undefined));
  const kernel = interfaces.some(Boolean) ? { kernel: { network: { interfaces } } } : {};
  return { release: vm.release, arch: vm.arch, vps: vm.vps, memory: vm.memory, ...(dm && dm.maximum > vm.memory ? { memoryMaximum: dm.maximum } : {}), pageSize: vm.pageSize, ...(vm.apicIds ? { apicIds: vm.apicIds } : {}), ...(vm.budget ? { budget: vm.budget } : {}), devices, ...kernel };
}
