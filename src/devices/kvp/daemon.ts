// The user-space half of KVP: Linux 6.1 tools/hv/hv_kvp_daemon.c as a process of the model.
// main() gathers the OS facts (kvp_get_os_info, kvp_get_domain_name), opens the pools, opens
// /dev/vmbus/hv_kvp and registers with KVP_OP_REGISTER1; then each message the kernel queues is
// read whole (an hv_kvp_msg), answered in place with `error` over its header, and written
// back. A failed read or write closes and reopens the device (and registers again); most other
// failures end the process. The daemon runs whenever the device wakes it, in zero virtual time;
// it can be stopped (SIGTERM: it exits and its descriptor closes) or paused (SIGSTOP: messages
// wait unread until it resumes).
//
// The model's guest has no network interfaces besides the loopback, which the daemon skips: the
// AUTO pool's NetworkAddressIPv4/IPv6 values stay empty, GET_IP_INFO finds no adapter with the
// host's MAC (HV_E_FAIL) and SET_IP_INFO none with its GUID (HV_GUID_NOTFOUND).
import type { GuestFiles, GuestServices } from '../device.js';
import { HV_E_FAIL, HV_GUID_NOTFOUND, HV_S_CONT, HV_S_OK } from '../ic/wire.js';
import { errnoOf, errText } from '../ic/daemon.js';
import { cString, cStrcpy, fromUtf8, utf8 } from '../ic/nls.js';
import { Errno, type HvutilFd } from '../ic/transport.js';
import { DaemonExit, KvpPools, type SyslogPriority } from './pool.js';
import { HV_KVP_EXCHANGE_MAX_VALUE_SIZE, HvKvpIpaddrValue, HvKvpMsg, KvpAt, KvpOp, KvpPool, KVP_OP_REGISTER1 } from './wire.js';

/** The AUTO pool, by index (the daemon's enum key_index; include/uapi/linux/hyperv.h documents the same order). */
export const KVP_AUTO_KEYS = [
  'FullyQualifiedDomainName',
  'IntegrationServicesVersion',
  'NetworkAddressIPv4',
  'NetworkAddressIPv6',
  'OSBuildNumber',
  'OSName',
  'OSMajorVersion',
  'OSMinorVersion',
  'OSVersion',
  'ProcessorArchitecture',
] as const;

/** __NEW_UTS_LEN: utsname fields hold at most 64 bytes. */
const UTS_LEN = 64;
/** fgets(buf, 512) in kvp_get_os_info. */
const OS_RELEASE_LINE = 512;
const EMPTY = new Uint8Array(0);
/** What the loopback's /sys/class/net/lo/address reads, upper-cased as the daemon compares it. */
const LOOPBACK_MAC = '00:00:00:00:00:00';

export interface SyslogLine {
  readonly priority: SyslogPriority;
  readonly message: string;
}

export interface KvpDaemonEnv {
  readonly files: GuestFiles;
  readonly system: GuestServices['system'];
  /** open("/dev/vmbus/hv_kvp"): the file, or a negative errno (-ENOENT without the device). */
  open(wake: () => void): HvutilFd | number;
  /** Each syslog line as the daemon writes it (openlog("KVP", 0, LOG_USER)). */
  syslog?(line: SyslogLine): void;
}

export type DaemonStatus = 'stopped' | 'running' | 'exited';

export class KvpDaemon {
  status: DaemonStatus = 'stopped';
  /** SIGSTOP'd: it reads nothing until resumed. */
  paused = false;
  /** exit() status or the signal that ended it, once exited. */
  exit: { readonly status: number; readonly signal?: string } | undefined;
  /** Its syslog lines, in order. */
  readonly syslog: SyslogLine[] = [];
  /** Messages it has answered. */
  answered = 0;
  private fd: HvutilFd | undefined;
  private inHandShake = true;
  /** lic_version and the OS facts, as the C strings the daemon copies (bytes, not text: it never decodes them). */
  private licVersion: Uint8Array = utf8('Unknown version');
  private os: Record<'name' | 'major' | 'minor' | 'build' | 'version' | 'arch', Uint8Array> = { name: EMPTY, major: EMPTY, minor: EMPTY, build: EMPTY, version: EMPTY, arch: EMPTY };
  private fqdn: Uint8Array = EMPTY;
  private pools: KvpPools;
  /** struct hv_kvp_msg hv_msg[1]: one buffer, reused for every message. */
  private readonly msg = new Uint8Array(HvKvpMsg.size);
  private pumping = false;

