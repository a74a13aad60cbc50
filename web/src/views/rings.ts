// For each open channel: both rings' fill as gauges, their interrupt masks and pending send
// sizes, and sparklines of packets, signals and interrupts per second.
import type { RingSnapshot } from '../../../src/vmbus/client/snapshot.js';
import type { LiveChannel } from '../live/session.js';
import { RATE_SAMPLES, type RateHistory } from '../model/rates.js';
import { el, setText } from './dom.js';

const SERIES = [
  ['packets', '#4a9eff'],
  ['signals', '#ffb347'],
  ['interrupts', '#7ddc7d'],
] as const;

interface Card {
  root: HTMLElement;
  gauges: { bar: HTMLElement; label: HTMLElement }[];
  spark: HTMLCanvasElement;
  legend: HTMLElement;
  drawn: number;
}

export class RingPanel {
  private readonly cards = new Map<number, Card>();

  constructor(private readonly root: HTMLElement) {}

  render(channels: readonly LiveChannel[], rates: RateHistory): void {
    const open = channels.filter((c) => c.outbound && c.inbound);
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
      gauge(card.gauges[0]!, 'guest→host', ch.outbound!);
      gauge(card.gauges[1]!, 'host→guest', ch.inbound!);
      const s = rates.series.get(ch.relid);
      // Redrawn only when a sample came in.
      if (s && card.drawn !== s.packets.length + rates.samples) {
        card.drawn = s.packets.length + rates.samples;
        drawSpark(card.spark, s);
        setText(card.legend, SERIES.map(([k]) => `${k} ${Math.round(s[k].at(-1) ?? 0)}/s`).join('  '));
      }
    }
  }

  private card(ch: LiveChannel): Card {
    const gauges = [0, 1].map(() => ({ bar: el('div', { class: 'fill' }), label: el('div', { class: 'gauge-label' }) }));
    const spark = el('canvas', { width: 240, height: 40, class: 'spark' });
    const legend = el('div', { class: 'legend' });
    const root = el(
      'div',
      { class: 'ring-card', 'data-relid': ch.relid },
      el('div', { class: 'ring-title' }, `relid ${ch.relid} · ${ch.className}${ch.subChannel ? ` (sub ${ch.subChannel})` : ''}`),
      ...gauges.map((g, i) => el('div', { class: 'gauge', 'data-ring': i === 0 ? 'out' : 'in' }, el('div', { class: 'track' }, g.bar), g.label)),
      spark,
      legend,
    );
    this.root.appendChild(root);
    const card = { root, gauges, spark, legend, drawn: -1 };
    this.cards.set(ch.relid, card);
    return card;
  }
}

function gauge(g: { bar: HTMLElement; label: HTMLElement }, name: string, r: RingSnapshot): void {
  const used = r.dataSize - r.bytesAvailToWrite;
  const pct = r.dataSize ? (100 * used) / r.dataSize : 0;
  const width = `${pct.toFixed(1)}%`;
  if (g.bar.style.width !== width) g.bar.style.width = width;
  g.bar.parentElement!.parentElement!.dataset.fill = String(used);
  setText(g.label, `${name}: ${used}/${r.dataSize} B · interrupt_mask ${r.interruptMask}${r.pendingSendSize ? ` · pending_send_sz ${r.pendingSendSize}` : ''}`);
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
