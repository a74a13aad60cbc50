// `hvkit decode`: what a VMBus channel message, ring packet, SynIC message slot or whole ring holds, or which
// field makes it invalid. The decoding is src/vmbus/wire/describe.ts; this reads the input
// (hex arguments, a binary or hex-text file, stdin) and prints.
import { readFileSync, statSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { DECODE_AS, describeBytes, errorLine, formatReport, HexTextError, parseHexText, reportJson, type DecodeAs } from '../vmbus/wire/describe.js';
import type { Io } from './main.js';
import { UsageError } from './errors.js';

interface DecodeOptions {
  as: DecodeAs;
  json: boolean;
}

export function parseDecodeAs(v: string): DecodeAs {
  if (!(DECODE_AS as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${DECODE_AS.join(', ')}`);
  return v as DecodeAs;
}

/** Adds `decode`; `status.code` receives 1 when the bytes do not parse. */
export function registerDecode(program: Command, io: Io, status: { code: number }): void {
  program
    .command('decode')
    .description('decode a VMBus channel message, ring packet, SynIC message slot or whole ring, or name the field that is wrong')
    .argument('<input...>', 'hex bytes ("0e 00 00 00 ..." or several arguments), a file holding bytes or hex text, or - for stdin')
    .option('--as <kind>', 'message, packet, slot, ring (a control page and its data area), or auto to guess from the leading fields', parseDecodeAs, 'auto')
    .option('--json', 'print a JSON object (u64s and byte arrays as hex strings)', false)
    .action(async (input: string[], o: DecodeOptions) => {
      const r = describeBytes(await readInput(input), o.as);
      if (!r.ok) {
        for (const e of r.errors) io.err(`hvkit decode: ${errorLine(e)}\n`);
        status.code = 1;
        return;
      }
      if (o.json) io.out(JSON.stringify(reportJson(r.report), null, 2));
      else for (const line of formatReport(r.report)) io.out(line);
    });
}

/** Characters hex text may contain; an argument with others is taken for a missing file. */
const HEXISH = /^[0-9a-fx:,|\s]*$/i;

async function readInput(args: readonly string[]): Promise<Uint8Array> {
  // Unquoted hex arrives as several arguments.
  if (args.length > 1) return hexArgument(args.join(' '));
  const arg = args[0]!;
  if (arg === '-') return fileContents(await readStdin(), 'stdin');
  if (isPath(arg)) return fileContents(readFile(arg), `'${arg}'`);
  if (!HEXISH.test(arg)) throw new UsageError(`cannot read '${arg}': no such file, and it is not hex`);
  return hexArgument(arg);
}

function isPath(arg: string): boolean {
  try {
    return statSync(arg, { throwIfNoEntry: false }) !== undefined;
  } catch {
    // A long hex string is too long a name (ENAMETOOLONG): not a file.
    return false;
  }
}

function readFile(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UsageError(`cannot read '${path}': ${(e as Error).message}`);
  }
}

async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function hexArgument(text: string): Uint8Array {
  try {
    return parseHexText(text);
  } catch (e) {
    if (e instanceof HexTextError) throw new UsageError(`bad hex: ${e.message}`);
    throw e;
  }
}

/** A file holds either the bytes themselves or hex text; text is printable ASCII and line breaks only. */
function fileContents(data: Uint8Array, what: string): Uint8Array {
  if (!data.length) throw new UsageError(`${what} is empty`);
  if (!data.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d)) return new Uint8Array(data);
  try {
    return parseHexText(Buffer.from(data).toString('latin1'));
  } catch (e) {
    if (e instanceof HexTextError) throw new UsageError(`${what} holds text that is not hex: ${e.message}`);
    throw e;
  }
}
