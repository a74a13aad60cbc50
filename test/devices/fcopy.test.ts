// The file-copy IC end to end over real VMBus on every release: negotiation (Linux 6.1 offers
// 1.1), copies of arbitrary sizes compared byte for byte in the guest's file tree, the daemon's
// overwrite and create-path rules (hv_fcopy_daemon.c), a copy cancelled mid-way, a full disk, a
// daemon that is not running or does not answer in time (hv_fcopy.c), names in UTF-16 and their
// UTF-8 limit, destinations that try to leave the directory the host named (hvkit refuses them),
// the request bodies byte for byte, and both sides' parsers fed arbitrary bytes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normaliseGuestPath } from '../../src/devices/device.js';
import { escapeReason, makeFcopyService, type FcopyGuest, type FcopyServiceOptions } from '../../src/devices/fcopy/guest.js';
import { attachFcopy, FCOPY_HOST_VERSIONS, type CopyResult, type FcopyHost, type FcopyOptions } from '../../src/devices/fcopy/host.js';
import { encodeDoFcopy, encodeFcopyHdr, encodeStartFcopy, parseFcopyMessage } from '../../src/devices/fcopy/wire.js';
import { hvUtilsModule } from '../../src/devices/ic/guest.js';
import { RELEASE_IDS, type ReleaseId } from '../../src/hypervisor/release.js';
import { WireError } from '../../src/tlfs/struct.js';
import { Machine } from '../../src/vm/machine.js';
import { RUNS } from '../vmbus/fuzz-runs.js';
import { deafService, hostContext, HV_E_FAIL, recordingServices, utilHarness, v } from './services.js';
import { fuzz, itFuzzEachRelease } from '../fuzz/fuzz.js';

const INSTANCE = 'c2a7e915-5d0b-4b6e-9f3a-7e18d4c6b052';
const HV_ERROR_ALREADY_EXISTS = 0x80070050;
const HV_ERROR_DISK_FULL = 0x80070070;
const S = 1e9;

/**
 * A machine with the file-copy IC offered, booted, and hv_utils registered with the service on
 * the kernel's own services (clock, delayed work, files), what the service prints also collected.
 */
function start(release: ReleaseId, opts: { guest?: FcopyServiceOptions; host?: FcopyOptions; vps?: number } = {}) {
  const m = new Machine({ release, vps: opts.vps ?? 2, devices: [], kernel: { vmbus: true, modules: [] } });
  const hostLog: string[] = [];
  const fcopy = attachFcopy(hostContext(m, hostLog), INSTANCE, opts.host);
  m.boot();
  const guest = recordingServices(m.kernel.services);
  const service = makeFcopyService(opts.guest);
  hvUtilsModule([service]).init(guest.services, (d) => m.kernel.vmbus!.registerDriver(d));
  m.runFor(1e6);
  return { m, fcopy, hostLog, guest, files: guest.files, instance: service.instances[0]! };
}

function copy(m: Machine, host: FcopyHost, ...args: Parameters<FcopyHost['copyFile']>): CopyResult | undefined {
  const t = host.copyFile(...args);
  m.waitUntil(() => t.result !== undefined, 10 * S);
  return t.result;
}

const bytes = (n: number, seed = 1): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 7 + (i >> 8)) & 0xff);
/** The kernel log once hv_utils and the daemon are up; the daemon's own lines go to the journal. */
const BASE_LINES = ['info: hv_utils: Registering HyperV Utility Driver', 'info: hv_utils: FCopy IC version 1.1'];
const BASE_JOURNAL = ['info: HV_FCOPY: kernel module version: 1'];
/** The steps of a copy of `n` bytes that succeeds: START, a WRITE per 6 KiB with its offset, COMPLETE. */
const okSteps = (n: number) => [
  { op: 'start', status: 0 },
  ...Array.from({ length: Math.ceil(n / 6144) }, (_, i) => ({ op: 'write', offset: i * 6144, size: Math.min(6144, n - i * 6144), status: 0 })),
  { op: 'complete', status: 0 },
];

