// The lab file: its VMs' disk images are found where their VM file (or the lab file, for an
// inline VM) is, as `hvkit run --config` finds them; a syntax error names the line and column.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/vm/config.js';
import { loadLabConfig } from '../../src/vm/lab-config.js';

describe('lab file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hvkit-lab-'));
  mkdirSync(join(dir, 'vms'));
  writeFileSync(join(dir, 'vms/a.json'), JSON.stringify({ devices: [{ type: 'scsi', disks: [{ path: 'a.img' }] }] }));

  it('resolves relative images from the VM file that names them, or from the lab file for an inline VM', () => {
    const lab = join(dir, 'lab.json');
    writeFileSync(lab, JSON.stringify({ vms: [{ name: 'a', vm: 'vms/a.json' }, { name: 'b', vm: { devices: [{ type: 'scsi', disks: [{ path: 'b.img' }] }] } }] }));
    const [a, b] = loadLabConfig(lab).vms;
    expect(a!.vm.devices[0]!.disks![0]).toMatchObject({ path: 'a.img', base: join(dir, 'vms') });
    expect(b!.vm.devices[0]!.disks![0]).toMatchObject({ path: 'b.img', base: dir });
  });

  it('a syntax error names the line and column', () => {
    const lab = join(dir, 'broken.json');
    writeFileSync(lab, '{\n  "vms": [x]\n}');
    expect(() => loadLabConfig(lab)).toThrow(ConfigError);
    expect(() => loadLabConfig(lab)).toThrow(`${lab}:2:11: invalid JSON: unexpected "x"`);
  });
});
