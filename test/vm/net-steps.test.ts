// The `net` script steps on one VM (the two-VM cases run through `hvkit lab` in
// test/cli/network.test.ts): what each line parses to or why it is refused, the link going down
// and up as the guest sees it, and a ping nobody answers.
import { describe, expect, it } from 'vitest';
import { VirtualSwitch } from '../../src/devices/network/switch.js';
import { Machine } from '../../src/vm/machine.js';
import { parseScript, runScript, type StepResult } from '../../src/vm/script.js';

describe('net steps', () => {
  it.each([
    ['net', /net: expected ping VM\|IP \[COUNT\], udp-echo IP PORT TEXT, or link up\|down/],
    ['net ping', /net ping: expected VM\|IP \[COUNT\] \(COUNT 1 to 999\)/],
    ['net ping a 0', /COUNT 1 to 999/],
    ['net udp-echo 10.0.0.300 7 x', /net udp-echo: expected IP PORT TEXT \(PORT 1 to 65535\)/],
    ['net udp-echo 10.0.0.1 65536 x', /PORT 1 to 65535/],
    [`net udp-echo 10.0.0.1 7 ${'x'.repeat(1473)}`, /TEXT is at most 1472 bytes/],
    ['net link sideways', /net link: expected up or down/],
  ])('%#: a bad net line is refused', (line, message) => {
    expect(() => parseScript(`wait 1\n${line}`, 's.txt')).toThrow(message);
    expect(() => parseScript(`wait 1\n${line}`, 's.txt')).toThrow(/s\.txt.*2/);
  });

  it('link down and up reach the guest as carrier changes; a ping nobody answers fails; an unknown name too', async () => {
    const m = new Machine({ vps: 1, memory: 64 << 20, devices: [{ type: 'network', nic: { backend: new VirtualSwitch('lan') } }], kernel: { network: { interfaces: [{ address: '10.0.0.1/24' }] } } });
    m.boot();
    const results: StepResult[] = [];
    await runScript(m, parseScript('wait 3\nnet link down\nnet link up\nnet ping 10.0.0.9 1\nnet ping elsewhere'), (r) => results.push(r), { keepGoing: true });
    expect(results.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'failed', 'failed']);
    expect(results[1]!.text).toBe('net link down: eth0 lost carrier');
    expect(results[2]!.text).toBe('net link up: eth0 has carrier');
    expect(results[1]!.values).toMatchObject({ outcome: 'done', carrier: false, interface: 'eth0' });
    expect(results[2]!.values).toMatchObject({ outcome: 'done', carrier: true });
    expect(results[3]!.values).toMatchObject({ outcome: 'no-reply', transmitted: 1, received: 0 });
    expect(results[3]!.text).toContain('1 packets transmitted, 0 received, 100% packet loss');
    expect(results[4]!.text).toBe('ping: elsewhere: Name or service not known');
  });
});
