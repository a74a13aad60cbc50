// The network script steps (`net ping`, `net udp-echo`, `net link`): what each does to the guest
// and host of a machine, and the result it reports. The guest acts through its hv_netvsc module
// (ping, a UDP socket); the host through its NIC (the virtual cable).
import { ipString, parseIpv4 } from '../devices/network/ether.js';
import { guestNetwork, hostNics } from './network.js';
import type { Machine } from './machine.js';

export type NetStep =
  | { readonly action: 'ping'; readonly target: string; readonly count: number }
  | { readonly action: 'udp-echo'; readonly ip: string; readonly port: number; readonly text: string }
  | { readonly action: 'link'; readonly up: boolean };

export interface NetOutcome {
  readonly ok: boolean;
  readonly values: Record<string, unknown>;
  /** The first line, then any further lines (ping's output). */
  readonly text: string;
}

/** How a step waits: the machine's own clock, or a lab's. */
export type Settle = (done: () => boolean, limitS: number) => Promise<boolean>;

/** Parses `net …`; undefined means the words are not a net step (the caller reports the grammar). */
export function parseNetStep(args: readonly string[]): NetStep | string {
  const [action, ...rest] = args;
  if (action === 'ping') {
    const [target, count, extra] = rest;
    if (!target || extra !== undefined || (count !== undefined && !/^\d{1,3}$/.test(count)) || count === '0') return 'net ping: expected VM|IP [COUNT] (COUNT 1 to 999)';
    return { action, target, count: count === undefined ? 3 : Number(count) };
  }
  if (action === 'udp-echo') {
    const [ip, port, text, extra] = rest;
    if (!ip || !port || text === undefined || extra !== undefined || parseIpv4(ip) === undefined || !/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) return 'net udp-echo: expected IP PORT TEXT (PORT 1 to 65535)';
    if (new TextEncoder().encode(text).length > 1472) return 'net udp-echo: TEXT is at most 1472 bytes (one datagram in a 1500-byte MTU)';
    return { action, ip, port: Number(port), text };
  }
  if (action === 'link') {
    const [state, extra] = rest;
    if ((state !== 'up' && state !== 'down') || extra !== undefined) return 'net link: expected up or down';
    return { action, up: state === 'up' };
  }
  return 'net: expected ping VM|IP [COUNT], udp-echo IP PORT TEXT, or link up|down';
}

/** Runs a net step on `m`; `resolve` names other VMs (a lab's). */
export async function runNetStep(m: Machine, step: NetStep, settle: Settle, resolve?: (name: string) => string | undefined): Promise<NetOutcome> {
  let guest;
  try {
    guest = guestNetwork(m);
  } catch (e) {
    return { ok: false, values: { outcome: 'no-network' }, text: (e as Error).message };
  }
  if (step.action === 'link') {
    const nic = hostNics(m)[0];
    const dev = guest.devices[0];
    if (!nic || !dev) return { ok: false, values: { outcome: 'no-nic' }, text: 'the VM has no network device' };
    nic.setLink(step.up);
    // netvsc applies link events at most every 2 s (LINKCHANGE_INT): give it a little more.
    const seen = await settle(() => dev.carrier === step.up, 5);
    const values = { outcome: seen ? 'done' : 'not-seen', carrier: dev.carrier, interface: dev.name };
    return { ok: seen, values, text: seen ? `net link ${step.up ? 'up' : 'down'}: ${dev.name} ${dev.carrier ? 'has carrier' : 'lost carrier'}` : `net link ${step.up ? 'up' : 'down'}: ${dev.name} still ${dev.carrier ? 'has carrier' : 'has no carrier'} after 5 s` };
  }
  if (step.action === 'ping') {
    const ip = parseIpv4(step.target) ?? (resolve ? parseIpv4(resolve(step.target) ?? '') : undefined);
    if (ip === undefined) return { ok: false, values: { outcome: 'unknown-host' }, text: `ping: ${step.target}: Name or service not known` };
    let p;
    try {
      p = guest.ping(ip, { count: step.count });
    } catch (e) {
      return { ok: false, values: { outcome: 'unreachable' }, text: (e as Error).message };
    }
    await settle(() => p.done, step.count + 11);
    const r = p.result();
    // ping exits 0 when at least one reply came back. Its own lines follow, indented.
    const head = `net ping ${step.target}: ${r.received} of ${r.transmitted} answered`;
    return { ok: r.received > 0, values: { outcome: r.received > 0 ? 'replied' : 'no-reply', target: ipString(ip), transmitted: r.transmitted, received: r.received, rttMs: r.rtts, lines: r.lines }, text: [head, ...r.lines.map((l) => (l ? `  ${l}` : ''))].join('\n') };
  }
  const dst = parseIpv4(step.ip)!;
  const inet = guest.routeFor(dst);
  if (!inet) return { ok: false, values: { outcome: 'unreachable' }, text: 'net udp-echo: the guest has no configured interface' };
  const sport = inet.ephemeralPort();
  const sent = new TextEncoder().encode(step.text);
  let back: Uint8Array | undefined;
  const sock = inet.bindUdp(sport, (src, from, data) => {
    if (src === dst && from === step.port) back = data;
  });
  try {
    // Three tries a second apart: the first may wait for ARP.
    for (let attempt = 0; attempt < 3 && !back; attempt++) {
      inet.sendUdp(dst, sport, step.port, sent);
      await settle(() => back !== undefined, 1);
    }
  } finally {
    sock.close();
  }
  const text = back === undefined ? undefined : new TextDecoder().decode(back);
  const what = `net udp-echo ${step.ip} ${step.port}`;
  if (text === undefined) return { ok: false, values: { outcome: 'no-reply', sent: sent.length }, text: `${what}: sent ${sent.length} bytes, no answer` };
  const values = { outcome: text === step.text ? 'echoed' : 'different', sent: sent.length, received: text };
  return { ok: text === step.text, values, text: `${what}: sent ${sent.length} bytes, got ${JSON.stringify(text)} back${text === step.text ? '' : ', which differs'}` };
}
