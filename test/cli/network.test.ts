// The network from the command line: `hvkit lab` with the shipped example (ping's lines, the UDP
// echo), its --pcap read back by tshark frame for frame, --nic and the VM file's NIC fields with
// their errors, a NIC whose back end is a capture file, the NIC under --sysfs, and two hvkit
// processes exchanging frames over the UDP back end on the loopback address.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dir = mkdtempSync(join(tmpdir(), 'hvkit-net-'));
const example = resolve(root, 'examples/two-vms.lab.json');
const tshark = spawnSync('tshark', ['--version'], { encoding: 'utf8' }).status === 0;

async function hvkit(...args: string[]): Promise<{ code: number; lines: string[]; err: string }> {
  const lines: string[] = [];
  let err = '';
  const code = await main(['node', 'hvkit', ...args], { out: (l) => lines.push(l), err: (t) => (err += t) });
  return { code, lines, err };
}

function file(name: string, content: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

/** tshark -r FILE with the given fields, one row per frame (tshark must be installed: CI installs it). */
function tsharkFields(path: string, ...fields: string[]): string[][] {
  const r = spawnSync('tshark', ['-r', path, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
}

describe('hvkit lab', () => {
  it('examples/two-vms.lab.json: both VMs boot with their names in front, a pings b with ping\'s lines, the UDP echo comes back', async () => {
    const { code, lines, err } = await hvkit('lab', example);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(lines).toContain('a: [    0.000000] Linux version 6.1.192 (hvkit guest model) #1 SMP');
    expect(lines).toContain('b: [    0.000000] Linux version 6.1.192 (hvkit guest model) #1 SMP');
    expect(lines.some((l) => /^b: \[ *[\d.]+\] {6}device=eth0, hwaddr=00:15:5d:[0-9a-f:]{8}, ipaddr=10\.0\.0\.2, mask=255\.255\.255\.0, gw=255\.255\.255\.255$/.test(l))).toBe(true);
    expect(lines).toContain('a: hvkit script: line 1: net ping b: 3 of 3 answered');
    expect(lines).toContain('a:   PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.');
    for (const seq of [1, 2, 3]) expect(lines.some((l) => new RegExp(`^a:   64 bytes from 10\\.0\\.0\\.2: icmp_seq=${seq} ttl=64 time=\\d+\\.\\d+ ms$`).test(l))).toBe(true);
    expect(lines).toContain('a:   3 packets transmitted, 3 received, 0% packet loss, time 2000ms');
    expect(lines).toContain('a: hvkit script: line 2: net udp-echo 10.0.0.2 7: sent 5 bytes, got "hello" back');
  });

  it.runIf(tshark)('--pcap: tshark reads the capture back frame for frame: ARP, three echo exchanges, the UDP echo', async () => {
    const pcap = join(dir, 'lab.pcapng');
    expect((await hvkit('lab', example, '--pcap', pcap)).code).toBe(0);
    const rows = tsharkFields(pcap, 'frame.number', 'frame.interface_name', 'eth.src', 'eth.dst', 'ip.src', 'ip.dst', 'icmp.type', 'icmp.seq', 'udp.dstport', 'udp.srcport', 'echo.data');
    const ip = rows.filter((r) => r[4]);
    expect(rows.every((r) => r[1] === 'switch lan')).toBe(true);
    expect(ip.map((r) => `${r[4]}>${r[5]} ${r[6] || 'udp'} ${r[7] || r[8]}`)).toEqual([
      '10.0.0.1>10.0.0.2 8 1',
      '10.0.0.2>10.0.0.1 0 1',
      '10.0.0.1>10.0.0.2 8 2',
      '10.0.0.2>10.0.0.1 0 2',
      '10.0.0.1>10.0.0.2 8 3',
      '10.0.0.2>10.0.0.1 0 3',
      '10.0.0.1>10.0.0.2 udp 7',
      '10.0.0.2>10.0.0.1 udp ' + ip[6]![9],
    ]);
    expect(ip[6]![10]).toBe(Buffer.from('hello').toString('hex'));
    expect(rows.length - ip.length).toBeGreaterThanOrEqual(3); // ARP: two announcements, a request, a reply
    // The timestamps are the lab's virtual time from 2026-01-01T00:00:00Z.
    const t = tsharkFields(pcap, 'frame.time_epoch').map((r) => Number(r[0]));
    expect(t[0]!).toBeGreaterThanOrEqual(1767225600);
    expect(t).toEqual([...t].sort((a, b) => a - b));
  });

  it('a lab file that is wrong: one line naming the file and the field, exit 2', async () => {
    const cases: [unknown, string][] = [
      [{ vms: [] }, '/vms: must list at least one VM'],
      [{ vms: [{ name: 'A' }] }, '/vms/0/name: must be a name of lower-case letters'],
      [{ vms: [{ name: 'a' }, { name: 'a' }] }, '/vms/1/name: duplicates the name of /vms/0'],
      [{ vms: [{ name: 'a', vm: { devices: [{ type: 'network', mac: '01:00:5e:00:00:01' }] } }] }, '/vms/0/vm/devices/0/mac: 01:00:5e:00:00:01 is a multicast address'],
      [{ vms: [{ name: 'a', script: ['net ping'] }] }, '/vms/0/script/0: net ping: expected VM|IP [COUNT]'],
      [{ vms: [{ name: 'a' }], extra: 1 }, '/extra: unknown field'],
    ];
    for (const [json, message] of cases) {
      const p = file('bad.lab.json', json);
      const r = await hvkit('lab', p);
      expect(r.code, message).toBe(2);
      expect(r.err).toContain(`hvkit lab: ${p}: ${message}`);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
  });

  it('a script step that fails makes the lab exit 1 after printing every result', async () => {
    const p = file('fail.lab.json', { vms: [{ name: 'a', vm: { devices: [{ type: 'network', ip: '10.0.0.1/24' }] }, script: ['net ping 10.0.0.9 1', 'net udp-echo 10.0.0.1 7 me'] }] });
    const r = await hvkit('lab', p);
    expect(r.code).toBe(1);
    expect(r.lines).toContain('a: hvkit script: line 1: FAILED: net ping 10.0.0.9: 0 of 1 answered');
    expect(r.err).toBe('hvkit lab: 1 script step failed (a line 1)\n');
  });
});

describe('--nic and the VM file', () => {
  it('errors name --nic, the key and the limit; exit 2', async () => {
    const cases: [string, string][] = [
      ['switch=lan,bogus=1', 'unknown key "bogus" (keys: mac, queues, switch, pcap, udp, peer, stream, server, ip, gateway)'],
      ['switch=lan,pcap=x', 'pcap: a NIC has one back end: switch or pcap, not both'],
      ['udp=127.0.0.1:5000', 'peer: udp needs the peer HOST:PORT frames go to'],
      ['udp=127.0.0.1:70000,peer=127.0.0.1:1', 'udp: port 70000 is not 1 to 65535'],
      ['switch=lan,queues=65', 'queues: 65 is not 1 to 64'],
      ['switch=lan,mac=zz', 'mac: "zz" is not a MAC address'],
      ['switch=lan,ip=10.0.0.1/40', 'ip: "10.0.0.1/40" is not an IPv4 address with a prefix of 1 to 32'],
    ];
    for (const [spec, message] of cases) {
      const r = await hvkit('run', '--nic', spec);
      expect(r.code, spec).toBe(2);
      expect(r.err).toBe(`hvkit run: --nic ${JSON.stringify(spec)}: ${message}\n`);
    }
  });

  it('a UDP port already taken is refused before boot, naming the device', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const tcpPort = (server.address() as { port: number }).port;
    server.close();
    const dgram = await import('node:dgram');
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    const port = s.address().port;
    const r = await hvkit('run', '--nic', `udp=127.0.0.1:${port},peer=127.0.0.1:${tcpPort}`);
    s.close();
    expect(r.code).toBe(2);
    // The error names the option as given.
    expect(r.err).toBe(`hvkit run: --nic "udp=127.0.0.1:${port},peer=127.0.0.1:${tcpPort}": udp 127.0.0.1:${port} (peer 127.0.0.1:${tcpPort}): EADDRINUSE\n`);
  });

  it.runIf(tshark)('pcap=FILE: the NIC\'s frames go to a capture tshark reads; --sysfs shows net/eth0 with the MAC', async () => {
    const pcap = join(dir, 'nic.pcapng');
    const sysfs = join(dir, 'sysfs');
    const r = await hvkit('run', '--nic', `pcap=${pcap},mac=00:15:5d:aa:bb:cc,ip=192.168.7.2/24`, '--sysfs', sysfs, '--until', '1');
    expect(r.code).toBe(0);
    const rows = tsharkFields(pcap, 'frame.interface_name', 'eth.src', 'arp.src.proto_ipv4', 'arp.dst.proto_ipv4');
    expect(rows[0]).toEqual(['eth0', '00:15:5d:aa:bb:cc', '192.168.7.2', '192.168.7.2']);
    const nicDir = readFileSync(join(sysfs, [...readdirOf(sysfs)].find((d) => existsSync(join(sysfs, d, 'net')))!, 'net/eth0/address'), 'utf8');
    expect(nicDir).toBe('00:15:5d:aa:bb:cc\n');
  });

  it('the VM file: network fields on a network device, refused elsewhere, one back end each', async () => {
    const ok = file('vm.json', { devices: [{ type: 'network', switch: 'lan', mac: '00:15:5d:00:00:07', queues: 2, ip: '10.1.0.7/16', gateway: '10.1.0.1' }] });
    expect((await hvkit('run', '--config', ok)).code).toBe(0);
    const bad: [unknown, string][] = [
      [{ devices: [{ type: 'scsi', mac: '00:15:5d:00:00:07' }] }, '/devices/0/mac: only a network device takes mac'],
      [{ devices: [{ type: 'network', switch: 'lan', udp: '1.2.3.4:5' }] }, '/devices/0/udp: a NIC has one back end: switch or udp, not both'],
      [{ devices: [{ type: 'network', stream: 'h:1', peer: 'h:2' }] }, '/devices/0/peer: goes with udp'],
      [{ devices: [{ type: 'network', gateway: '10.0.0.1' }] }, '/devices/0/gateway: needs ip on the same NIC'],
      [{ devices: [{ type: 'network', mac: '00:15:5d:00:00:07' }, { type: 'network', mac: '00:15:5D:00:00:07' }] }, '/devices/1/mac: duplicates the MAC of /devices/0'],
      [{ devices: [{ type: 'network', queues: 0 }] }, '/devices/0/queues: must be an integer from 1 to 64'],
      [{ devices: [{ type: 'network', switch: 'a b' }] }, "/devices/0/switch: must be a switch name (letters, digits, '.', '_' and '-', at most 64)"],
    ];
    // --nic takes dashes too: the same MAC however it is written.
    const twice = await hvkit('run', '--nic', 'switch=lan,mac=00:15:5d:00:00:07', '--nic', 'switch=lan,mac=00-15-5D-00-00-07');
    expect(twice.err).toBe('hvkit run: --nic: two NICs have the MAC 00:15:5d:00:00:07\n');
    expect(twice.code).toBe(2);
    for (const [json, message] of bad) {
      const p = file('bad-vm.json', json);
      const r = await hvkit('run', '--config', p);
      expect(r.code, message).toBe(2);
      expect(r.err).toBe(`hvkit run: ${p}: ${message}\n`);
    }
  });
});

function readdirOf(p: string): string[] {
  return (spawnSync('ls', [p], { encoding: 'utf8' }).stdout ?? '').trim().split('\n');
}

describe('two hvkit processes over the UDP back end', () => {
  it('on the loopback address: one pings the other and gets the UDP echo back', async () => {
    const free = async () => {
      const dgram = await import('node:dgram');
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
      const p = s.address().port;
      s.close();
      return p;
    };
    const pa = await free();
    const pb = await free();
    const script = file('two.script', 'net ping 10.9.0.2 2\nnet udp-echo 10.9.0.2 7 across\n');
    const bin = resolve(root, 'bin/hvkit.js');
    const spawnHvkit = (args: string[], ready?: RegExp) => {
      const c = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      let up: () => void = () => undefined;
      const isUp = new Promise<void>((r) => (up = r));
      c.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (ready?.test(out)) up();
      });
      c.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const exited = new Promise<{ code: number | null; out: string; err: string }>((done) => c.on('close', (code) => done({ code, out, err })));
      return { child: c, isUp, exited };
    };
    // B answers until told to stop (paced: its virtual time follows the wall clock); A starts once
    // B has booted, and B is stopped once A is done: both wait on events, not on the clock.
    const b = spawnHvkit(['run', '--release', 'ws2022', '--memory', '128M', '--nic', `udp=127.0.0.1:${pb},peer=127.0.0.1:${pa},ip=10.9.0.2/24,mac=00:15:5d:09:00:02`, '--until', '3600'], /registering driver hv_sock/);
    await Promise.race([b.isUp, b.exited]);
    const ra = await spawnHvkit(['run', '--release', 'ws2022', '--memory', '128M', '--nic', `udp=127.0.0.1:${pa},peer=127.0.0.1:${pb},ip=10.9.0.1/24,mac=00:15:5d:09:00:01`, '--script', script]).exited;
    b.child.kill('SIGINT');
    const rb = await b.exited;
    expect(ra.err).toBe('');
    expect(ra.code).toBe(0);
    expect(ra.out).toContain('hvkit script: line 1: net ping 10.9.0.2: 2 of 2 answered');
    expect(ra.out).toMatch(/ {2}64 bytes from 10\.9\.0\.2: icmp_seq=1 ttl=64 time=[\d.]+ ms/);
    expect(ra.out).toContain('hvkit script: line 2: net udp-echo 10.9.0.2 7: sent 6 bytes, got "across" back');
    expect(rb.code).toBe(130); // B ran until it was interrupted
  }, 60_000);
});