describe.each(RELEASE_IDS)('file copy on %s', (release) => {
  it('negotiates FCopy 1.1 once the daemon has registered, and copies a file of three fragments', () => {
    const { m, fcopy, hostLog, guest, files, instance } = start(release);
    expect(fcopy.phase).toBe('ready');
    expect(fcopy.negotiated).toEqual({ framework: v('3.0'), message: v('1.1') });
    expect(guest.lines).toEqual(BASE_LINES);
    expect(guest.journal).toEqual(BASE_JOURNAL);
    expect(instance.daemonVersion).toBe(1);
    const data = bytes(15000);
    files.mkdirs('/tmp');
    expect(copy(m, fcopy, '/tmp', 'a.bin', data)).toEqual({ outcome: 'copied', steps: okSteps(15000) });
    expect(files.read('/tmp/a.bin')).toEqual(data);
    expect(guest.lines.slice(BASE_LINES.length)).toEqual([]);
    expect(guest.journal.slice(BASE_JOURNAL.length)).toEqual(['info: HV_FCOPY: Target file name: /tmp/a.bin']);
    expect(hostLog).toEqual(['fcopy: IC version 1.1 (framework 3.0)', 'fcopy: copying 15000 bytes to /tmp as a.bin', 'fcopy: copied 15000 bytes to /tmp as a.bin']);
  });
});

describe("file copy in a VM: hv_utils loaded by the kernel, on the kernel's own services", () => {
  /** A VM whose kernel loads hv_utils with the file-copy service, booted. */
  function vm() {
    const service = makeFcopyService();
    const m = new Machine({ release: 'ws2022', vps: 2, devices: [], kernel: { vmbus: true, modules: [hvUtilsModule([service])] } });
    const fcopy = attachFcopy(hostContext(m), INSTANCE);
    m.boot();
    m.runFor(1e6);
    const lines = () => m.kernel.log.records.filter((r) => /^(hv_utils|HV_FCOPY): /.test(r.text)).map((r) => `${r.level}: ${r.text}`);
    const journal = () => m.kernel.journal.records.filter((r) => /^(hv_utils|HV_FCOPY): /.test(r.text)).map((r) => `${r.level}: ${r.text}`);
    return { m, fcopy, service, lines, journal, files: m.kernel.services.files };
  }

  it('copies a 100 KiB file in 6 KiB fragments (6224-byte packets) into the kernel\'s file tree', () => {
    const { m, fcopy, lines, journal, files } = vm();
    expect(fcopy.phase).toBe('ready');
    // hv_fcopy_init: max_pkt_size = HV_HYP_PAGE_SIZE * 2, taken by the open.
    expect(m.kernel.vmbus!.channels.find((c) => c.offer.instanceId === INSTANCE)!.maxPacketSize).toBe(8192);
    const data = bytes(100 * 1024, 3);
    const r = copy(m, fcopy, '/srv/in/', 'big.bin', data, { createPath: true });
    expect(r).toEqual({ outcome: 'copied', steps: okSteps(100 * 1024) });
    if (r?.outcome === 'copied') expect(r.steps.filter((x) => x.op === 'write').length).toBe(17);
    expect(files.read('/srv/in/big.bin')).toEqual(data);
    expect(lines()).toEqual(['info: hv_utils: Registering HyperV Utility Driver', 'info: hv_utils: FCopy IC version 1.1']);
    expect(journal()).toEqual(['info: HV_FCOPY: kernel module version: 1', 'info: HV_FCOPY: Target file name: /srv/in//big.bin']);
  });

  it('copies 16 MiB byte for byte (each fragment written in place, so the copy is linear in the size)', () => {
    const { m, fcopy, files } = vm();
    const size = 16 * 1024 * 1024;
    const data = bytes(size, 9);
    const t = fcopy.copyFile('/srv/', 'large.bin', data, { createPath: true });
    m.waitUntil(() => t.result !== undefined, 600 * S);
    expect(t.result?.outcome).toBe('copied');
    expect(t.steps.length).toBe(1 + Math.ceil(size / 6144) + 1);
    expect(t.steps.every((s) => s.status === 0)).toBe(true);
    const got = files.read('/srv/large.bin')!;
    expect(got.length).toBe(size);
    expect(Buffer.compare(got, data)).toBe(0);
  });

  it("a stopped daemon: HV_E_FAIL once the kernel's 30 s timer has run", () => {
    const { m, fcopy, service } = vm();
    service.instances[0]!.daemon.stop();
    const t0 = m.kernel.services.uptimeNs();
    const t = fcopy.copyFile('/', 'late', bytes(3));
    m.runFor(29.9e9);
    expect(t.result).toBeUndefined();
    m.waitUntil(() => t.result !== undefined, 0.2e9);
    expect(t.result).toEqual({ outcome: 'failed', step: 'start', status: HV_E_FAIL, steps: [{ op: 'start', status: HV_E_FAIL }] });
    expect(m.kernel.services.uptimeNs() - t0).toBeGreaterThanOrEqual(30 * S);
  });
});

