// GuestServices for device tests: printk into an array, a settable clock, shutdown requests
// recorded, files in memory. A test that runs a real kernel passes the machine's clock, or
// records what the kernel's own services print (recordingServices). And hv_utils over a
// stand-in channel (utilHarness): the real driver and UtilChannel, with packets the test hands
// in and answers it reads back.
import type { GuestServices, HostContext } from '../../src/devices/device.js';
import { HvUtilsDriver, type UtilChannel, type UtilService, type UtilServiceInstance } from '../../src/devices/ic/guest.js';
import { MemoryFiles } from '../../src/guest/memfs.js';
import type { Machine } from '../../src/vm/machine.js';
import type { GuestChannel, OpenOptions } from '../../src/vmbus/client/channel.js';
import { PacketType, VMBUS_DEFAULT_MAX_PKT_SIZE, VmbusVersion } from '../../src/vmbus/wire/constants.js';
import { PacketDescriptor, type ParsedPacket } from '../../src/vmbus/wire/packets.js';

/** "3.2" → 0x00030002: a version as Linux packs it (major << 16 | minor), written out for tests. */
export const v = (s: string): number => {
  const [a, b] = s.split('.').map(Number);
  return a! * 0x10000 + b!;
};

/** HV_E_FAIL (include/uapi/linux/hyperv.h), the failure most answers carry. */
export const HV_E_FAIL = 0x80004005;

/** The host context a Machine gives its devices, with its log lines collected into `log`. */
export function hostContext(m: Machine, log: string[] = [], over: Partial<HostContext> = {}): HostContext {
  return {
    server: m.vmbus!.server,
    release: m.partition.release.id,
    now: () => m.nowNs,
    schedule: (at, f) => m.partition.clock.schedule(at, f),
    log: (t) => void log.push(t),
    wallClockNs: () => m.host.wallClockNs(),
    referenceTime: () => m.partition.referenceTime.now(),
    ...over,
  };
}

/**
 * `uptime` is the guest's clock; delayed work runs when `runTimers()` is called after it passed
 * (a test with a Machine can pass `() => m.nowNs` and call runTimers after m.runFor). Log lines
 * are "<level>: <text>"; notes are kept apart.
 */
export function stubServices(uptime: () => number = () => 0) {
  const timers: { due: number; work: () => void; done: boolean }[] = [];
  const lines: string[] = [];
  const notes: string[] = [];
  const journal: string[] = [];
  const shutdowns: string[] = [];
  let realtime = 1_767_225_600_000_000_000n;
  let extra = 0;
  const files = new MemoryFiles();
  const services: GuestServices = {
    log: (level, text) => void lines.push(`${level}: ${text}`),
    note: (text) => void notes.push(text),
    // Daemons' syslog lines go to the journal, as "<level>: <ident>: <text>".
    syslog: (ident, level, text) => void journal.push(`${level}: ${ident}: ${text}`),
    realtimeNs: () => realtime,
    setRealtimeNs: (ns) => void (realtime = ns),
    adjustRealtimeNs: (d) => void (realtime += d),
    uptimeNs: () => uptime() + extra,
    referenceCounter: () => BigInt(Math.floor((uptime() + extra) / 100)),
    scheduleDelayedWork: (delayNs, work) => {
      const t = { due: uptime() + extra + delayNs, work, done: false };
      timers.push(t);
      return { cancel: () => !t.done && (t.done = true) };
    },
    requestShutdown: (kind) => void shutdowns.push(kind),
    system: { hostname: 'hvkit', osName: 'hvkit', osVersion: '6.1', kernelRelease: '6.1.192-hvkit', arch: 'x86_64' },
    files,
  };
  const runTimers = () => {
    for (const t of timers.filter((x) => !x.done && x.due <= uptime() + extra)) {
      t.done = true;
      t.work();
    }
  };
  return { services, lines, notes, journal, shutdowns, files, runTimers, advance: (ns: number) => (extra += ns), pendingTimers: () => timers.filter((t) => !t.done).length };
}

/**
 * The kernel's own GuestServices (its clock, delayed work and files), with what drivers print
 * also collected here: `lines` as "<level>: <text>", `notes` apart.
 */
