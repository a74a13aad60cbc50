// The script's disk steps: the guest reads and writes a disk of the first SCSI controller through
// its block-device API (sd), and the host hot-adds and removes images on that controller. Each
// waits, in virtual time, for the guest to finish or to notice, and reports what happened.
import { createHash } from 'node:crypto';
import type { BlockDevice, BlockRequest, BlockResult } from '../devices/storage/storvsc/block.js';
import { targetFor } from '../devices/registry.js';
import { MAX_LUN } from './config.js';
import type { ScriptHost, Step, StepContext, StepResult, StepStatus } from './script.js';
import { guestStorage, storageControllers } from './storage.js';

/** Bytes of a `disk read` without FILE shown in its result (hex). */
export const READ_SHOWN_BYTES = 512;
/** Most blocks one `disk read` may ask for (64 MiB of 512-byte blocks): the result is held in memory. */
export const MAX_READ_BLOCKS = 131072;
/** How long a disk step waits for the guest: past storvsc's 180 s request timeout, which Linux only resets. */
export const DISK_STEP_LIMIT_S = 200;

type DiskStep = Extract<Step, { op: 'disk' }>;

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;
const hex = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');

/** The step as written (script.ts's stepTitle for disk steps). */
export function diskStepTitle(step: DiskStep): string {
  switch (step.action) {
    case 'write':
      return `disk write ${step.lun} ${step.lba} ${step.file}`;
    case 'read':
      return `disk read ${step.lun} ${step.lba} ${step.count}${step.file ? ` ${step.file}` : ''}`;
    case 'add':
      return `disk add ${step.path}${step.lun === undefined ? '' : ` --lun ${step.lun}`}${step.readOnly ? ' --ro' : ''}${step.dvd ? ' --dvd' : ''}`;
    case 'remove':
      return `disk remove ${step.lun}`;
  }
}

