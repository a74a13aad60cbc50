// A HID report-descriptor parser and the report decoding that follows it, as the guest's HID
// core does (Linux drivers/hid/hid-core.c: fetch_item, the main/global/local item parsers,
// hid_add_field, hid_input_report's field extraction; HID 1.11 §6.2.2). It keeps what an input
// driver needs: each report's fields with usage page, usages, report size and count, logical
// minimum and maximum, and their bit offsets. Everything the descriptor can make it allocate is
// bounded by Linux's limits (HID_MAX_USAGES, HID_MAX_FIELDS, report sizes) or, where Linux grows
// a stack without bound, by hvkit's (collection depth); a bad descriptor is a HidParseError
// with the offset and Linux's words for what is wrong.

/** HID_MAX_USAGES, HID_MAX_FIELDS, HID_MAX_IDS, HID_GLOBAL_STACK_SIZE (hid.h). */
export const HID_MAX_USAGES = 12288;
export const HID_MAX_FIELDS = 256;
export const HID_MAX_IDS = 256;
export const HID_GLOBAL_STACK_SIZE = 4;
/** Collections nested at most (Linux grows its stack; hvkit bounds it) and collections in all. */
export const HID_MAX_COLLECTION_DEPTH = 32;
export const HID_MAX_COLLECTIONS = 256;
/** A report at most this many bytes (HID_MAX_BUFFER_SIZE). */
export const HID_MAX_REPORT_BYTES = 16384;

/** Main item flags (HID 1.11 §6.2.2.5). */
export const HID_MAIN_ITEM_CONSTANT = 0x1;
export const HID_MAIN_ITEM_VARIABLE = 0x2;
export const HID_MAIN_ITEM_RELATIVE = 0x4;

export class HidParseError extends Error {
  override readonly name = 'HidParseError';
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`${reason} (at byte ${offset})`);
  }
}

export interface HidField {
  readonly kind: 'input' | 'output' | 'feature';
  /** The usages, usage page in the high 16 bits, one per report count for a variable field. */
  readonly usages: readonly number[];
  readonly flags: number;
  readonly reportSize: number;
  readonly reportCount: number;
  readonly logicalMinimum: number;
  readonly logicalMaximum: number;
  /** Bit offset of the field's first value in its report (after the report id byte). */
  readonly offset: number;
  /** The usage of the application collection the field belongs to. */
  readonly application: number;
}

export interface HidReport {
  readonly id: number;
  readonly kind: 'input' | 'output' | 'feature';
  /** Bits, without the report id byte. */
  size: number;
  readonly fields: HidField[];
}

export interface HidDescriptorParsed {
  readonly reports: HidReport[];
  /** The application collections' usages. */
  readonly applications: number[];
  /** Whether reports carry a report id byte (some Report ID item was seen). */
  readonly numbered: boolean;
}

interface Globals {
  usagePage: number;
  logicalMinimum: number;
  logicalMaximum: number;
  reportSize: number;
  reportCount: number;
  reportId: number;
}