export function recordingServices(kernel: GuestServices) {
  const lines: string[] = [];
  const notes: string[] = [];
  const journal: string[] = [];
  const services: GuestServices = {
    log: (level, text) => {
      lines.push(`${level}: ${text}`);
      kernel.log(level, text);
    },
    note: (text) => {
      notes.push(text);
      kernel.note(text);
    },
    syslog: (ident, level, text) => {
      journal.push(`${level}: ${ident}: ${text}`);
      kernel.syslog(ident, level, text);
    },
    realtimeNs: () => kernel.realtimeNs(),
    setRealtimeNs: (ns) => kernel.setRealtimeNs(ns),
    adjustRealtimeNs: (d) => kernel.adjustRealtimeNs(d),
    uptimeNs: () => kernel.uptimeNs(),
    referenceCounter: () => kernel.referenceCounter(),
    scheduleDelayedWork: (delayNs, work) => kernel.scheduleDelayedWork(delayNs, work),
    requestShutdown: (kind) => kernel.requestShutdown(kind),
    get system() {
      return kernel.system;
    },
    files: kernel.files,
  };
  return { services, lines, notes, journal, files: kernel.files };
}

/**
 * A GuestChannel as hv_utils sees it: the open's options, what the driver sends (`sent`, with
 * the VMBus transaction id), and packets the test queues. Each receive() hands out one packet,
 * cut as Linux's reader cuts it to the open's max_pkt_size (descriptor included), so what the
 * driver has not read yet stays countable (`left`). Transaction ids count from 1.
 */
export function fakeGuestChannel(classId: string, options: { relid?: number; vmbusVersion?: number } = {}) {
  const relid = options.relid ?? 5;
  const waiting: { payload: Uint8Array; id: bigint }[] = [];
  const sent: { bytes: Uint8Array; id: bigint }[] = [];
  let opened: OpenOptions | undefined;
  let nextId = 1n;
  const fake = {
    relid,
    state: 'open',
    offer: { classId, relid },
    vmbusVersion: options.vmbusVersion ?? VmbusVersion.WIN10_V5_3,
    open(o: OpenOptions) {
      opened = o;
      fake.state = 'opened';
    },
    close() {
      fake.state = 'open';
    },
    receive(onPacket: (p: ParsedPacket) => void): number {
      const next = waiting.shift();
      if (!next) return 0;
      const room = (opened?.maxPacketSize ?? VMBUS_DEFAULT_MAX_PKT_SIZE) - PacketDescriptor.size;
      onPacket({ type: PacketType.DATA_INBAND, flags: 0, transId: next.id, completionRequested: false, payload: next.payload.subarray(0, room) });
      return 1;
    },
    sendInband(payload: Uint8Array, transId: bigint) {
      sent.push({ bytes: payload.slice(), id: transId });
      return true;
    },
  };
  const channel = fake as unknown as GuestChannel;
  const push = (...payloads: Uint8Array[]) => {
    for (const payload of payloads) waiting.push({ payload, id: nextId++ });
  };
  return {
    channel,
    sent,
    /** The options of the open, once opened. */
    opts: () => opened,
    push,
    /** Queues the packets and raises the channel's interrupt. */
    deliver(...payloads: Uint8Array[]) {
      push(...payloads);
      opened?.onEvent(channel);
    },
    left: () => waiting.length,
    /** The last answer's bytes. */
    last: () => sent.at(-1)!.bytes,
  };
}

/**
 * `service` bound by the real hv_utils driver (util_probe) on a fake channel, with stub
 * services: `util` is the UtilChannel it got, `instance` what its attach returned.
 */
export function utilHarness<I extends UtilServiceInstance = UtilServiceInstance>(service: UtilService, options: { vmbusVersion?: number; uptime?: () => number; prepare?: (s: GuestServices) => void } = {}) {
  const stub = stubServices(options.uptime);
  options.prepare?.(stub.services);
  const ch = fakeGuestChannel(service.classId, { vmbusVersion: options.vmbusVersion });
  let instance: UtilServiceInstance | undefined;
  const driver = new HvUtilsDriver([{ ...service, attach: (u) => (instance = service.attach(u)) }], stub.services, 4096);
  driver.probe(ch.channel);
  return { ...stub, ...ch, driver, util: driver.channels.get(ch.channel.relid)! as UtilChannel, instance: instance as I };
}

/**
 * `inner`, deaf while `state.deaf`: its channel callback then reads nothing, as a guest that never
 * answers. `hear` ends that and reads what waits (the host does not signal a ring that was not empty).
 */
export function deafService(inner: UtilService) {
  const state = { deaf: false };
  let run: (() => void) | undefined;
  const service: UtilService = {
    name: inner.name,
    classId: inner.classId,
    attach(util) {
      const i = inner.attach(util);
      run = () => i.onChannelCallback();
      return {
        onChannelCallback: () => {
          if (!state.deaf) i.onChannelCallback();
        },
        deinit: () => i.deinit?.(),
      };
    },
  };
  const hear = () => {
    state.deaf = false;
    run?.();
  };
  return { state, service, hear };
}
