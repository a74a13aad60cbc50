// A run's --script file, read and parsed for `hvkit run` with either guest.
import { readFileSync } from 'node:fs';
import { parseScript, type Step } from '../vm/script.js';
import { UsageError } from './errors.js';

/** The steps of the script at `path`; a UsageError naming --script when it cannot be read. */
export function readScript(path: string): Step[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--script: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseScript(text, path);
}