  constructor(
    private readonly env: KvpDaemonEnv,
    /** getpid(). */
    readonly pid = 1234,
  ) {
    this.pools = new KvpPools({ files: env.files, syslog: (p, m) => this.log(p, m) });
  }

  private log(priority: SyslogPriority, message: string): void {
    const line = { priority, message };
    this.syslog.push(line);
    this.env.syslog?.(line);
  }

  /** The integration services version the kernel registered ("3.1"), or the daemon's default. */
  get licVersionText(): string {
    return fromUtf8(this.licVersion);
  }

  /** The pools as the daemon last read them (inspection). */
  get poolStore(): KvpPools {
    return this.pools;
  }

  /** Runs main() until it waits in poll(); false if it exited. */
  start(): boolean {
    if (this.status === 'running') return true;
    this.status = 'running';
    this.paused = false;
    this.exit = undefined;
    this.inHandShake = true;
    this.licVersion = utf8('Unknown version');
    this.pools = new KvpPools({ files: this.env.files, syslog: (p, m) => this.log(p, m) });
    // main() runs to its poll loop before the process looks at what the device has for it.
    this.pumping = true;
    try {
      this.run(() => {
        this.log('info', `KVP starting; pid is:${this.pid}`);
        this.getOsInfo();
        this.fqdn = this.domainName();
        // The directories every distribution has (the daemon itself creates only /var/lib/hyperv).
        this.ensureOsImage();
        if (this.pools.init()) {
          this.log('err', 'Failed to initialize the pools');
          throw new DaemonExit(1);
        }
        this.reopen();
      });
    } finally {
      this.pumping = false;
    }
    this.pump();
    return this.status === 'running';
  }

  /** SIGTERM: the process ends and the kernel closes its descriptor. */
  stop(): void {
    if (this.status !== 'running') return;
    this.terminate(new DaemonExit(143, 'SIGTERM'));
  }

  /** SIGSTOP. */
  pause(): void {
    this.paused = true;
  }

  /** SIGCONT: it reads what waited. */
  resume(): void {
    this.paused = false;
    this.pump();
  }

  /** The device woke the process (a message to read, or a hang-up). */
  wake(): void {
    this.pump();
  }

  private run(f: () => void): void {
    try {
      f();
    } catch (e) {
      if (!(e instanceof DaemonExit)) throw e;
      this.terminate(e);
    }
  }

  private terminate(e: DaemonExit): void {
    this.status = 'exited';
    this.exit = e.signal ? { status: e.status, signal: e.signal } : { status: e.status };
    const fd = this.fd;
    this.fd = undefined;
    fd?.close();
  }

  private ensureOsImage(): void {
    try {
      if (!this.env.files.exists('/var/lib')) this.env.files.mkdirs('/var/lib');
    } catch (e) {
      errnoOf(e);
    }
  }

  /** The reopen_kvp_fd label: close, open, register. */
  private reopen(): void {
    this.fd?.close();
    this.fd = undefined;
    this.inHandShake = true;
    const fd = this.env.open(() => this.wake());
    if (typeof fd === 'number') {
      this.log('err', `open /dev/vmbus/hv_kvp failed; error: ${errText(-fd)}`);
      throw new DaemonExit(1);
    }
    this.fd = fd;
    this.msg[KvpAt.operation] = KVP_OP_REGISTER1;
    const len = fd.write(this.msg);
    if (len !== this.msg.length) {
      this.log('err', `registration to kernel failed; error: ${errText(-len)}`);
      this.fd = undefined;
      fd.close();
      throw new DaemonExit(1);
    }
  }