describe('file copy: answers that are none, a guest that does not answer, and dispose', () => {
  it("a reply to WRITE_TO_FILE with the wrong type ends the copy as a bad answer; the next copy starts", () => {
    const { m, fcopy, files, hostLog } = start('ws2022');
    files.mkdirs('/d');
    const read = fcopy.onGuestPayload.bind(fcopy);
    let answers = 0;
    fcopy.onGuestPayload = (p) => {
      const b = p.slice();
      // The answer to the first WRITE_TO_FILE (after START) comes back as ICMSGTYPE_VSS (5), not ICMSGTYPE_FCOPY (7).
      if (answers++ === 1) b[12] = 5;
      read(b);
    };
    expect(copy(m, fcopy, '/d', 'x', bytes(10))).toEqual({ outcome: 'bad-answer', step: 'write', reason: 'answer of type 5 to a request of type 7', steps: [{ op: 'start', status: 0 }] });
    expect(hostLog.slice(-2)).toEqual(['fcopy: protocol violation: answer of type 5 to a request of type 7', "fcopy: copy of x failed at write: the guest's answer is no valid answer: answer of type 5 to a request of type 7"]);
    expect(copy(m, fcopy, '/d', 'y', bytes(10))).toEqual({ outcome: 'copied', steps: okSteps(10) });
    expect(files.read('/d/y')).toEqual(bytes(10));
  });

  it('a guest that never answers: the step settles timeout after 35 s; dispose settles a copy under way as closed', () => {
    const deaf = deafService(makeFcopyService());
    const m = new Machine({ release: 'ws2022', vps: 2, devices: [], kernel: { vmbus: true, modules: [] } });
    const hostLog: string[] = [];
    const fcopy = attachFcopy(hostContext(m, hostLog), INSTANCE);
    m.boot();
    hvUtilsModule([deaf.service]).init(m.kernel.services, (d) => m.kernel.vmbus!.registerDriver(d));
    m.runFor(1e6);
    expect(fcopy.phase).toBe('ready');
    deaf.state.deaf = true;
    const t = fcopy.copyFile('/', 'f', bytes(3));
    m.runFor(34.9 * S);
    expect(t.result).toBeUndefined();
    m.waitUntil(() => t.result !== undefined, 0.2 * S);
    expect(t.result).toEqual({ outcome: 'timeout', step: 'start', steps: [] });
    expect(hostLog.at(-1)).toBe('fcopy: copy of f failed at start: no answer within 35 s');
    const u = fcopy.copyFile('/', 'g', bytes(3));
    m.runFor(1 * S);
    fcopy.dispose();
    expect(u.result).toEqual({ outcome: 'closed', steps: [] });
    expect(fcopy.phase).toBe('offered');
    expect(fcopy.copyFile('/', 'h', bytes(1)).result).toEqual({ outcome: 'not-ready' });
  });
});

describe('file copy: data', () => {
  itFuzzEachRelease(
    'files of arbitrary sizes arrive byte for byte, in DATA_FRAGMENT pieces at their offsets',
    'fcopy.file-round-trip',
    (release) =>
      fc.property(fc.oneof(fc.integer({ min: 0, max: 20000 }), fc.constantFrom(0, 1, 6143, 6144, 6145, 12288, 40000)), fc.integer({ min: 0, max: 255 }), (size, seed) => {
        const { m, fcopy, files } = start(release);
        files.mkdirs('/data');
        const data = bytes(size, seed);
        const name = 'f0';
        const r = copy(m, fcopy, '/data', name, data);
        expect(r).toEqual({ outcome: 'copied', steps: okSteps(size) });
        expect(files.read(`/data/${name}`)).toEqual(data);
      }),
    Math.min(RUNS, 10),
  );

  it('a smaller fragment size works the same', () => {
    const { m, fcopy, files } = start('ws2019', { host: { fragmentBytes: 1000 } });
    files.mkdirs('/d');
    const data = bytes(2500);
    const r = copy(m, fcopy, '/d', 'x', data);
    expect(r?.outcome).toBe('copied');
    if (r?.outcome === 'copied') expect(r.steps.filter((s) => s.op === 'write').map((s) => [s.offset, s.size])).toEqual([[0, 1000], [1000, 1000], [2000, 500]]);
    expect(files.read('/d/x')).toEqual(data);
  });

  it('names travel as UTF-16 and land as UTF-8; a name past 259 UTF-8 bytes is cut where Linux cuts it', () => {
    const { m, fcopy, files } = start('ws2022');
    files.mkdirs('/tmp');
    expect(copy(m, fcopy, '/tmp', 'résumé 😀.txt', bytes(10))?.outcome).toBe('copied');
    expect(files.list('/tmp')).toEqual(['résumé 😀.txt']);
    // 200 two-byte characters: 129 fit in 259 bytes, the 130th does not and ends the name (fs/nls, 6.1.160+).
    expect(copy(m, fcopy, '/tmp', 'é'.repeat(200), bytes(3))?.outcome).toBe('copied');
    expect(files.exists(`/tmp/${'é'.repeat(129)}`)).toBe(true);
    // 260 UTF-16 units do not fit the field: the host does not send it.
    expect(copy(m, fcopy, '/tmp', 'x'.repeat(260), bytes(3))).toEqual({ outcome: 'invalid', reason: 'the file name has 260 UTF-16 units; at most 259 fit' });
  });
});

