// The page: a VM booted and watched live (in the page's thread or with the guest in a Web
// Worker; the guest hvkit's model of Linux or, where it was built, Linux 6.1's real VMBus drivers
// compiled to WebAssembly, in the page's thread), or a trace file replayed. Views redraw once per animation frame from the session's
// state; the VM's work runs in slices between frames (live/inthread.ts), so the page keeps
// animating while a ring is saturated.
import { isolated } from './shared-memory.js';
import { DEFAULT_DEVICES, DEVICE_TYPES } from '../../src/devices/catalog.js';
import { KVP_POOL_NAMES, type KvpPoolId } from '../../src/devices/kvp/wire.js';
import { ARCHES } from '../../src/hypervisor/features.js';
import { RELEASE_IDS } from '../../src/hypervisor/release.js';
import { TRACE_KINDS, type TraceDirection, type TraceKind } from '../../src/hypervisor/trace.js';
import { formatRecord } from '../../src/guest/klog.js';
import { formatEvent, formatTime } from '../../src/trace/format.js';
import type { TraceFilter } from '../../src/trace/filter.js';
import { ConfigError } from '../../src/vm/config-parse.js';
import { InThreadSession } from './live/inthread.js';
import { LINUX_UNSUPPORTED, LinuxSession } from './live/linux-session.js';
import { linuxModule, linuxUnavailable } from './live/linux-module.js';
import { LINUX_RAM_BYTES } from '../../src/guest/linux/guest.js';
import type { LiveSession } from './live/session.js';
import { WorkerSession } from './live/worker-session.js';
import { RateHistory } from './model/rates.js';
import { checkTraceSize, loadTrace, TraceLoadError } from './replay/load.js';
import { Replay } from './replay/replay.js';
import { byId, el, setRows, setText } from './views/dom.js';
import { RingPanel } from './views/rings.js';
import { ScreenPanel } from './views/screen.js';
import { renderSequence } from './views/sequence.js';
import { renderChannelTable, renderVps } from './views/tables.js';
import { machineConfig, parseVmFile, type VmConfig } from './vm-config.js';

/** What tests and curious people can read from the console. */
interface PageState {
  session: LiveSession | undefined;
  replay: Replay | undefined;
  fps: number[];
  /** Wall time spent drawing the live views, in all. */
  renderMs: number;
  screen: ScreenPanel | undefined;
}
const page: PageState = { session: undefined, replay: undefined, fps: [], renderMs: 0, screen: undefined };
(globalThis as { hvkit?: PageState }).hvkit = page;

// --- Tabs and the isolation banner -------------------------------------------------------------

for (const tab of document.querySelectorAll<HTMLButtonElement>('.tab')) {
  tab.addEventListener('click', () => {
    for (const t of document.querySelectorAll<HTMLButtonElement>('.tab')) t.classList.toggle('active', t === tab);
    byId('live').hidden = tab.dataset.tab !== 'live';
    byId('replay').hidden = tab.dataset.tab !== 'replay';
  });
}

const banner = byId('isolation');
if (!isolated) {
  banner.hidden = false;
  banner.textContent =
    'This page is not cross-origin isolated (it was served without the Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy headers), so it has no SharedArrayBuffer: the guest cannot run in a Web Worker. The VM still runs in the page\'s own thread. `npm run web` and `hvkit web` send the headers.';
  byId<HTMLInputElement>('worker').disabled = true;
}

// --- The setup form ------------------------------------------------------------------------------

