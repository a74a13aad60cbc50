// The options that describe a VM, shared by `run` and `lsvmbus`: a configuration file and the
// flags that override it. A flag given on the command line wins over the file; the file wins
// over the flags' defaults.
import type { Command } from 'commander';
import type { DeviceSpec } from '../devices/registry.js';
import type { Arch } from '../hypervisor/features.js';
import type { ReleaseId } from '../hypervisor/release.js';
import type { GuestPageSize } from '../memory/pages.js';
import { DEFAULT_VM_CONFIG, loadVmConfig, type VmConfig } from '../vm/config.js';
import type { MachineConfig } from '../vm/machine.js';
import { parseArch, parsePageSize, parsePositiveInt, parseRelease, parseSize } from './parse.js';

export interface VmOptions {
  config?: string;
  release: ReleaseId;
  arch: Arch;
  vps: number;
  memory: number;
  pageSize: GuestPageSize;
}

export function addVmOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'VM configuration file (JSON, see schema/vm.schema.json)')
    .option('--release <release>', 'Hyper-V release to emulate', parseRelease, DEFAULT_VM_CONFIG.release)
    .option('--arch <arch>', 'guest architecture: x64, x86 or arm64', parseArch, DEFAULT_VM_CONFIG.arch)
    .option('--vps <n>', 'virtual processors', parsePositiveInt, DEFAULT_VM_CONFIG.vps)
    .option('--memory <size>', 'guest RAM, e.g. 256M or 1G', parseSize, DEFAULT_VM_CONFIG.memory)
    .option('--page-size <size>', 'guest page size: 4k, 16k or 64k (16k and 64k on arm64)', parsePageSize, DEFAULT_VM_CONFIG.pageSize);
}

/** The VM the options describe: the file's settings, overridden by flags given explicitly. */
export function vmFromOptions(cmd: Command, o: VmOptions): VmConfig {
  const base: VmConfig = o.config ? loadVmConfig(o.config) : { ...DEFAULT_VM_CONFIG, devices: [...DEFAULT_VM_CONFIG.devices] };
  const given = (name: keyof VmOptions) => cmd.getOptionValueSource(name) === 'cli';
  return {
    ...base,
    ...(given('release') ? { release: o.release } : {}),
    ...(given('arch') ? { arch: o.arch } : {}),
    ...(given('vps') ? { vps: o.vps } : {}),
    ...(given('memory') ? { memory: o.memory } : {}),
    ...(given('pageSize') ? { pageSize: o.pageSize } : {}),
  };
}

/** A Machine configuration for a VM configuration. */
export function machineConfig(vm: VmConfig): MachineConfig {
  const devices: DeviceSpec[] = vm.devices.map((d) => ({ type: d.type, ...(d.instance ? { instance: d.instance } : {}) }));
  return { release: vm.release, arch: vm.arch, vps: vm.vps, memory: vm.memory, pageSize: vm.pageSize, ...(vm.apicIds ? { apicIds: vm.apicIds } : {}), devices };
}