describe('file copy: the daemon\'s rules', () => {
  it('an existing file: HV_ERROR_ALREADY_EXISTS without OVER_WRITE (the file stays), replaced with it', () => {
    const { m, fcopy, files, guest } = start('ws2022');
    files.mkdirs('/tmp');
    files.write('/tmp/a', bytes(100, 9));
    expect(copy(m, fcopy, '/tmp', 'a', bytes(10))).toEqual({ outcome: 'failed', step: 'start', status: HV_ERROR_ALREADY_EXISTS, steps: [{ op: 'start', status: HV_ERROR_ALREADY_EXISTS }] });
    expect(files.read('/tmp/a')).toEqual(bytes(100, 9));
    expect(guest.lines.slice(BASE_LINES.length)).toEqual([]);
    expect(guest.journal.slice(BASE_JOURNAL.length)).toEqual(['info: HV_FCOPY: Target file name: /tmp/a', 'info: HV_FCOPY: File: /tmp/a exists']);
    expect(copy(m, fcopy, '/tmp', 'a', bytes(10), { overwrite: true })?.outcome).toBe('copied');
    expect(files.read('/tmp/a')).toEqual(bytes(10));
  });

  it('a missing directory: "Invalid path" without CREATE_PATH; with it each directory a "/" follows is made', () => {
    const { m, fcopy, files, guest } = start('ws2022');
    expect(copy(m, fcopy, '/srv/in/', 'f', bytes(5))).toMatchObject({ outcome: 'failed', step: 'start', status: HV_E_FAIL });
    expect(guest.journal.at(-1)).toBe('err: HV_FCOPY: Invalid path: /srv');
    expect(files.exists('/srv')).toBe(false);
    expect(copy(m, fcopy, '/srv/in/', 'f', bytes(5), { createPath: true })?.outcome).toBe('copied');
    expect(files.read('/srv/in/f')).toEqual(bytes(5));
    // Without a trailing "/" the last directory is not made (hv_start_fcopy stops at the last '/'): open fails.
    expect(copy(m, fcopy, '/srv/out', 'f', bytes(5), { createPath: true })).toMatchObject({ outcome: 'failed', step: 'start', status: HV_E_FAIL });
    expect(guest.journal.slice(-2)).toEqual(['info: HV_FCOPY: Target file name: /srv/out/f', 'info: HV_FCOPY: Open Failed: No such file or directory']);
    expect(files.isDirectory('/srv/out')).toBe(false);
  });

  it('the target is a directory: "Open Failed: Is a directory"', () => {
    const { m, fcopy, files, guest } = start('ws2022');
    files.mkdirs('/tmp/d');
    expect(copy(m, fcopy, '/tmp', 'd', bytes(5), { overwrite: true })).toMatchObject({ outcome: 'failed', step: 'start', status: HV_E_FAIL });
    expect(guest.journal.slice(-2)).toEqual(['info: HV_FCOPY: File: /tmp/d exists', 'info: HV_FCOPY: Open Failed: Is a directory']);
  });

  it('cancel mid-way: CANCEL_FCOPY after the write in flight, and the partial file is removed', () => {
    const { m, fcopy, files } = start('ws2022');
    files.mkdirs('/tmp');
    const data = bytes(6144 * 5);
    const t = fcopy.copyFile('/tmp', 'big', data);
    m.waitUntil(() => t.steps.length >= 2, S);
    // START and a first write are answered; the partial file holds what the guest wrote so far.
    const partial = files.read('/tmp/big')!;
    expect(partial.length % 6144).toBe(0);
    expect(partial.length).toBeGreaterThanOrEqual(6144);
    expect(partial).toEqual(data.subarray(0, partial.length));
    expect(fcopy.cancel()).toBe(true);
    expect(fcopy.cancel()).toBe(false);
    m.waitUntil(() => t.result !== undefined, S);
    // The write in flight is answered, then CANCEL_FCOPY instead of the next one.
    const writes = partial.length / 6144;
    expect(t.result).toEqual({
      outcome: 'cancelled',
      steps: [{ op: 'start', status: 0 }, ...Array.from({ length: writes }, (_, i) => ({ op: 'write', offset: i * 6144, size: 6144, status: 0 })), { op: 'cancel', status: 0 }],
    });
    expect(writes).toBeLessThan(5);
    expect(files.exists('/tmp/big')).toBe(false);
    expect(fcopy.cancel()).toBe(false);
  });

  it('a full disk: the write fails with HV_ERROR_DISK_FULL, the host cancels, the partial file goes', () => {
    const { m, fcopy, files, guest } = start('ws2022', { guest: { maxFileBytes: 10000 } });
    files.mkdirs('/tmp');
    const r = copy(m, fcopy, '/tmp', 'f', bytes(20000));
    expect(r).toEqual({
      outcome: 'failed',
      step: 'write',
      status: HV_ERROR_DISK_FULL,
      steps: [
        { op: 'start', status: 0 },
        { op: 'write', offset: 0, size: 6144, status: 0 },
        { op: 'write', offset: 6144, size: 6144, status: HV_ERROR_DISK_FULL },
        { op: 'cancel', status: 0 },
      ],
    });
    expect(guest.journal.at(-1)).toBe('err: HV_FCOPY: pwrite failed to write 12288 bytes: -1 (No space left on device)');
    expect(files.exists('/tmp/f')).toBe(false);
  });

  it('one copy at a time', () => {
    const { m, fcopy, files } = start('ws2022');
    files.mkdirs('/tmp');
    const first = fcopy.copyFile('/tmp', 'a', bytes(10));
    expect(fcopy.copyFile('/tmp', 'b', bytes(10)).result).toEqual({ outcome: 'in-progress' });
    m.waitUntil(() => first.result !== undefined, S);
    expect(first.result?.outcome).toBe('copied');
  });
});

