// A few DOM helpers: elements built from a tag, attributes and children, and text set only
// when it changed (the views redraw at every frame; unchanged nodes stay untouched).
export type Child = Node | string | number | undefined | null | false;

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | number | boolean | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') e.className = String(v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, children);
  return e;
}

export function append(parent: Node, children: Child[]): void {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    parent.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

export function setText(e: Element, text: string): void {
  if (e.textContent !== text) e.textContent = text;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
}

/** Replaces `parent`'s rows with `rows` when their text differs from what is shown. */
export function setRows(tbody: HTMLTableSectionElement, rows: readonly (readonly Child[])[], attrs: (i: number) => Record<string, string | number | undefined> = () => ({})): void {
  const key = JSON.stringify(rows.map((r) => r.map((c) => (c instanceof Node ? c.textContent : c))));
  if (tbody.dataset.key === key) return;
  tbody.dataset.key = key;
  tbody.replaceChildren(...rows.map((r, i) => el('tr', attrs(i), ...r.map((c) => el('td', {}, c)))));
}

export const hex = (n: number): string => `0x${n.toString(16)}`;