/** Runs one disk step against the machine's first SCSI controller. */
export async function diskStep(c: StepContext, step: DiskStep, host: ScriptHost | undefined): Promise<StepResult> {
  const what = diskStepTitle(step);
  const done = (status: StepStatus, values: Record<string, unknown>, text: string): StepResult => ({ line: step.line, step: 'disk', status, values, text: `${what}: ${text}` });
  const ok = (values: Record<string, unknown>, text: string) => done('ok', values, text);
  const fail = (values: Record<string, unknown>, text: string) => done('failed', values, text);
  const { m } = c;
  const controller = storageControllers(m, 'scsi')[0];
  if (!controller) return fail({ outcome: 'no-device' }, 'the VM has no SCSI controller');
  const storage = guestStorage(m);
  const hostNo = storage?.hostOf(controller.instanceId);
  /** The guest's block device at the LUN, once it has one. */
  const device = (lun: number): BlockDevice | undefined => (hostNo === undefined ? undefined : storage?.device(hostNo, 0, 0, lun));
  const wait = async (req: BlockRequest): Promise<BlockResult | undefined> => {
    await c.settle(() => req.result !== undefined, DISK_STEP_LIMIT_S);
    return req.result;
  };
  const unanswered = { outcome: 'no-answer' };
  const noAnswer = `no completion within ${DISK_STEP_LIMIT_S} s (Linux waits on: storvsc resets the request timer)`;

  switch (step.action) {
    case 'write':
    case 'read': {
      const dev = device(step.lun);
      if (!dev) return fail({ outcome: 'no-disk', lun: step.lun }, `the guest has no disk at LUN ${step.lun}`);
      const bs = dev.logicalBlockSize;
      if (step.action === 'read') {
        const r = await wait(dev.read(step.lba, step.count));
        if (!r) return fail(unanswered, noAnswer);
        if (!r.ok) return fail({ outcome: 'error', errno: r.errno, device: dev.name }, `${dev.name}: ${r.errno}: ${r.message}`);
        const data = r.data ?? new Uint8Array(0);
        const sha256 = createHash('sha256').update(data).digest('hex');
        const values = { outcome: 'read', device: dev.name, bytes: data.length, sha256 };
        if (step.file) {
          if (!host?.writeFile) return fail({ ...values, outcome: 'no-host-files' }, 'no host files to write here');
          try {
            host.writeFile(step.file, data);
          } catch (e) {
            return fail({ ...values, outcome: 'unwritable', error: (e as NodeJS.ErrnoException).code ?? String(e) }, `cannot write ${step.file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
          }
          return ok(values, `${plural(data.length, 'byte')} from ${dev.name}, written to ${step.file}`);
        }
        const shown = data.subarray(0, READ_SHOWN_BYTES);
        return ok({ ...values, hex: hex(shown) }, `${plural(data.length, 'byte')} from ${dev.name} (sha256 ${sha256}): ${hex(shown.subarray(0, 32))}${data.length > 32 ? '...' : ''}`);
      }
      if (!host) return fail({ outcome: 'no-host-files' }, 'no host files to read here');
      let data: Uint8Array;
      try {
        data = host.readFile(step.file);
      } catch (e) {
        return fail({ outcome: 'unreadable', error: (e as NodeJS.ErrnoException).code ?? String(e) }, `cannot read ${step.file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
      const blocks = Math.ceil(data.length / bs);
      const buffer = new Uint8Array(blocks * bs);
      buffer.set(data);
      if (data.length % bs !== 0) {
        // The page cache's read-modify-write: the last block keeps the bytes past the file's end.
        const last = await wait(dev.read(step.lba + blocks - 1, 1));
        if (!last) return fail(unanswered, noAnswer);
        if (!last.ok) return fail({ outcome: 'error', errno: last.errno, device: dev.name }, `${dev.name}: ${last.errno}: ${last.message}`);
        buffer.set(last.data!.subarray(data.length % bs), data.length);
      }
      const r = await wait(dev.write(step.lba, buffer));
      if (!r) return fail(unanswered, noAnswer);
      if (!r.ok) return fail({ outcome: 'error', errno: r.errno, device: dev.name }, `${dev.name}: ${r.errno}: ${r.message}`);
      const f = await wait(dev.flush());
      if (!f?.ok) return fail({ outcome: 'error', errno: f?.ok === false ? f.errno : 'ETIMEDOUT', device: dev.name }, `${dev.name}: the flush failed`);
      return ok({ outcome: 'written', device: dev.name, bytes: data.length, blocks }, `${plural(data.length, 'byte')} to ${dev.name} (${plural(blocks, 'block')} of ${bs} bytes from ${step.lba}), flushed`);
    }
    case 'add': {
      if (!host?.openDisk) return fail({ outcome: 'no-host-files' }, 'no host files to open here');
      const used = new Set(controller.controller.list().map((t) => t.address.lun));
      let lun = step.lun;
      if (lun === undefined) {
        lun = 0;
        while (used.has(lun)) lun++;
        if (lun > MAX_LUN) return fail({ outcome: 'full' }, `the controller has no free LUN (0 to ${MAX_LUN})`);
      } else if (used.has(lun)) return fail({ outcome: 'lun-taken', lun }, `LUN ${lun} is taken`);
      let backend;
      try {
        backend = host.openDisk(step.path, { readOnly: step.readOnly, dvd: step.dvd });
      } catch (e) {
        return fail({ outcome: 'unusable', error: (e as Error).message }, (e as Error).message);
      }
      controller.attach({ path: 0, target: 0, lun }, targetFor({ lun, backend, dvd: step.dvd }));
      const lunNo = lun;
      await c.settle(() => device(lunNo) !== undefined, 10);
      const dev = device(lunNo);
      if (!dev) return fail({ outcome: 'not-seen', lun }, `added at LUN ${lun}, but the guest did not attach it within 10 s`);
      return ok({ outcome: 'added', lun, device: dev.name }, `LUN ${lun}, the guest's ${dev.name}`);
    }
    case 'remove': {
      const lun = step.lun;
      if (!controller.controller.get({ path: 0, target: 0, lun })) return fail({ outcome: 'no-disk', lun }, `nothing is attached at LUN ${lun}`);
      const name = device(lun)?.name;
      controller.detach({ path: 0, target: 0, lun });
      await c.settle(() => device(lun) === undefined, 10);
      if (device(lun)) return fail({ outcome: 'still-seen', lun }, `removed from LUN ${lun}, but the guest still has ${name} after 10 s`);
      return ok({ outcome: 'removed', lun, ...(name ? { device: name } : {}) }, name ? `LUN ${lun}; the guest let ${name} go` : `LUN ${lun}`);
    }
  }
}