describe('file copy: the daemon and the timeout', () => {
  it('without the daemon every request fails at once with HV_E_FAIL and nothing is written', () => {
    const { m, fcopy, files, guest } = start('ws2022', { guest: { daemon: false } });
    expect(guest.lines).toEqual(['info: hv_utils: Registering HyperV Utility Driver', 'info: hv_utils: FCopy IC version 1.1']);
    expect(guest.journal).toEqual([]);
    expect(copy(m, fcopy, '/', 'a', bytes(3))).toEqual({ outcome: 'failed', step: 'start', status: HV_E_FAIL, steps: [{ op: 'start', status: HV_E_FAIL }] });
    expect(files.exists('/a')).toBe(false);
  });

  it('a stopped daemon: HV_E_FAIL after 30 s; when it runs again its late answer is refused and it reopens, removing the file', () => {
    const { m, fcopy, files, guest, instance } = start('ws2022', { vps: 1 });
    instance.daemon.stop();
    const t0 = m.nowNs;
    const t = fcopy.copyFile('/', 'late', bytes(3));
    m.waitUntil(() => t.result !== undefined, 29 * S);
    expect(t.result).toBeUndefined();
    m.waitUntil(() => t.result !== undefined, 2 * S);
    expect(t.result).toEqual({ outcome: 'failed', step: 'start', status: HV_E_FAIL, steps: [{ op: 'start', status: HV_E_FAIL }] });
    expect(m.nowNs - t0).toBeGreaterThanOrEqual(30 * S);
    expect(guest.notes).toContain('hv_utils: FCP: the daemon did not answer within 30 s: HV_E_FAIL');
    instance.daemon.cont();
    expect(guest.lines.slice(BASE_LINES.length)).toEqual([]);
    expect(guest.journal.slice(BASE_JOURNAL.length)).toEqual(['info: HV_FCOPY: Target file name: //late', 'err: HV_FCOPY: pwrite failed: Invalid argument', 'info: HV_FCOPY: kernel module version: 1']);
    expect(files.exists('/late')).toBe(false);
    expect(copy(m, fcopy, '/', 'again', bytes(3))?.outcome).toBe('copied');
  });
});