const form = {
  release: byId<HTMLSelectElement>('release'),
  arch: byId<HTMLSelectElement>('arch'),
  vps: byId<HTMLInputElement>('vps'),
  pageSize: byId<HTMLSelectElement>('page-size'),
  memory: byId<HTMLInputElement>('memory'),
  devices: byId<HTMLFieldSetElement>('devices'),
  stream: byId<HTMLInputElement>('stream'),
  worker: byId<HTMLInputElement>('worker'),
  json: byId<HTMLTextAreaElement>('vm-json'),
  error: byId('config-error'),
  linux: byId<HTMLInputElement>('guest-linux'),
  model: byId<HTMLInputElement>('guest-model'),
  linuxNote: byId('linux-note'),
};
type GuestKind = 'model' | 'linux';
const guestKind = (): GuestKind => (form.linux.checked && !form.linux.disabled ? 'linux' : 'model');
const option = (value: string, text = value) => el('option', { value }, text);
form.release.append(...RELEASE_IDS.map((r) => option(r)));
form.release.value = 'ws2022';
form.arch.append(...ARCHES.map((a) => option(a)));
form.pageSize.append(option('4k'), option('16k'), option('64k'));
for (const type of DEVICE_TYPES) {
  form.devices.append(el('label', {}, el('input', { type: 'checkbox', name: 'device', value: type, checked: DEFAULT_DEVICES.includes(type) }), ` ${type}`));
}
/** Devices listed in a VM file beyond a type each (instance GUIDs, a second NIC) are kept as the file said. */
let fileDevices: VmConfig['devices'] | undefined;

function showConfigError(message: string | undefined): void {
  form.error.hidden = message === undefined;
  form.error.textContent = message ?? '';
}

/** The form as a VM file, which the schema then checks as it checks `hvkit run --config`. */
function formJson(): unknown {
  const checked = [...form.devices.querySelectorAll<HTMLInputElement>('input[name=device]')].filter((i) => i.checked).map((i) => i.value);
  // The real Linux guest is a uniprocessor 32-bit x86 kernel whose RAM is its module's memory.
  const linux = guestKind() === 'linux';
  return {
    release: form.release.value,
    arch: linux ? 'x86' : form.arch.value,
    cpus: linux ? 1 : Number(form.vps.value),
    memory: linux ? `${LINUX_RAM_BYTES >> 20}M` : `${form.memory.value}M`,
    pageSize: linux ? '4k' : form.pageSize.value,
    devices: fileDevices?.filter((d) => checked.includes(d.type)) ?? checked.map((type) => ({ type })),
  };
}

function fillForm(vm: VmConfig): void {
  form.release.value = vm.release;
  form.arch.value = vm.arch;
  form.vps.value = String(vm.vps);
  form.memory.value = String(Math.round(vm.memory / (1 << 20)));
  form.pageSize.value = vm.pageSize === 4096 ? '4k' : vm.pageSize === 16384 ? '16k' : '64k';
  for (const i of form.devices.querySelectorAll<HTMLInputElement>('input[name=device]')) i.checked = vm.devices.some((d) => d.type === i.value);
  fileDevices = vm.devices;
}

function applyVmFile(text: string, source: string): boolean {
  try {
    fillForm(parseVmFile(text, source));
    showConfigError(undefined);
    return true;
  } catch (e) {
    showConfigError(e instanceof ConfigError ? e.message : `${source}: ${String(e)}`);
    return false;
  }
}

byId('apply-json').addEventListener('click', () => applyVmFile(form.json.value, 'vm.json'));

// The guest choice: Linux's real drivers where the server has their module (and the page may
// share memory); its fixed machine shape shown in the fields it fixes.
const LINUX_FIXED = 'fixed by the real Linux guest: one x86 VP, 4 KiB pages, the module\'s 64 MiB of RAM, in the page\'s thread';
function applyGuestChoice(): void {
  const linux = guestKind() === 'linux';
  for (const f of [form.arch, form.vps, form.pageSize, form.memory, form.worker, form.stream]) {
    f.disabled = linux || (f === form.worker && !isolated);
    f.title = linux ? LINUX_FIXED : '';
  }
  if (linux) {
    form.worker.checked = false;
    form.stream.checked = false;
  }
  form.linuxNote.textContent = linux ? `Linux (real drivers): ${LINUX_FIXED}; its printk lines are the boot log.` : form.linux.disabled ? form.linuxNote.textContent : 'Linux (real drivers): available (the module from npm run build:linux).';
}
form.linux.addEventListener('change', applyGuestChoice);
form.model.addEventListener('change', applyGuestChoice);
void linuxUnavailable(isolated).then((why) => {
  form.linux.disabled = why !== undefined;
  form.linuxNote.dataset.available = String(why === undefined);
  form.linuxNote.textContent = why === undefined ? 'Linux (real drivers): available (the module from npm run build:linux).' : `Linux (real drivers) is unavailable: ${why}`;
});
for (const input of [form.release, form.arch, form.vps, form.pageSize, form.memory]) input.addEventListener('change', () => showConfigError(undefined));

