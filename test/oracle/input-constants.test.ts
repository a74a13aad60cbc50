// Keyboard and mouse constants against the Linux oracle: enum synth_kbd_msg_type, the keystroke
// flags, SYNTH_KBD_VERSION and the serio bytes (hyperv-keyboard.c); enum synthhid_msg_type and
// pipe_prot_msg_type, SYNTHHID_INPUT_VERSION, the report size and ring sizes (hid-hyperv.c);
// sizeof(mousevsc_prt_msg). The structures' layouts are checked in oracle.test.ts.
import { describe, expect, it } from 'vitest';
import * as kbd from '../../src/devices/keyboard/wire.js';
import * as hid from '../../src/devices/mouse/wire.js';
import { vmbusRingSize } from '../../src/vmbus/client/ring-size.js';
import { fullOracle, loadOracle } from './oracle.js';

const { oracle, source } = loadOracle();
const macro = (name: string): number => {
  const m = oracle.macros[name];
  if (!m) throw new Error(`${name} is not in the oracle`);
  return Number(BigInt(m.hex));
};
const enumValues = (name: string): [string, number][] => oracle.enums[name]!.values.map((v) => [v.name, Number(v.value)]);

describe(`input constants against the Linux oracle (${source})`, () => {
  it('enum synth_kbd_msg_type, the IS_* flags, SYNTH_KBD_VERSION, XTKBD_*, HK_MAXIMUM_MESSAGE_SIZE', () => {
    const linux = enumValues('synth_kbd_msg_type');
    expect(linux.length).toBe(4);
    for (const [k, v] of linux) expect((kbd.SynthKbdMsgType as Record<string, number>)[k.slice('SYNTH_KBD_'.length)], k).toBe(v);
    for (const f of ['UNICODE', 'BREAK', 'E0', 'E1'] as const) expect(kbd.KbdInfo[f], f).toBe(macro(`IS_${f}`));
    expect(kbd.SYNTH_KBD_VERSION).toBe(macro('SYNTH_KBD_VERSION'));
    expect(kbd.SYNTH_KBD_VERSION >>> 16).toBe(macro('SYNTH_KBD_VERSION_MAJOR'));
    expect(kbd.XTKBD_EMUL0).toBe(macro('XTKBD_EMUL0'));
    expect(kbd.XTKBD_EMUL1).toBe(macro('XTKBD_EMUL1'));
    expect(kbd.XTKBD_RELEASE).toBe(macro('XTKBD_RELEASE'));
    expect(kbd.HK_MAXIMUM_MESSAGE_SIZE).toBe(macro('HK_MAXIMUM_MESSAGE_SIZE'));
  });

  it('enum synthhid_msg_type, pipe_prot_msg_type, SYNTHHID_INPUT_VERSION, SYNTHHID_MAX_INPUT_REPORT_SIZE', () => {
    for (const [k, v] of enumValues('synthhid_msg_type')) expect((hid.SynthhidMsgType as Record<string, number>)[k.slice('SYNTH_HID_'.length)], k).toBe(v);
    for (const [k, v] of enumValues('pipe_prot_msg_type')) expect((hid.PipeMsgType as Record<string, number>)[k.slice('PIPE_MESSAGE_'.length)], k).toBe(v);
    expect(hid.SYNTHHID_INPUT_VERSION).toBe(macro('SYNTHHID_INPUT_VERSION'));
    expect(hid.SYNTHHID_INPUT_VERSION >>> 16).toBe(macro('SYNTHHID_INPUT_VERSION_MAJOR'));
    expect(hid.SYNTHHID_MAX_INPUT_REPORT_SIZE).toBe(macro('SYNTHHID_MAX_INPUT_REPORT_SIZE'));
  });

  // The sources define both as VMBUS_RING_SIZE(36 * 1024), PAGE_ALIGN(sizeof(struct
  // hv_ring_buffer) + 36 KiB): 40 KiB on 4 KiB pages. The oracle's compiled value is the 36 KiB
  // payload alone (its evaluation leaves the one-page ring header out), so the ring is checked as
  // that payload plus the header page.
  it('the rings both drivers open: VMBUS_RING_SIZE(36 KiB), the payload the oracle records plus one page', () => {
    for (const m of ['KBD_VSC_SEND_RING_BUFFER_SIZE', 'KBD_VSC_RECV_RING_BUFFER_SIZE', 'INPUTVSC_SEND_RING_BUFFER_SIZE', 'INPUTVSC_RECV_RING_BUFFER_SIZE']) expect(vmbusRingSize(36 * 1024, 4096), m).toBe(macro(m) + 4096);
  });

  it('sizeof(struct mousevsc_prt_msg), and the 23- and 20-byte messages mousevsc sends', () => {
    const full = fullOracle();
    if (full) expect(hid.MOUSEVSC_PRT_MSG_SIZE).toBe(full.structs['mousevsc_prt_msg']!.size);
    expect(hid.encodeProtocolRequest(hid.SYNTHHID_INPUT_VERSION).length).toBe(hid.PipePrtMsg.size - 1 + hid.SynthhidProtocolRequest.size);
    expect(hid.encodeProtocolRequest(hid.SYNTHHID_INPUT_VERSION).length).toBe(23);
    expect(hid.encodeDeviceInfoAck().length).toBe(20);
  });
});