describe('file copy: destinations that leave the directory (hvkit is stricter than hv_fcopy_daemon)', () => {
  const cases: [string, string, string][] = [
    ['/tmp', '../etc/passwd', 'the file name "../etc/passwd" does not name a file inside /tmp'],
    ['/tmp', '/etc/passwd', 'the file name "/etc/passwd" does not name a file inside /tmp'],
    ['/tmp', '..', 'the file name ".." does not name a file inside /tmp'],
    ['/tmp', '.', 'the file name "." does not name a file inside /tmp'],
    ['/tmp', '', 'the file name "" does not name a file inside /tmp'],
    ['/tmp', 'a/b', 'the file name "a/b" does not name a file inside /tmp'],
    ['tmp', 'x', 'the destination path is not absolute'],
    ['C:\\Windows', 'x', 'the destination path is not absolute'],
    ['/../../etc', 'x', 'the destination path climbs above /'],
  ];
  for (const [path, name, reason] of cases) {
    it(`${JSON.stringify(path)} + ${JSON.stringify(name)}: refused with HV_E_FAIL, a line, nothing created`, () => {
      const { m, fcopy, files, guest } = start('ws2022');
      files.mkdirs('/tmp');
      const before = files.list('/');
      const r = copy(m, fcopy, path, name, bytes(10), { createPath: true, overwrite: true });
      expect(r).toEqual({ outcome: 'failed', step: 'start', status: HV_E_FAIL, steps: [{ op: 'start', status: HV_E_FAIL }] });
      expect(guest.lines.slice(BASE_LINES.length)).toEqual([]);
      expect(guest.journal.slice(BASE_JOURNAL.length)).toEqual([`info: HV_FCOPY: Target file name: ${path}/${name}`, `err: HV_FCOPY: hvkit: refusing ${path}/${name}: ${reason}`]);
      expect(files.list('/')).toEqual(before);
      expect(files.list('/tmp')).toEqual([]);
    });
  }

  it('a path with ".." that stays inside the tree is the host\'s choice of directory', () => {
    const { m, fcopy, files } = start('ws2022');
    files.mkdirs('/tmp');
    files.mkdirs('/etc');
    expect(copy(m, fcopy, '/tmp/../etc', 'x', bytes(4))?.outcome).toBe('copied');
    expect(files.read('/etc/x')).toEqual(bytes(4));
  });

  itFuzzEachRelease(
    'for arbitrary paths and names, anything written is the file directly inside the destination',
    'fcopy.guest-paths',
    (release) => {
      const part = fc.constantFrom('', '.', '..', '/', 'a', 'b', 'é', '\\');
      const text = fc.array(part, { maxLength: 6 }).map((a) => a.join(''));
      return fc.property(text, text, fc.boolean(), (path, name, createPath) => {
        const { m, fcopy, files } = start(release);
        const snapshot = (dir: string, out: string[] = []): string[] => {
          for (const e of files.list(dir)) {
            const p = dir === '/' ? `/${e}` : `${dir}/${e}`;
            out.push(p);
            if (files.isDirectory(p)) snapshot(p, out);
          }
          return out;
        };
        const before = new Set(snapshot('/'));
        const r = copy(m, fcopy, path, name, bytes(3), { createPath, overwrite: true });
        const added = snapshot('/').filter((p) => !before.has(p));
        if (escapeReason(path, name)) {
          expect(r).toMatchObject({ outcome: 'failed', step: 'start', status: HV_E_FAIL });
          expect(added).toEqual([]);
          return;
        }
        const dir = normaliseGuestPath(path)!;
        // Directories come from the path as written, cut at each '/' (hv_fcopy_daemon walks it so):
        // "/a/.." creates /a on the way to /.
        const onTheWay: string[] = [];
        for (let q = path.indexOf('/', 1); q >= 0; q = path.indexOf('/', q + 1)) onTheWay.push(normaliseGuestPath(path.slice(0, q)) ?? '/');
        for (const p of added) {
          if (files.isDirectory(p)) expect(onTheWay.some((d) => d === p || d.startsWith(`${p}/`)), p).toBe(true);
          else expect(p).toBe(normaliseGuestPath(`${dir}/${name}`));
        }
      });
    },
    Math.min(RUNS, 15),
  );
});

