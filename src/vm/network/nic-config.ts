// A NIC as a VM file or `--nic` describes it: its back end (an in-process switch, a capture file,
// a UDP socket, a TCP stream, or nothing), its MAC, its vRSS queues and the guest's address on
// it. The checks the schema cannot state live here, each failure naming the field.
import { macString, parseCidr, parseIpv4, parseMac } from '../../devices/network/ether.js';
import { VRSS_CHANNEL_MAX } from '../../devices/network/wire/nvsp.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export type NicBackendConfig =
  | { readonly kind: 'none' }
  | { readonly kind: 'switch'; readonly name: string }
  | { readonly kind: 'pcap'; readonly file: string }
  | { readonly kind: 'udp'; readonly local: HostPort; readonly peer: HostPort }
  | { readonly kind: 'stream'; readonly addr: HostPort; readonly server: boolean };

export interface NicConfig {
  readonly backend: NicBackendConfig;
  /** "00:15:5d:00:00:01", lower case. */
  readonly mac?: string;
  readonly queues?: number;
  /** "10.0.0.2/24". */
  readonly ip?: string;
  readonly gateway?: string;
  /** Where it was given, for errors: "--nic pcap=x.pcap", "vm.json: /devices/3". */
  readonly origin?: string;
}

/** The fields a network device takes besides type and instance, as the file names them. */
export const NIC_FIELDS = ['mac', 'queues', 'switch', 'pcap', 'udp', 'peer', 'stream', 'server', 'ip', 'gateway'] as const;
export type NicFields = Partial<{ mac: string; queues: number; switch: string; pcap: string; udp: string; peer: string; stream: string; server: boolean; ip: string; gateway: string }>;

/** "HOST:PORT" with a port of 1 to 65535, or why not. */
export function parseHostPort(text: string): HostPort | string {
  const i = text.lastIndexOf(':');
  const host = text.slice(0, i);
  const port = Number(text.slice(i + 1));
  if (i <= 0 || !/^[A-Za-z0-9_.-]+$/.test(host)) return `${JSON.stringify(text)} is not HOST:PORT`;
  if (!/^\d+$/.test(text.slice(i + 1)) || port < 1 || port > 65535) return `port ${text.slice(i + 1)} is not 1 to 65535`;
  return { host, port };
}

/**
 * Checks a network device's fields and returns its NicConfig. `fail(field, reason)` throws with
 * the field's name; `type` is the device's type (only network devices take these fields).
 */
export function checkNicFields(type: string, f: NicFields, fail: (field: string, reason: string) => never): NicConfig | undefined {
  const given = NIC_FIELDS.filter((k) => f[k] !== undefined);
  if (given.length === 0) return undefined;
  if (type !== 'network') return fail(given[0]!, `only a network device takes ${given[0]}`);
  const backends = (['switch', 'pcap', 'udp', 'stream'] as const).filter((k) => f[k] !== undefined);
  if (backends.length > 1) return fail(backends[1]!, `a NIC has one back end: ${backends[0]} or ${backends[1]}, not both`);
  if (f.peer !== undefined && f.udp === undefined) return fail('peer', 'goes with udp');
  if (f.server !== undefined && f.stream === undefined) return fail('server', 'goes with stream');
  let backend: NicBackendConfig = { kind: 'none' };
  if (f.switch !== undefined) backend = { kind: 'switch', name: f.switch };
  else if (f.pcap !== undefined) backend = { kind: 'pcap', file: f.pcap };
  else if (f.udp !== undefined) {
    const local = parseHostPort(f.udp);
    if (typeof local === 'string') return fail('udp', local);
    if (f.peer === undefined) return fail('peer', 'udp needs the peer HOST:PORT frames go to');
    const peer = parseHostPort(f.peer);
    if (typeof peer === 'string') return fail('peer', peer);
    backend = { kind: 'udp', local, peer };
  } else if (f.stream !== undefined) {
    const addr = parseHostPort(f.stream);
    if (typeof addr === 'string') return fail('stream', addr);
    backend = { kind: 'stream', addr, server: f.server ?? false };
  }
  const out: { -readonly [K in keyof NicConfig]: NicConfig[K] } = { backend };
  if (f.mac !== undefined) {
    const m = parseMac(f.mac);
    if (!m) return fail('mac', `${JSON.stringify(f.mac)} is not a MAC address`);
    if (m[0]! & 1) return fail('mac', `${f.mac} is a multicast address; a NIC needs a unicast one`);
    out.mac = macString(m); // one spelling, so that duplicates are found however they are written
  }
  if (f.queues !== undefined) {
    if (!Number.isInteger(f.queues) || f.queues < 1 || f.queues > VRSS_CHANNEL_MAX) return fail('queues', `${f.queues} is not 1 to ${VRSS_CHANNEL_MAX}`);
    out.queues = f.queues;
  }
  if (f.ip !== undefined) {
    if (!parseCidr(f.ip)) return fail('ip', `${JSON.stringify(f.ip)} is not an IPv4 address with a prefix of 1 to 32`);
    out.ip = f.ip.includes('/') ? f.ip : `${f.ip}/24`;
  }
  if (f.gateway !== undefined) {
    if (parseIpv4(f.gateway) === undefined) return fail('gateway', `${JSON.stringify(f.gateway)} is not an IPv4 address`);
    if (f.ip === undefined) return fail('gateway', 'needs ip on the same NIC');
    out.gateway = f.gateway;
  }
  return out;
}

/** The NIC's own syntax on the command line: "switch=lan,mac=…,queues=4,ip=10.0.0.2/24". */
export function parseNicSpec(spec: string, fail: (reason: string) => never): NicFields {
  const f: Record<string, string | number | boolean> = {};
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? undefined : part.slice(eq + 1);
    if (!(NIC_FIELDS as readonly string[]).includes(key)) return fail(`unknown key ${JSON.stringify(key)} (keys: ${NIC_FIELDS.join(', ')})`);
    if (key in f) return fail(`${key} given twice`);
    if (key === 'server') {
      if (value !== undefined && value !== 'on' && value !== 'off') return fail('server is on or off');
      f[key] = value !== 'off';
    } else if (value === undefined || value === '') return fail(`${key} needs a value (${key}=…)`);
    else if (key === 'queues') {
      if (!/^\d+$/.test(value)) return fail(`queues ${JSON.stringify(value)} is not a number`);
      f[key] = Number(value);
    } else f[key] = value;
  }
  return f as NicFields;
}