// `hvkit web --config vm.json` serves the VM file next to the page.
void fetch('./vm.json').then(async (res) => {
  if (!res.ok || !(res.headers.get('content-type') ?? '').includes('json')) return;
  const text = await res.text();
  form.json.value = text;
  if (applyVmFile(text, 'vm.json (from hvkit web --config)')) byId('config-error').hidden = true;
});

// --- The live session --------------------------------------------------------------------------

const controls = {
  pause: byId<HTMLButtonElement>('pause'),
  resume: byId<HTMLButtonElement>('resume'),
  speed: byId<HTMLSelectElement>('speed'),
  shutdown: byId<HTMLButtonElement>('shutdown'),
  restart: byId<HTMLButtonElement>('restart'),
  streamStart: byId<HTMLButtonElement>('stream-start'),
  streamStop: byId<HTMLButtonElement>('stream-stop'),
  kvpSet: byId<HTMLButtonElement>('kvp-set'),
  kvpRead: byId<HTMLButtonElement>('kvp-read'),
  hvsock: byId<HTMLButtonElement>('hvsock-send'),
};
const status = byId('status');
const logView = byId('log');
const rings = new RingPanel(byId('rings'));
const screen = new ScreenPanel(byId<HTMLCanvasElement>('screen-canvas'), byId('screen-status'), byId<HTMLButtonElement>('ctrl-alt-del'));
page.screen = screen;
let rates = new RateHistory();
interface StartConfig {
  vm: VmConfig;
  stream: boolean;
  worker: boolean;
  guest: GuestKind;
}
let lastConfig: StartConfig | undefined;
/** Counts starts: a Linux start still loading its module gives way to a later one. */
let starts = 0;
let logShown = 0;
let dirty = true;

byId<HTMLFormElement>('setup-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  let vm: VmConfig;
  try {
    vm = parseVmFile(JSON.stringify(formJson()), 'the form');
  } catch (e) {
    showConfigError(e instanceof ConfigError ? e.message : String(e));
    return;
  }
  showConfigError(undefined);
  const guest = guestKind();
  start({ vm, stream: form.stream.checked && guest === 'model', worker: form.worker.checked && isolated && guest === 'model', guest });
});

/** Panels this guest has no use for, hidden, with the reasons listed in their place. */
function showPanelsFor(guest: GuestKind): void {
  const linux = guest === 'linux';
  byId('screen').hidden = linux;
  byId('hvsock').hidden = linux;
  byId('unsupported').hidden = !linux;
  byId('unsupported-list').replaceChildren(
    ...(linux
      ? [
          el('li', {}, `Screen and keyboard: ${LINUX_UNSUPPORTED.screen}`),
          el('li', {}, `hv_sock echo: ${LINUX_UNSUPPORTED.hvsock}`),
          el('li', {}, `Stream: ${LINUX_UNSUPPORTED.stream}`),
          el('li', {}, `Web Worker: ${LINUX_UNSUPPORTED.worker}`),
        ]
      : []),
  );
}

