// The channel table and the VPs' SynIC state, as table rows.
import type { PartitionState } from '../../../src/hypervisor/partition.js';
import { formatTime } from '../../../src/trace/format.js';
import { setRows, type Child } from './dom.js';

export interface ChannelTableRow {
  relid: number;
  className: string;
  instance: string;
  subChannel: number;
  state: string;
  targetCpu: number | undefined;
  targetVp: number | undefined;
  packetsIn: number;
  packetsOut: number;
}

export function renderChannelTable(tbody: HTMLTableSectionElement, rows: readonly ChannelTableRow[]): void {
  setRows(
    tbody,
    rows.map((r) => [r.relid, r.className, r.instance, r.subChannel, r.state, r.targetCpu ?? '–', r.targetVp ?? '–', r.packetsIn, r.packetsOut]),
    (i) => ({ 'data-relid': rows[i]!.relid, 'data-class': rows[i]!.className, 'data-state': rows[i]!.state }),
  );
}

// SINTx register bits (TLFS 11.8.4 "SINTx Registers"): vector in 7:0, masked 16, auto-EOI 17, polling 18.
const SINT_MASKED = 1n << 16n;
const SINT_AUTO_EOI = 1n << 17n;
const SINT_POLLING = 1n << 18n;

function sintText(value: string, index: number, queued: number, asserted: number): string | undefined {
  const v = BigInt(value);
  if (v & SINT_MASKED) return undefined;
  const flags = [(v & SINT_AUTO_EOI) !== 0n ? 'auto-EOI' : '', (v & SINT_POLLING) !== 0n ? 'polling' : ''].filter(Boolean).join(',');
  return `SINT${index}→vec ${Number(v & 0xffn)}${flags ? ` ${flags}` : ''}, queued ${queued}, asserted ${asserted}`;
}

// STIMERx_CONFIG bits (TLFS 12.2.1): enable 0, periodic 1, auto-enable 3, SINTx in 19:16.
function timerText(t: PartitionState['vps'][number]['stimers'][number], i: number): string | undefined {
  const c = BigInt(t.config);
  if ((c & 1n) === 0n && t.expirations === 0) return undefined;
  const sint = Number((c >> 16n) & 0xfn);
  const due = t.deadline === undefined ? 'idle' : `due ${formatTime(Number(BigInt(t.deadline)) * 100).trim()}s`;
  return `stimer${i}: ${(c & 1n) !== 0n ? 'on' : 'off'}${(c & 2n) !== 0n ? ' periodic' : ''} SINT${sint} count ${BigInt(t.count)} ${due}, ${t.expirations} expired`;
}

export function renderVps(tbody: HTMLTableSectionElement, vps: PartitionState['vps']): void {
  setRows(
    tbody,
    vps.map((vp): Child[] => {
      const sints = vp.sints.map((s, i) => sintText(s, i, vp.queued[i] ?? 0, vp.assertions[i] ?? 0)).filter(Boolean);
      const timers = vp.stimers.map(timerText).filter(Boolean);
      return [vp.index, vp.apicId, BigInt(vp.scontrol) & 1n ? 'on' : 'off', BigInt(vp.simp) & 1n ? vp.simp : 'off', BigInt(vp.siefp) & 1n ? vp.siefp : 'off', sints.join('; ') || 'all masked', timers.join('; ') || 'none', vp.pendingVector ?? '–'];
    }),
  );
}