describe('file copy on the wire', () => {
  const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');

  it('START_FILE_COPY: operation, zero service ids, UTF-16 name at 36, path at 556, flags at 1076, size at 1080', () => {
    const b = encodeStartFcopy('/tmp', 'ab', 3, 0x1122334455n);
    expect(b.length).toBe(1088);
    const dv = new DataView(b.buffer);
    expect(dv.getUint32(0, true)).toBe(0);
    expect(b.subarray(4, 36).every((x) => x === 0)).toBe(true);
    expect(toHex(b.subarray(36, 42))).toBe('610062000000');
    expect(toHex(b.subarray(556, 566))).toBe('2f0074006d0070000000');
    expect(dv.getUint32(1076, true)).toBe(3);
    expect(dv.getBigUint64(1080, true)).toBe(0x1122334455n);
  });

  it('WRITE_TO_FILE: the whole hv_do_fcopy, offset at 40, size at 48, data at 52 padded; COMPLETE and CANCEL are the header', () => {
    const b = encodeDoFcopy(0x10000n, Uint8Array.from([1, 2, 3]));
    expect(b.length).toBe(6196);
    const dv = new DataView(b.buffer);
    expect([dv.getUint32(0, true), dv.getUint32(36, true), dv.getBigUint64(40, true), dv.getUint32(48, true)]).toEqual([1, 0, 0x10000n, 3]);
    expect(toHex(b.subarray(52, 56))).toBe('01020300');
    expect(() => encodeDoFcopy(0n, new Uint8Array(6145))).toThrow(WireError);
    expect(toHex(encodeFcopyHdr(2))).toBe('02000000' + '00'.repeat(32));
    expect(encodeFcopyHdr(3)[0]).toBe(3);
  });

  it('parseFcopyMessage reads back what was built and throws nothing but WireError on arbitrary bytes', () => {
    expect(parseFcopyMessage(encodeStartFcopy('/p', 'n', 1, 7n))).toEqual({ op: 0, fileName: 'n', pathName: '/p', copyFlags: 1, fileSize: 7n });
    const w = parseFcopyMessage(encodeDoFcopy(5n, Uint8Array.from([9, 8])));
    expect(w).toEqual({ op: 1, offset: 5n, data: Uint8Array.from([9, 8]) });
    fuzz(
      'fcopy.wire',
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ minLength: 6196, maxLength: 6300 })), fc.integer({ min: 0, max: 4 }), (b, op) => {
        if (b.length >= 4) new DataView(b.buffer).setUint32(0, op, true);
        try {
          parseFcopyMessage(b);
        } catch (e) {
          expect(e).toBeInstanceOf(WireError);
        }
      }),
      RUNS,
    );
  });
});