function start(cfg: StartConfig): void {
  page.session?.dispose();
  page.session = undefined;
  const run = ++starts;
  lastConfig = cfg;
  rates = new RateHistory();
  logShown = 0;
  logView.textContent = '';
  showPanelsFor(cfg.guest);
  setText(status, cfg.guest === 'linux' ? 'loading the Linux module…' : 'booting…');
  status.dataset.state = 'booting';
  if (cfg.guest === 'linux') {
    linuxModule().then(
      (module) => run === starts && launch(cfg, () => new LinuxSession(module, machineConfig(cfg.vm), { speed: Number(controls.speed.value) })),
      (e: unknown) => run === starts && showConfigError(`cannot load the Linux module: ${e instanceof Error ? e.message : String(e)}`),
    );
    return;
  }
  const speed = Number(controls.speed.value);
  const config = machineConfig(cfg.vm);
  launch(cfg, () => (cfg.worker ? new WorkerSession(config, { speed, stream: cfg.stream }) : new InThreadSession(config, { speed, stream: cfg.stream })));
}

function launch(cfg: StartConfig, make: () => InThreadSession | WorkerSession | LinuxSession): void {
  let s: InThreadSession | WorkerSession | LinuxSession;
  try {
    s = make();
  } catch (e) {
    showConfigError(`cannot make the machine: ${e instanceof Error ? e.message : String(e)}`);
    return;
  }
  page.session = s;
  screen.attach(s.screen);
  s.onChange = () => {
    dirty = true;
    // A guest that asks for a restart is booted again, as Hyper-V restarts a VM.
    if (s.state === 'off' && s.reason === 'the guest restarts' && page.session === s && lastConfig) {
      s.onChange = () => {};
      setTimeout(() => start(lastConfig!), 0);
    }
  };
  setText(status, 'booting…');
  // Let the page paint "booting" before the boot starts (in-thread, it then boots in slices).
  requestAnimationFrame(() => setTimeout(() => void s.boot(), 0));
}

controls.pause.addEventListener('click', () => page.session?.pause());
controls.resume.addEventListener('click', () => page.session?.resume());
controls.speed.addEventListener('change', () => page.session?.setSpeed(Number(controls.speed.value)));
controls.shutdown.addEventListener('click', () => page.session?.shutdown('shutdown'));
controls.restart.addEventListener('click', () => page.session?.shutdown('restart'));
controls.streamStart.addEventListener('click', () => page.session?.stream?.start());
controls.streamStop.addEventListener('click', () => page.session?.stream?.stop());

// --- KVP -------------------------------------------------------------------------------------------

const kvpPool = byId<HTMLSelectElement>('kvp-pool');
for (const [id, name] of Object.entries(KVP_POOL_NAMES)) kvpPool.append(option(id, name));
const kvpStatus = byId('kvp-status');

async function readPool(): Promise<void> {
  const kvp = page.session?.kvp;
  if (!kvp) return;
  const pool = Number(kvpPool.value) as KvpPoolId;
  setText(kvpStatus, `asking the guest for pool ${KVP_POOL_NAMES[pool]}…`);
  const r = await kvp.enumerate(pool).done;
  setText(kvpStatus, r.outcome === 'ok' ? `pool ${KVP_POOL_NAMES[pool]}: ${r.entries.length} entries, read from the guest` : `enumerate: ${r.outcome}`);
  setRows(byId<HTMLTableSectionElement>('kvp-body'), r.entries.map((e) => [e.key, e.value]), (i) => ({ 'data-key': r.entries[i]!.key }));
}

byId<HTMLFormElement>('kvp-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const kvp = page.session?.kvp;
  if (!kvp) return;
  const pool = Number(kvpPool.value) as KvpPoolId;
  const key = byId<HTMLInputElement>('kvp-key').value;
  const value = byId<HTMLInputElement>('kvp-value').value;
  setText(kvpStatus, `setting ${key}…`);
  void kvp.set(pool, key, value).done.then((r) => {
    if (r.outcome !== 'ok') return setText(kvpStatus, `set ${key}: ${r.outcome}${r.outcome === 'invalid' ? ` (${r.field}: ${JSON.stringify(r.problem)})` : ''}`);
    return readPool();
  });
});
controls.kvpRead.addEventListener('click', () => void readPool());

// --- hv_sock echo ----------------------------------------------------------------------------------

