// Where things are: the repository root and the book.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DOCS = join(ROOT, 'docs');
/** The API reference TypeDoc writes; not part of the book's generated regions. */
export const API_DIR = join(DOCS, 'api');
