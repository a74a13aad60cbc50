// Where `hvkit run` writes, checked before the VM boots: a path that cannot take the output is a
// usage error naming the option, not a failure after the boot log. Each check creates what the
// run will write into, so that what passed the check is what gets used.
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from './errors.js';

/** What an OS error means, for a person. */
function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    case 'EISDIR':
      return 'it is a directory';
    case 'ENOSPC':
      return 'no space left on the device';
    default:
      return err.code ?? String(e);
  }
}

/** The parent of `path` must be an existing directory. */
function parentExists(option: string, path: string): void {
  const parent = dirname(resolve(path));
  let isDir: boolean;
  try {
    isDir = statSync(parent).isDirectory();
  } catch (e) {
    throw new UsageError(`${option}: cannot write ${path}: ${parent} ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be used (${reason(e)})`}`);
  }
  if (!isDir) throw new UsageError(`${option}: cannot write ${path}: ${parent} is not a directory`);
}

/**
 * A directory the run writes into: created if missing (its parent must exist), refused if it is
 * a file; a probe file proves that it can be written.
 */
export function outputDirectory(option: string, path: string): void {
  if (existsSync(path)) {
    if (!statSync(path).isDirectory()) throw new UsageError(`${option}: ${path} is a file, not a directory`);
  } else {
    parentExists(option, path);
    try {
      mkdirSync(path);
    } catch (e) {
      throw new UsageError(`${option}: cannot create ${path}: ${reason(e)}`);
    }
  }
  const probe = join(path, `.hvkit-probe-${process.pid}`);
  try {
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (e) {
    throw new UsageError(`${option}: cannot write into ${path}: ${reason(e)}`);
  }
}

const GUID_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** An entry of an earlier export: a device folder named by its instance GUID, with its class_id. */
function exportedDevice(dir: string, name: string): boolean {
  return GUID_NAME.test(name) && existsSync(join(dir, name, 'class_id'));
}

/**
 * The --sysfs directory: empty or new, or an earlier export (nothing but device folders, as
 * /sys/bus/vmbus/devices holds), which is cleared so that no stale device stays mixed in.
 * Anything else is refused.
 */
export function sysfsDirectory(option: string, path: string): void {
  outputDirectory(option, path);
  const entries = readdirSync(path);
  if (!entries.every((e) => exportedDevice(path, e))) {
    throw new UsageError(`${option}: ${path} holds files other than an earlier export's device folders; give an empty or new directory`);
  }
  for (const e of entries) rmSync(join(path, e), { recursive: true, force: true });
}

/** The --trace file: opened (created or truncated) now by `open`, which returns what writes it. */
export function outputFile<T>(option: string, path: string, open: (path: string) => T): T {
  if (existsSync(path) && statSync(path).isDirectory()) throw new UsageError(`${option}: ${path} is a directory, not a file`);
  parentExists(option, path);
  try {
    return open(path);
  } catch (e) {
    throw new UsageError(`${option}: cannot write ${path}: ${reason(e)}`);
  }
}