byId<HTMLFormElement>('hvsock-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const s = page.session;
  const out = byId('hvsock-result');
  if (!s) return;
  const port = Number(byId<HTMLInputElement>('hvsock-port').value);
  const text = byId<HTMLInputElement>('hvsock-text').value;
  setText(out, `connecting to port ${port}…`);
  void s.hvsockEcho(port, text).then((r) => {
    out.dataset.outcome = r.ok ? (r.back === text ? 'echoed' : 'different') : 'error';
    setText(out, r.ok ? `sent ${text.length} characters, got ${JSON.stringify(r.back)} back` : `hv_sock: ${r.error}`);
  });
});

// --- Drawing, once per animation frame ---------------------------------------------------------------

let lastSample = 0;
let lastSlow = 0;
/** How often the tables, the sparklines and the diagram are redrawn. */
const SLOW_VIEWS_MS = 250;

function renderLive(now: number): void {
  const s = page.session;
  const running = s?.state === 'running' || s?.state === 'paused';
  controls.pause.disabled = s?.state !== 'running';
  controls.resume.disabled = s?.state !== 'paused';
  controls.shutdown.disabled = controls.restart.disabled = !running;
  const st = s?.stream?.status();
  controls.streamStart.disabled = !running || !s?.stream || st?.running === true || (st?.framesOut ?? 0) > 0;
  controls.streamStop.disabled = !running || st?.running !== true;
  controls.kvpSet.disabled = controls.kvpRead.disabled = !running || !s?.kvp;
  controls.hvsock.disabled = !running || s instanceof LinuxSession;
  if (!s) return;
  // The screen redraws only when the guest sent an update since the last frame.
  screen.render();
  status.dataset.state = s.state;
  setText(status, `${s.state}${s.reason ? `: ${s.reason}` : ''} (${s.mode}${s instanceof LinuxSession ? ', Linux 6.1\'s real drivers' : ''})`);
  setText(byId('clock'), `virtual time ${formatTime(s.nowNs()).trim()} s · speed ${s.speed === Infinity ? 'as fast as it goes' : `${s.speed}×`}`);
  setText(byId('stream-status'), st ? `frames out ${st.framesOut}, in ${st.framesIn}, errors ${st.errors}` : '');
  if (s.log.length > logShown) {
    logView.append(s.log.slice(logShown).map(formatRecord).join('\n') + '\n');
    logShown = s.log.length;
    logView.scrollTop = logView.scrollHeight;
  }
  if (!dirty) return;
  dirty = false;
  // The gauges move at every frame; tables, sparklines and the diagram a few times a second.
  const channels = s.channels();
  const slow = now - lastSlow >= SLOW_VIEWS_MS;
  if (now - lastSample >= 500) {
    lastSample = now;
    for (const c of channels) rates.sample(c.relid, now, { packets: c.packetsIn + c.packetsOut, signals: c.signals, interrupts: c.interrupts ?? 0 });
  }
  rings.render(channels, rates);
  if (!slow) return;
  lastSlow = now;
  renderChannelTable(byId<HTMLTableSectionElement>('channels-body'), channels.map((c) => ({ ...c, state: c.guestState ? `${c.state} / guest ${c.guestState}` : c.state })));
  renderVps(byId<HTMLTableSectionElement>('vps-body'), s.vps());
  renderSequence(byId('sequence'), s.plane.steps);
  const hb = s.heartbeat;
  setText(byId('heartbeat'), hb ? `${hb.state}${hb.lastAnswerNs !== undefined ? `, last answer at ${formatTime(hb.lastAnswerNs).trim()} s` : ''}, ${hb.answered.length} answers` : 'no heartbeat device');
}

// Frames per second, over each second of wall time.
let frames = 0;
let fpsSince = performance.now();
const fpsView = byId('fps');

