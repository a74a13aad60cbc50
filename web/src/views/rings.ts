// For each open channel: both rings' fill as gauges, their interrupt masks and pending send
// sizes, and sparklines of packets, signals and interrupts per second.
import type { RingSnapshot } from '../../../src/vmbus/client/snapshot.js';
import { RATE_SAMPLES, type RateHistory } from '../model/rates.js';
import { el, setText } from './dom.js';

const SERIES = [
  ['packets', '#4a9eff'],
  ['signals', '#ffb347'],
  ['interrupts', '#7ddc7d'],
] as const;

/**
 * What a gauge shows of a ring: its size and free bytes; its interrupt mask and pending send size
 * where they are known (a live ring's control page; a trace records only the indices).
 */
export type GaugeRing = Pick<RingSnapshot, 'dataSize' | 'bytesAvailToWrite'> & Partial<Pick<RingSnapshot, 'interruptMask' | 'pendingSendSize'>>;

/** A channel as the panel shows it: either ring may be missing (a replay before any packet crossed it). */
export interface RingRow {
  relid: number;
  className: string;
  subChannel: number;
  outbound: GaugeRing | undefined;
  inbound: GaugeRing | undefined;
}

interface Card {
  root: HTMLElement;
  gauges: { bar: HTMLElement; label: HTMLElement }[];
  spark: HTMLCanvasElement | undefined;
  legend: HTMLElement;
  drawn: number;
}

export class RingPanel {
  private readonly cards = new Map<number, Card>();

  /** `sparklines`: the live panel's rates per second (a replay has none). */
  constructor(
    private readonly root: HTMLElement,
    private readonly opts: { sparklines: boolean } = { sparklines: true },
  ) {}

  render(channels: readonly RingRow[], rates?: RateHistory): void {
    const open = channels.filter((c) => c.outbound || c.inbound);
    for (const [relid, card] of this.cards) {
      if (!open.some((c) => c.relid === relid)) {
        card.root.remove();
        this.cards.delete(relid);
      }
    }
    if (open.length === 0) setText(this.root, channels.length ? 'No open channel.' : '');
    else if (this.root.firstChild?.nodeType === Node.TEXT_NODE) this.root.textContent = '';
    for (const ch of open) {
      const card = this.cards.get(ch.relid) ?? this.card(ch);
      gauge(card.gauges[0]!, 'guest→host', ch.outbound);
      gauge(card.gauges[1]!, 'host→guest', ch.inbound);
      const s = rates?.series.get(ch.relid);
      // Redrawn only when a sample came in.
      if (rates && s && card.spark && card.drawn !== s.packets.length + rates.samples) {
        card.drawn = s.packets.length + rates.samples;
        drawSpark(card.spark, s);
        setText(card.legend, SERIES.map(([k]) => `${k} ${Math.round(s[k].at(-1) ?? 0)}/s`).join('  '));
      }
    }
  }

  private card(ch: RingRow): Card {
    const gauges = [0, 1].map(() => ({ bar: el('div', { class: 'fill' }), label: el('div', { class: 'gauge-label' }) }));
    const spark = this.opts.sparklines ? el('canvas', { width: 240, height: 40, class: 'spark' }) : undefined;
    const legend = el('div', { class: 'legend' });
    const root = el(
      'div',
      { class: 'ring-card', 'data-relid': ch.relid },
      el('div', { class: 'ring-title' }, `relid ${ch.relid} · ${ch.className}${ch.subChannel ? ` (sub ${ch.subChannel})` : ''}`),
      ...gauges.map((g, i) => el('div', { class: 'gauge', 'data-ring': i === 0 ? 'out' : 'in' }, el('div', { class: 'track' }, g.bar), g.label)),
      ...(spark ? [spark, legend] : []),
    );
    this.root.appendChild(root);
    const card = { root, gauges, spark, legend, drawn: -1 };
    this.cards.set(ch.relid, card);
    return card;
  }
}

function gauge(g: { bar: HTMLElement; label: HTMLElement }, name: string, r: GaugeRing | undefined): void {
  const box = g.bar.parentElement!.parentElement!;
  if (!r) {
    g.bar.style.width = '0%';
    delete box.dataset.fill;
    setText(g.label, `${name}: no packet yet`);
    return;
  }
  const used = r.dataSize - r.bytesAvailToWrite;
  const pct = r.dataSize ? (100 * used) / r.dataSize : 0;
  const width = `${pct.toFixed(1)}%`;
  if (g.bar.style.width !== width) g.bar.style.width = width;
  box.dataset.fill = String(used);
  const mask = r.interruptMask !== undefined ? ` · interrupt_mask ${r.interruptMask}` : '';
  setText(g.label, `${name}: ${used}/${r.dataSize} B${mask}${r.pendingSendSize ? ` · pending_send_sz ${r.pendingSendSize}` : ''}`);
}

function drawSpark(c: HTMLCanvasElement, s: { packets: number[]; signals: number[]; interrupts: number[] }): void {
  const g = c.getContext('2d');
  if (!g) return;
  g.clearRect(0, 0, c.width, c.height);
  for (const [k, color] of SERIES) {
    const v = s[k];
    const max = Math.max(1, ...v);
    g.strokeStyle = color;
    g.beginPath();
    v.forEach((y, i) => {
      const x = (i / (RATE_SAMPLES - 1)) * (c.width - 1);
      const py = c.height - 1 - (y / max) * (c.height - 2);
      if (i === 0) g.moveTo(x, py);
      else g.lineTo(x, py);
    });
    g.stroke();
  }
}