describe('file copy guest service: packet by packet', () => {
  /** The file-copy service bound by hv_utils on a stand-in channel; `fire` lets the 30 s timeout pass. */
  function fakeUtil(opts: FcopyServiceOptions = {}) {
    const h = utilHarness<FcopyGuest>(makeFcopyService(opts));
    const fire = () => {
      h.advance(30 * S);
      h.runTimers();
    };
    return { ...h, fire };
  }

  /** An FCOPY message around `body`: pipe header, icmsg_hdr (type 7, flags 3), body. */
  function packet(body: Uint8Array, type = 7): Uint8Array {
    const b = new Uint8Array(28 + body.length);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, 1, true);
    dv.setUint32(4, 20 + body.length, true);
    dv.setUint16(8, 3, true);
    dv.setUint16(12, type, true);
    dv.setUint16(14, 1, true);
    dv.setUint16(16, 1, true);
    dv.setUint16(18, body.length & 0xffff, true);
    b[25] = 3;
    b.set(body, 28);
    return b;
  }
  const status = (b: Uint8Array) => new DataView(b.buffer).getUint32(20, true);

  it('short packets and other message types are logged and not answered', () => {
    const f = fakeUtil();
    f.push(new Uint8Array(27), packet(new Uint8Array(35)), packet(encodeFcopyHdr(2), 5));
    for (let i = 0; i < 3; i++) f.instance.onChannelCallback();
    expect(f.journal.slice(1)).toEqual([]);
    expect(f.lines).toEqual(['err: hv_utils: Fcopy request received. Packet length too small: 27', 'err: hv_utils: Invalid Fcopy hdr. Packet length too small: 63', 'err: hv_utils: Fcopy request received. Invalid msg type: 5']);
    expect(f.sent).toEqual([]);
  });

  it('an unknown operation is HV_E_FAIL with the daemon\'s line; a WRITE with a size past DATA_FRAGMENT fails without writing', () => {
    const f = fakeUtil();
    f.files.mkdirs('/t');
    const big = encodeDoFcopy(0n, new Uint8Array(1));
    new DataView(big.buffer).setUint32(48, 6145, true);
    f.push(packet(encodeFcopyHdr(9)), packet(encodeStartFcopy('/t', 'x', 0, 0n)), packet(big));
    for (let i = 0; i < 3; i++) f.instance.onChannelCallback();
    expect(f.sent.map((x) => status(x.bytes))).toEqual([HV_E_FAIL, 0, HV_E_FAIL]);
    expect(f.journal).toContain('err: HV_FCOPY: Unknown operation: 9');
    expect(f.journal.at(-1)).toBe('err: HV_FCOPY: pwrite failed to write 6145 bytes: -1 (Bad address)');
    expect(f.files.read('/t/x')).toEqual(new Uint8Array(0));
    // COMPLETE closes the file: a stray WRITE after it has no file to write (EBADF).
    f.push(packet(encodeFcopyHdr(2)), packet(encodeDoFcopy(0n, Uint8Array.from([1]))));
    f.instance.onChannelCallback();
    expect(f.sent.map((x) => status(x.bytes)).slice(3)).toEqual([0, HV_E_FAIL]);
    expect(f.journal.at(-1)).toBe('err: HV_FCOPY: pwrite failed to write 6146 bytes: -1 (Bad file descriptor)');
    expect(f.files.read('/t/x')).toEqual(new Uint8Array(0));
  });

  it('a COMPLETE longer than the daemon\'s buffer: its read fails, it reopens (dropping the partial file), the host gets HV_E_FAIL', () => {
    const f = fakeUtil();
    f.files.mkdirs('/t');
    const long = new Uint8Array(6300);
    long[0] = 2;
    f.push(packet(encodeStartFcopy('/t', 'x', 0, 0n)));
    f.instance.onChannelCallback();
    expect(f.files.exists('/t/x')).toBe(true);
    f.push(packet(long));
    f.instance.onChannelCallback();
    expect(f.sent.map((x) => status(x.bytes))).toEqual([0, HV_E_FAIL]);
    expect(f.journal.slice(-2)).toEqual(['err: HV_FCOPY: pread failed: Invalid argument', 'info: HV_FCOPY: kernel module version: 1']);
    expect(f.files.exists('/t/x')).toBe(false);
  });

  it('never throws on arbitrary packets; answers keep their length, flags 5 and the request id; nothing lands outside /in', () => {
    fuzz(
      'fcopy.guest-driver',
      fc.property(
        fc.array(
          fc.oneof(
            fc.uint8Array({ maxLength: 120 }),
            fc.tuple(fc.integer({ min: 0, max: 5 }), fc.uint8Array({ maxLength: 1200 })).map(([op, rest]) => {
              const body = new Uint8Array(Math.max(36, rest.length));
              body.set(rest);
              new DataView(body.buffer).setUint32(0, op, true);
              return packet(body);
            }),
            fc.tuple(fc.string({ maxLength: 8 }), fc.integer({ min: 0, max: 3 })).map(([name, flags]) => packet(encodeStartFcopy('/in', name, flags, 0n))),
            fc.tuple(fc.bigInt({ min: 0n, max: 20000n }), fc.uint8Array({ maxLength: 64 })).map(([off, d]) => packet(encodeDoFcopy(off, d))),
          ),
          { maxLength: 8 },
        ),
        fc.boolean(),
        (payloads, daemon) => {
          const f = fakeUtil({ daemon, maxFileBytes: 1 << 16 });
          f.files.mkdirs('/in');
          f.push(...payloads);
          for (let i = 0; i <= payloads.length; i++) {
            f.instance.onChannelCallback();
            f.fire();
          }
          for (const x of f.sent) {
            // Linux's reader cuts a packet to max_pkt_size (8192) with its 16-byte descriptor.
            expect(x.bytes.length).toBe(Math.min(8192 - 16, payloads[Number(x.id) - 1]!.length));
            expect(x.bytes[25]).toBe(5);
          }
          expect(new Set(f.sent.map((x) => x.id)).size).toBe(f.sent.length);
          expect(f.files.list('/')).toEqual(['in']);
          for (const e of f.files.list('/in')) expect(f.files.isDirectory(`/in/${e}`)).toBe(false);
        },
      ),
      RUNS,
    );
  });
});

describe('file copy host against arbitrary answers', () => {
  itFuzzEachRelease(
    'never throws on what a guest sends, and the copy under way still ends',
    'fcopy.host',
    (release) =>
      fc.property(fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 4 }), (payloads) => {
        const { m, fcopy, files } = start(release);
        files.mkdirs('/h');
        const t = fcopy.copyFile('/h', 'x0', bytes(7000));
        for (const p of payloads) fcopy.onGuestPayload(p);
        m.waitUntil(() => t.result !== undefined, S);
        expect(t.result).toBeDefined();
      }),
    Math.min(RUNS, 10),
  );

  it('host version table: 1.1 on every release', () => {
    for (const r of RELEASE_IDS) expect(FCOPY_HOST_VERSIONS[r]).toEqual([v('1.1')]);
  });
});