function frame(now: number): void {
  frames++;
  if (now - fpsSince >= 1000) {
    const fps = (frames * 1000) / (now - fpsSince);
    page.fps.push(fps);
    if (page.fps.length > 120) page.fps.shift();
    fpsView.dataset.fps = fps.toFixed(1);
    setText(fpsView, `${fps.toFixed(0)} fps`);
    frames = 0;
    fpsSince = now;
  }
  try {
    const t0 = performance.now();
    renderLive(now);
    page.renderMs += performance.now() - t0;
  } catch (e) {
    setText(status, `view error: ${e instanceof Error ? e.message : String(e)}`);
  }
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

// --- Trace replay ------------------------------------------------------------------------------------

const traceError = byId('trace-error');
const scrubber = byId<HTMLInputElement>('scrubber');
const replayRings = new RingPanel(byId('replay-rings'), { sparklines: false });
const fKind = byId<HTMLSelectElement>('f-kind');
fKind.append(...TRACE_KINDS.map((k) => option(k)));

function showTraceError(message: string | undefined): void {
  traceError.hidden = message === undefined;
  traceError.textContent = message ?? '';
}

byId<HTMLInputElement>('trace-file').addEventListener('change', (ev) => {
  const file = (ev.target as HTMLInputElement).files?.[0];
  if (!file) return;
  void openTrace(file);
});

async function openTrace(file: File): Promise<void> {
  setText(byId('trace-info'), `reading ${file.name}…`);
  try {
    // The size is refused before the bytes are read: a huge file is not pulled into memory.
    checkTraceSize(file.name, file.size);
    const events = loadTrace(file.name, new Uint8Array(await file.arrayBuffer()));
    page.replay = new Replay(file.name, events);
  } catch (e) {
    showTraceError(e instanceof TraceLoadError ? e.message : `${file.name}: cannot read: ${e instanceof Error ? e.message : String(e)}`);
    setText(byId('trace-info'), page.replay ? `still showing ${page.replay.name}` : '');
    return;
  }
  showTraceError(undefined);
  const r = page.replay;
  setText(byId('trace-info'), `${r.name}: ${r.events.length} events, ${formatTime(r.startNs).trim()} s to ${formatTime(r.endNs).trim()} s`);
  byId('timeline').hidden = false;
  scrubber.max = String(r.events.length);
  scrubber.value = String(r.events.length);
  renderReplay();
}

function replayFilter(): TraceFilter {
  const channels = byId<HTMLInputElement>('f-channel')
    .value.split(/[,\s]+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number);
  const kind = fKind.value as TraceKind | '';
  const dir = byId<HTMLSelectElement>('f-dir').value as TraceDirection | '';
  return { channels, kinds: kind ? [kind] : [], dirs: dir ? [dir] : [] };
}

function renderReplay(): void {
  const r = page.replay;
  if (!r) return;
  const count = Number(scrubber.value);
  const at = count > 0 ? r.events[count - 1]!.ns : r.startNs;
  setText(byId('scrub-time'), `event ${count} of ${r.events.length} · ${formatTime(at).trim()} s`);
  const filter = replayFilter();
  const plane = r.planeAt(count, filter);
  const rows = [...plane.channels.values()]
    .filter((c) => !filter.channels?.length || filter.channels.includes(c.relid))
    .sort((a, b) => a.relid - b.relid)
    .map((c) => ({ ...c, targetCpu: undefined, packetsIn: c.packetsToHost, packetsOut: c.packetsToGuest }));
  renderChannelTable(byId<HTMLTableSectionElement>('replay-channels-body'), rows);
  // The open channels' rings as the last packet each way left them (the trace records their indices).
  const rings = r.ringsAt(count);
  replayRings.render(rows.filter((c) => c.state === 'open').map((c) => ({ ...c, outbound: rings.get(c.relid)?.outbound, inbound: rings.get(c.relid)?.inbound })));
  renderSequence(byId('replay-sequence'), plane.steps);
  setText(byId('replay-events'), r.listAt(count, filter).map(formatEvent).join('\n'));
}

scrubber.addEventListener('input', renderReplay);
for (const id of ['f-channel', 'f-kind', 'f-dir']) byId(id).addEventListener('input', renderReplay);