  /** The poll loop: one message per pass while the device has one (or hung up). */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.status === 'running' && !this.paused && this.fd) {
        const ev = this.fd.poll();
        if (!ev.readable && !ev.hangup) break;
        this.run(() => this.iteration());
      }
    } finally {
      this.pumping = false;
    }
  }

  private iteration(): void {
    const fd = this.fd!;
    const got = fd.read(this.msg.length);
    if (typeof got === 'number' || got.length !== this.msg.length) {
      this.log('err', `read failed; error:${errText(typeof got === 'number' ? -got : Errno.EINVAL)}`);
      return this.reopen();
    }
    const m = this.msg;
    m.set(got);
    const dv = new DataView(m.buffer);
    const op = m[KvpAt.operation]!;
    const pool = m[KvpAt.pool]!;
    // The header becomes the answer's `error`.
    dv.setInt32(KvpAt.error, HV_S_OK, true);
    const setError = (e: number) => dv.setUint32(KvpAt.error, e >>> 0, true);
    if (this.inHandShake && op === KVP_OP_REGISTER1) {
      this.inHandShake = false;
      this.licVersion = cString(m, KvpAt.register);
      this.log('info', `KVP LIC Version: ${fromUtf8(this.licVersion)}`);
      return;
    }
    const u32 = (at: number) => dv.getUint32(at, true) | 0;
    switch (op) {
      case KvpOp.GET_IP_INFO:
        // kvp_mac_to_ip: only the loopback is in /sys/class/net, and it has no address to give.
        setError(this.macToIp(m));
        break;
      case KvpOp.SET_IP_INFO:
        // kvp_get_if_name: no interface has a VMBus device id.
        setError(HV_GUID_NOTFOUND);
        break;
      case KvpOp.SET:
        if (this.pools.keyAddOrModify(pool, m, KvpAt.set('key'), u32(KvpAt.set('key_size')), KvpAt.set('value'), u32(KvpAt.set('value_size')))) setError(HV_S_CONT);
        break;
      case KvpOp.GET:
        // The kernel leaves value_size 0 in a GET, so nothing is copied out (see guest.ts).
        if (this.pools.getValue(pool, m, KvpAt.set('key'), u32(KvpAt.set('key_size')), KvpAt.set('value'), u32(KvpAt.set('value_size')))) setError(HV_S_CONT);
        break;
      case KvpOp.DELETE:
        if (this.pools.keyDelete(pool, m, KvpAt.deleteKey, u32(KvpAt.deleteKeySize))) setError(HV_S_CONT);
        break;
      default:
        break;
    }
    if (op === KvpOp.ENUMERATE) {
      const index = dv.getUint32(KvpAt.enumIndex, true);
      if (pool !== KvpPool.AUTO) {
        if (this.pools.enumerate(pool, index, m, KvpAt.enum('key'), KvpAt.enum('value'))) setError(HV_S_CONT);
      } else {
        const answer = this.autoValue(index);
        if (answer === undefined) setError(HV_S_CONT);
        else {
          if (answer.value) cStrcpy(m, KvpAt.enum('value'), answer.value);
          cStrcpy(m, KvpAt.enum('key'), utf8(answer.key));
        }
      }
    }
    const len = fd.write(m);
    if (len !== m.length) {
      this.log('err', `write failed; error: ${errText(len < 0 ? -len : Errno.EINVAL)}`);
      return this.reopen();
    }
    this.answered++;
  }

  /**
   * The AUTO pool's entry `index`, or undefined past the last. NetworkAddressIPv4/IPv6 leave the
   * value area as the kernel sent it (zeros): kvp_get_ip_info finds only the loopback and skips it.
   */
  private autoValue(index: number): { key: string; value: Uint8Array | undefined } | undefined {
    const key = KVP_AUTO_KEYS[index];
    if (key === undefined) return undefined;
    const value: Record<(typeof KVP_AUTO_KEYS)[number], Uint8Array | undefined> = {
      FullyQualifiedDomainName: this.fqdn,
      IntegrationServicesVersion: this.licVersion,
      NetworkAddressIPv4: undefined,
      NetworkAddressIPv6: undefined,
      OSBuildNumber: this.os.build,
      OSName: this.os.name,
      OSMajorVersion: this.os.major,
      OSMinorVersion: this.os.minor,
      OSVersion: this.os.version,
      ProcessorArchitecture: this.os.arch,
    };
    return { key, value: value[key] };
  }

  /**
   * kvp_mac_to_ip for the model's interfaces: the loopback's address is 00:00:00:00:00:00; a
   * match finds no address on it (kvp_get_ip_info skips loopback interfaces), which the daemon
   * reports as success with empty strings. Anything else: HV_E_FAIL.
   */
  private macToIp(m: Uint8Array): number {
    const at = KvpAt.ipVal('adapter_id');
    const mac = fromUtf8(cString(m, at, at + HvKvpIpaddrValue.fields.adapter_id.size));
    if (mac !== LOOPBACK_MAC) return HV_E_FAIL;
    // kvp_get_ip_info clears addr_family before it looks at the interface's addresses.
    m[KvpAt.ipVal('addr_family')] = 0;
    return HV_S_OK;
  }

  /** A uname(2) field: at most 64 bytes. */
  private uts(s: string): Uint8Array {
    const b = utf8(s);
    return b.length > UTS_LEN ? b.slice(0, UTS_LEN) : b;
  }

  /**
   * kvp_get_os_info: OSName = utsname.sysname ("Linux") unless /etc/os-release (NAME,
   * VERSION_ID) or /etc/SuSE-release or /etc/redhat-release (three lines: name, major, minor)
   * say otherwise; OSBuildNumber = the release, OSVersion = the release up to its first '-'.
   * A guest file tree with none of these files stands for one whose /etc/os-release has NAME
   * and VERSION_ID = GuestServices.system's osName and osVersion.
   */
  private getOsInfo(): void {
    const sys = this.env.system;
    const release = this.uts(sys.kernelRelease);
    const dash = release.indexOf(0x2d); // '-'
    this.os = { name: utf8('Linux'), major: EMPTY, minor: EMPTY, build: release, version: dash >= 0 ? release.slice(0, dash) : release, arch: this.uts(sys.arch) };
    const read = (path: string): Uint8Array | undefined => {
      try {
        return this.env.files.read(path);
      } catch (e) {
        errnoOf(e);
        return undefined;
      }
    };
    const osRelease = read('/etc/os-release');
    if (osRelease) {
      for (const line of lines(osRelease)) {
        if (line[0] === 0x23) continue; // '#'
        const eq = line.indexOf(0x3d); // '='
        if (eq < 0) continue;
        const name = fromUtf8(line.subarray(0, eq));
        const value = unquote(line.subarray(eq + 1));
        if (name === 'NAME') this.os.name = value;
        else if (name === 'VERSION_ID') this.os.major = value;
      }
      return;
    }
    const legacy = read('/etc/SuSE-release') ?? read('/etc/redhat-release');
    if (legacy) {
      const [name, major, minor] = lines(legacy).map((l) => (l.indexOf(0x0a) < 0 ? l : l.subarray(0, l.indexOf(0x0a))));
      if (name !== undefined) this.os.name = name;
      if (major !== undefined) this.os.major = major;
      if (minor !== undefined) this.os.minor = minor;
      return;
    }
    this.os.name = utf8(sys.osName).slice(0, OS_RELEASE_LINE - 1);
    this.os.major = utf8(sys.osVersion).slice(0, OS_RELEASE_LINE - 1);
  }

  /**
   * kvp_get_domain_name: gethostname, then getaddrinfo(AI_CANONNAME). The model's resolver
   * finds the host name itself (as /etc/hosts maps it), so the canonical name is the host name.
   */
  private domainName(): Uint8Array {
    return this.uts(this.env.system.hostname).slice(0, HV_KVP_EXCHANGE_MAX_VALUE_SIZE - 1);
  }
}

/** fgets(buf, 512, file) lines: each up to and including '\n', at most 511 bytes, NUL-cut. */
function lines(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let p = 0;
  while (p < b.length) {
    let end = p;
    while (end < b.length && end - p < OS_RELEASE_LINE - 1 && b[end] !== 0x0a) end++;
    if (end < b.length && b[end] === 0x0a && end - p < OS_RELEASE_LINE - 1) end++;
    const line = b.subarray(p, end);
    const nul = line.indexOf(0);
    out.push(nul >= 0 ? line.subarray(0, nul) : line);
    p = end;
  }
  return out;
}

/** The daemon's value clean-up: backslash escapes the next byte; quotes and newlines are dropped. */
function unquote(v: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === 0x5c) {
      i++;
      if (i >= v.length) break;
      out.push(v[i]!);
    } else if (c === 0x27 || c === 0x22 || c === 0x0a) {
      continue;
    } else out.push(c);
  }
  return Uint8Array.from(out);
}