/** hid_parse_report. */
export function parseReportDescriptor(desc: Uint8Array): HidDescriptorParsed {
  let g: Globals = { usagePage: 0, logicalMinimum: 0, logicalMaximum: 0, reportSize: 0, reportCount: 0, reportId: 0 };
  const globalStack: Globals[] = [];
  let usages: number[] = [];
  let usageMinimum: number | undefined;
  const collections: { type: number; usage: number }[] = [];
  let collectionCount = 0;
  const applications: number[] = [];
  const reports = new Map<string, HidReport>();
  let numbered = false;
  let fieldCount = 0;
  let pos = 0;
  const fail = (at: number, reason: string): never => {
    throw new HidParseError(at, reason);
  };
  while (pos < desc.length) {
    const at = pos;
    const b = desc[pos++]!;
    if (b === 0xfe) {
      // A long item: size, tag, then the data, which nothing here uses.
      if (pos + 2 > desc.length) fail(at, `item fetching failed at offset ${at}/${desc.length}`);
      const size = desc[pos]!;
      pos += 2 + size;
      if (pos > desc.length) fail(at, `item fetching failed at offset ${at}/${desc.length}`);
      continue;
    }
    const size = [0, 1, 2, 4][b & 3]!;
    const type = (b >> 2) & 3;
    const tag = b >> 4;
    if (pos + size > desc.length) fail(at, `item fetching failed at offset ${at}/${desc.length}`);
    let udata = 0;
    for (let i = 0; i < size; i++) udata += desc[pos + i]! * 2 ** (8 * i);
    const sdata = size === 0 ? 0 : udata >= 2 ** (8 * size - 1) ? udata - 2 ** (8 * size) : udata;
    pos += size;
    if (type === 1) {
      switch (tag) {
        case 0x0:
          g.usagePage = udata & 0xffff;
          break;
        case 0x1:
          g.logicalMinimum = sdata;
          break;
        case 0x2:
          g.logicalMaximum = g.logicalMinimum < 0 ? sdata : udata;
          break;
        case 0x7:
          if (udata > 256) fail(at, `invalid report_size ${udata}`);
          g.reportSize = udata;
          break;
        case 0x8:
          if (udata === 0 || udata >= HID_MAX_IDS) fail(at, `report_id ${udata} is invalid`);
          g.reportId = udata;
          numbered = true;
          break;
        case 0x9:
          if (udata > HID_MAX_USAGES) fail(at, `invalid report_count ${udata}`);
          g.reportCount = udata;
          break;
        case 0xa:
          if (globalStack.length >= HID_GLOBAL_STACK_SIZE) fail(at, 'global environment stack overflow');
          globalStack.push({ ...g });
          break;
        case 0xb:
          if (globalStack.length === 0) fail(at, 'global environment stack underflow');
          g = globalStack.pop()!;
          break;
        default:
          // Physical extent, units and reserved tags: not needed for input.
          break;
      }
    } else if (type === 2) {
      const usage = size <= 2 ? ((g.usagePage << 16) | udata) >>> 0 : udata >>> 0;
      switch (tag) {
        case 0x0:
          if (usages.length >= HID_MAX_USAGES) fail(at, 'usage index exceeded');
          usages.push(usage);
          break;
        case 0x1:
          usageMinimum = usage;
          break;
        case 0x2: {
          if (usageMinimum === undefined) break;
          const count = usage - usageMinimum + 1;
          if (count > 0 && usages.length + count > HID_MAX_USAGES) fail(at, 'usage index exceeded');
          for (let u = usageMinimum; u <= usage; u++) usages.push(u);
          break;
        }
        default:
          break;
      }
    } else if (type === 0) {
      switch (tag) {
        case 0xa: {
          if (collections.length >= HID_MAX_COLLECTION_DEPTH || collectionCount >= HID_MAX_COLLECTIONS) fail(at, 'collection stack overflow');
          collectionCount++;
          collections.push({ type: udata & 0xff, usage: usages[0] ?? 0 });
          if ((udata & 0xff) === 1) applications.push(usages[0] ?? 0);
          break;
        }
        case 0xc:
          if (collections.length === 0) fail(at, 'collection stack underflow');
          collections.pop();
          break;
        case 0x8:
        case 0x9:
        case 0xb: {
          const kind = tag === 0x8 ? 'input' : tag === 0x9 ? 'output' : 'feature';
          const key = `${kind}:${g.reportId}`;
          let report = reports.get(key);
          if (!report) {
            report = { id: g.reportId, kind, size: 0, fields: [] };
            reports.set(key, report);
          }
          const offset = report.size;
          report.size += g.reportSize * g.reportCount;
          if (report.size > HID_MAX_REPORT_BYTES * 8) fail(at, 'report is too long');
          // Padding (no usages) takes room but is no field.
          if (usages.length && g.reportCount) {
            if (++fieldCount > HID_MAX_FIELDS) fail(at, 'too many fields in report');
            const app = [...collections].reverse().find((c) => c.type === 1)?.usage ?? 0;
            report.fields.push({ kind, usages: [...usages], flags: udata, reportSize: g.reportSize, reportCount: g.reportCount, logicalMinimum: g.logicalMinimum, logicalMaximum: g.logicalMaximum, offset, application: app });
          }
          break;
        }
        default:
          break;
      }
      // A main item ends the local state.
      usages = [];
      usageMinimum = undefined;
    }
  }
  if (collections.length) fail(desc.length, 'unbalanced collection at end of report description');
  return { reports: [...reports.values()], applications, numbered };
}

/** The `n`-th value of a field in a report (bits after the id byte), sign-extended when the field's minimum is negative. */
export function fieldValue(data: Uint8Array, field: HidField, n: number): number {
  const start = field.offset + n * field.reportSize;
  const size = Math.min(field.reportSize, 32);
  let v = 0;
  for (let i = 0; i < size; i++) {
    const bit = start + i;
    const byte = data[bit >> 3] ?? 0;
    if ((byte >> (bit & 7)) & 1) v += 2 ** i;
  }
  if (field.logicalMinimum < 0 && size > 0 && v >= 2 ** (size - 1)) v -= 2 ** size;
  return v;
}
