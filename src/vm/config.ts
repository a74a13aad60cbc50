// The VM configuration file as the CLI reads it: config-parse.ts (platform-neutral) with the
// schema read from schema/vm.schema.json, and files read from disk.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { AnySchemaObject } from 'ajv/dist/2020.js';
import { ConfigError, parseVmConfigText, useVmConfigSchema, type VmConfig, type VmOverrides } from './config-parse.js';

export * from './config-parse.js';

// dist/vm/config.js and src/vm/config.ts both sit two levels below the package root.
const SCHEMA_URL = new URL('../../schema/vm.schema.json', import.meta.url);
useVmConfigSchema(() => JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as AnySchemaObject);

/** Relative image paths of `vm` start at the folder of `file` (the VM file, or the lab file that holds it). */
export function imagesRelativeTo(vm: VmConfig, file: string): VmConfig {
  for (const d of vm.devices) for (const disk of d.disks ?? []) disk.base = dirname(resolve(file));
  return vm;
}

/** Reads and parses a configuration file; errors name `path` as the source. */
export function loadVmConfig(path: string, overrides: VmOverrides = {}): VmConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, undefined, `cannot read: ${(e as Error).message}`);
  }
  return imagesRelativeTo(parseVmConfigText(text, path, overrides), path);
}
