// What the live views read from a running VM, the same whether the guest runs in the page's
// thread or in a Web Worker: its log, the hypervisor's state, the channels as host and guest see
// them, the control plane from the event stream, and the controls.
import type { LogRecord } from '../../../src/guest/klog.js';
import type { PartitionState } from '../../../src/hypervisor/partition.js';
import type { HeartbeatHost } from '../../../src/devices/heartbeat/host.js';
import type { KvpHost } from '../../../src/devices/kvp/host.js';
import type { RingSnapshot } from '../../../src/vmbus/client/snapshot.js';
import type { ControlPlane } from '../model/control-plane.js';
import type { ScreenDevices } from '../views/screen.js';

export type SessionState = 'booting' | 'running' | 'paused' | 'off' | 'failed';

/** One channel as the table and the ring panel show it. */
export interface LiveChannel {
  relid: number;
  className: string;
  instance: string;
  subChannel: number;
  /** The host's state of the channel, and the guest's (in worker mode, once the worker posted it). */
  state: string;
  guestState: string | undefined;
  targetVp: number;
  targetCpu: number | undefined;
  /** Counters: packets and signals each way (host side), interrupts the guest took. */
  packetsIn: number;
  packetsOut: number;
  signals: number;
  interrupts: number | undefined;
  /** guest→host and host→guest rings, as their control pages hold them (read by the guest in-thread, by the host in worker mode). */
  outbound: RingSnapshot | undefined;
  inbound: RingSnapshot | undefined;
}

export interface StreamStatus {
  running: boolean;
  framesOut: number;
  framesIn: number;
  errors: number;
}

export type EchoResult = { ok: true; back: string } | { ok: false; error: string };

export interface LiveSession {
  readonly mode: 'in-thread' | 'worker';
  readonly plane: ControlPlane;
  readonly log: LogRecord[];
  state: SessionState;
  /** What stopped it: a power-off, a restart, an error. */
  reason: string;
  speed: number;
  nowNs(): number;
  vps(): PartitionState['vps'];
  channels(): LiveChannel[];
  pause(): void;
  resume(): void;
  setSpeed(speed: number): void;
  /** Asks the guest to shut down or restart through the shutdown IC. */
  shutdown(kind: 'shutdown' | 'restart'): boolean;
  readonly kvp: KvpHost | undefined;
  readonly heartbeat: HeartbeatHost | undefined;
  /** The video, keyboard and mouse hosts: on the page's side in both modes. */
  readonly screen: ScreenDevices;
  /** Sends `text` through a guest echo listener on hv_sock `port` (the guest in the page or in its worker). */
  hvsockEcho(port: number, text: string): Promise<EchoResult>;
  /** The stream workload, where the session has one. */
  stream: { start(): void; stop(): void; status(): StreamStatus } | undefined;
  dispose(): void;
  /** Called whenever something changed (the page redraws at its next frame). */
  onChange: () => void;
}
