// VM configurations in the page: the schema the CLI validates with (bundled), and the Machine
// configuration a VM file gives. Disk images and NIC back ends are files and sockets, which a
// page has not: a VM file that names them is refused here with the field named.
import type { AnySchemaObject } from 'ajv/dist/2020.js';
import schema from '../../schema/vm.schema.json';
import { ConfigError, parseVmConfigText, useVmConfigSchema, type VmConfig } from '../../src/vm/config-parse.js';
import type { MachineConfig } from '../../src/vm/machine.js';

useVmConfigSchema(() => schema as AnySchemaObject);

export { DEFAULT_VM_CONFIG, type VmConfig } from '../../src/vm/config-parse.js';

/** The VM file's text, validated; a ConfigError's message names the file and the field. */
export function parseVmFile(text: string, source: string): VmConfig {
  const vm = parseVmConfigText(text, source);
  vm.devices.forEach((d, i) => {
    if (d.disks?.length) throw new ConfigError(source, `/devices/${i}/disks`, 'disk images are files: the browser app runs without them (hvkit run does)');
    if (d.nic?.backend && d.nic.backend.kind !== 'none') throw new ConfigError(source, `/devices/${i}/nic/backend`, 'a NIC back end needs the host: the browser app runs NICs unconnected');
  });
  return vm;
}

export function machineConfig(vm: VmConfig): MachineConfig {
  return {
    release: vm.release,
    arch: vm.arch,
    vps: vm.vps,
    memory: vm.memory,
    pageSize: vm.pageSize,
    ...(vm.apicIds ? { apicIds: vm.apicIds } : {}),
    ...(vm.budget ? { budget: vm.budget } : {}),
    devices: vm.devices.map((d) => ({ type: d.type, ...(d.instance ? { instance: d.instance } : {}) })),
  };
}
