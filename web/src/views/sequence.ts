// The control plane as a sequence diagram: two lifelines, guest and host, and an arrow per
// channel message, newest at the bottom (the last steps only: a diagram of thousands is unread).
import { formatTime } from '../../../src/trace/format.js';
import type { SequenceStep } from '../model/control-plane.js';

const SHOWN = 80;
const ROW = 18;
const WIDTH = 560;
const GUEST_X = 90;
const HOST_X = 470;
const SVG = 'http://www.w3.org/2000/svg';

function node<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

export function renderSequence(root: HTMLElement, steps: readonly SequenceStep[]): void {
  const shown = steps.slice(-SHOWN);
  const key = `${steps.length}:${shown.at(-1)?.ns ?? ''}:${shown.at(-1)?.name ?? ''}`;
  if (root.dataset.key === key) return;
  root.dataset.key = key;
  const height = 30 + shown.length * ROW;
  const svg = node('svg', { width: WIDTH, height, viewBox: `0 0 ${WIDTH} ${height}`, class: 'sequence' });
  svg.append(node('text', { x: GUEST_X, y: 14, 'text-anchor': 'middle', class: 'lifeline-name' }, 'guest'), node('text', { x: HOST_X, y: 14, 'text-anchor': 'middle', class: 'lifeline-name' }, 'host'));
  svg.append(node('line', { x1: GUEST_X, y1: 20, x2: GUEST_X, y2: height, class: 'lifeline' }), node('line', { x1: HOST_X, y1: 20, x2: HOST_X, y2: height, class: 'lifeline' }));
  shown.forEach((s, i) => {
    const y = 32 + i * ROW;
    const [x1, x2] = s.from === 'guest' ? [GUEST_X, HOST_X] : [HOST_X, GUEST_X];
    const g = node('g', { class: `step ${s.from}`, 'data-name': s.name });
    g.append(node('line', { x1, y1: y, x2: x2 + (x2 > x1 ? -6 : 6), y2: y, class: 'arrow' }));
    const tip = x2 > x1 ? `${x2},${y} ${x2 - 7},${y - 4} ${x2 - 7},${y + 4}` : `${x2},${y} ${x2 + 7},${y - 4} ${x2 + 7},${y + 4}`;
    g.append(node('polygon', { points: tip, class: 'tip' }));
    const label = `${s.name}${s.relid !== undefined ? ` #${s.relid}` : ''}${s.detail ? ` ${s.detail}` : ''}`;
    g.append(node('text', { x: (GUEST_X + HOST_X) / 2, y: y - 3, 'text-anchor': 'middle' }, label));
    g.append(node('text', { x: 4, y: y + 4, class: 'time' }, formatTime(s.ns).trim()));
    svg.append(g);
  });
  root.replaceChildren(svg);
  root.scrollTop = root.scrollHeight;
}
