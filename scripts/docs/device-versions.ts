// The protocol versions each emulated release's host offers, per device, from the hosts' own
// per-release tables (DESIGN.md principle 5: versions are data).
import { RELEASE_IDS, RELEASES, type ReleaseId } from '../../src/hypervisor/release.js';
import { HOST_IC_MESSAGE_VERSIONS } from '../../src/devices/ic/versions.js';
import { formatIcVersion, LINUX_UTIL_VERSIONS } from '../../src/devices/ic/wire.js';
import { TIMESYNC_VERSIONS } from '../../src/devices/timesync/host.js';
import { KVP_HOST_VERSIONS } from '../../src/devices/kvp/host.js';
import { VSS_HOST_VERSIONS } from '../../src/devices/vss/host.js';
import { FCOPY_HOST_VERSIONS } from '../../src/devices/fcopy/host.js';
import { HOST_VMSTOR_VERSIONS } from '../../src/devices/storage/versions.js';
import { vmstorVersionString } from '../../src/devices/storage/wire.js';
import { NVSP_MAX_BY_RELEASE } from '../../src/devices/network/netvsp/versions.js';
import { NvspVersion } from '../../src/devices/network/wire/nvsp.js';
import { HOST_DYNMEM_VERSIONS } from '../../src/devices/balloon/versions.js';
import { dynmemVersionString } from '../../src/devices/balloon/wire.js';
import { table } from './markdown.js';

const header = ['Device', ...RELEASE_IDS.map((id) => RELEASES[id].name)];
const row = (name: string, f: (id: ReleaseId) => string): string[] => [name, ...RELEASE_IDS.map(f)];
const ic = (t: Readonly<Record<ReleaseId, readonly number[]>>) => (id: ReleaseId) => t[id].map(formatIcVersion).join(', ') || '—';

/** Linux 6.1's preference lists, then the message versions each release's IC hosts list in their NEGOTIATE request, oldest first. */
export function icVersionsByRelease(): string {
  const linux = table(
    ['IC', 'Framework versions', 'Message versions'],
    Object.entries(LINUX_UTIL_VERSIONS).map(([name, v]) => [name, v.framework.map(formatIcVersion).join(', '), v.message.map(formatIcVersion).join(', ')]),
  );
  return `${linux}

` + table(header, [
    row('heartbeat', (id) => HOST_IC_MESSAGE_VERSIONS[id].heartbeat.map(formatIcVersion).join(', ')),
    row('shutdown', (id) => HOST_IC_MESSAGE_VERSIONS[id].shutdown.map(formatIcVersion).join(', ')),
    row('time sync', ic(TIMESYNC_VERSIONS)),
    row('KVP', ic(KVP_HOST_VERSIONS)),
    row('VSS', ic(VSS_HOST_VERSIONS)),
    row('file copy', ic(FCOPY_HOST_VERSIONS)),
  ]);
}

/** The storage protocol versions each release's storvsp accepts. */
export function storageVersionsByRelease(): string {
  return table(header, [row('storvsp', (id) => HOST_VMSTOR_VERSIONS[id].map(vmstorVersionString).join(', '))]);
}

/** The newest NVSP version each release's netvsp accepts. */
export function networkVersionsByRelease(): string {
  const name = (v: number) => Object.entries(NvspVersion).find(([, x]) => x === v)?.[0] ?? `0x${v.toString(16)}`;
  return table(header, [row('netvsp, newest NVSP version', (id) => `${name(NVSP_MAX_BY_RELEASE[id])} (0x${NVSP_MAX_BY_RELEASE[id].toString(16)})`)]);
}

/** The dynamic memory protocol versions each release's VSP accepts. */
export function balloonVersionsByRelease(): string {
  return table(header, [row('dynamic memory VSP', (id) => HOST_DYNMEM_VERSIONS[id].map(dynmemVersionString).join(', '))]);
}
