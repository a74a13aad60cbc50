// KVP through Linux 6.1's own hv_kvp.c and hv_utils_transport.c: hvkit's model of
// hv_kvp_daemon opens Linux's /dev/vmbus/hv_kvp (the shim's misc device, linux/shim/chardev.c),
// registers with KVP_OP_REGISTER1, and answers what Linux's driver forwards from the host, from
// its pool files as the real daemon keeps them (/var/lib/hyperv/.kvp_pool_N: struct kvp_record,
// a 512-byte key then a 2048-byte value, tools/hv/hv_kvp_daemon.c).
import { beforeAll, describe, expect, it } from 'vitest';
import { LinuxMachine } from '../../src/vm/linux-machine.js';
import type { WasmModule } from '../../src/guest/linux/wasm.js';
import type { KvpHost } from '../../src/devices/kvp/host.js';
import { MemoryFiles } from '../../src/guest/memfs.js';
import { HV_KVP_EXCHANGE_MAX_KEY_SIZE, HV_KVP_EXCHANGE_MAX_VALUE_SIZE } from '../../src/devices/kvp/wire.js';
import { BUILD_TIMEOUT_MS, linuxMissing, linuxModule, linuxSuite } from './linux-module.js';

const latin = (b: Uint8Array): string => String.fromCharCode(...b);
/** A C string at `at` of `b`, up to its NUL. */
const cstr = (b: Uint8Array, at: number, max: number): string => {
  const s = b.subarray(at, at + max);
  const nul = s.indexOf(0);
  return latin(nul < 0 ? s : s.subarray(0, nul));
};
const journal = (m: LinuxMachine): string[] => m.guest.journal.records.map((r) => r.text);

describe.skipIf(linuxMissing !== undefined)(linuxSuite('KVP through Linux’s own hv_kvp and its daemon'), () => {
  let mod: WasmModule;
  beforeAll(async () => {
    mod = await linuxModule();
  }, BUILD_TIMEOUT_MS);

  const booted = (files = new MemoryFiles()) => {
    const m = new LinuxMachine(mod, { release: 'ws2022', files });
    expect(m.boot()).toBe(0);
    m.runFor(1e9);
    return { m, kvp: m.host.device<KvpHost>('kvp')!, files };
  };

  it('the daemon registers over Linux’s /dev/vmbus/hv_kvp; Linux then negotiates the IC and gives its version', () => {
    const { m, kvp } = booted();
    expect(m.guest.chardevs.registered.has('vmbus/hv_kvp')).toBe(true);
    expect(m.kvpDaemon.status).toBe('running');
    // hv_kvp.c's kvp_register sends HV_DRV_VERSION back: the daemon's LIC version line.
    expect(journal(m)).toEqual(['KVP: KVP starting; pid is:1234', 'KVP: KVP LIC Version: 3.1']);
    expect(m.guest.log.records.map((r) => r.text)).toContain('hv_utils: KVP IC version 4.0');
    expect(kvp.phase).toBe('ready');
    expect(m.vmbus!.server.state().violations).toBe(0);
  });

  it('a host SET lands in the daemon’s pool file; ENUMERATE reads it back; GET answers an empty value, as Linux 6.1 does', async () => {
    const { m, kvp, files } = booted();
    const set = kvp.set(0, 'hello', 'world');
    m.runFor(1e9);
    expect(await set.done).toEqual({ outcome: 'ok' });
    // The EXTERNAL pool's file: one kvp_record.
    const pool = files.read('/var/lib/hyperv/.kvp_pool_0')!;
    expect(pool.length).toBe(HV_KVP_EXCHANGE_MAX_KEY_SIZE + HV_KVP_EXCHANGE_MAX_VALUE_SIZE);
    expect(cstr(pool, 0, HV_KVP_EXCHANGE_MAX_KEY_SIZE)).toBe('hello');
    expect(cstr(pool, HV_KVP_EXCHANGE_MAX_KEY_SIZE, HV_KVP_EXCHANGE_MAX_VALUE_SIZE)).toBe('world');
    const all = kvp.enumerate(0);
    m.runFor(1e9);
    expect(await all.done).toEqual({ outcome: 'ok', entries: [{ key: 'hello', value: 'world', type: 1 }] });
    // kvp_send_key copies only the key of a GET (value_size stays 0), and the daemon's
    // kvp_get_value copies that many bytes of the value: the host reads an empty string.
    const get = kvp.get(0, 'hello');
    m.runFor(1e9);
    expect(await get.done).toEqual({ outcome: 'ok', value: '', type: 1 });
    const missing = kvp.get(0, 'nobody');
    m.runFor(1e9);
    expect(await missing.done).toEqual({ outcome: 'not-found' });
    expect(m.vmbus!.server.state().violations).toBe(0);
  });

  it('DELETE removes the record from the pool file; a second DELETE is not found', async () => {
    const { m, kvp, files } = booted();
    const set = kvp.set(0, 'k', 'v');
    m.runFor(1e9);
    await set.done;
    const del = kvp.delete(0, 'k');
    m.runFor(1e9);
    expect(await del.done).toEqual({ outcome: 'ok' });
    expect(files.read('/var/lib/hyperv/.kvp_pool_0')!.length).toBe(0);
    const again = kvp.delete(0, 'k');
    m.runFor(1e9);
    expect(await again.done).toEqual({ outcome: 'not-found' });
  });

  it('the AUTO pool: the guest’s intrinsic items, IntegrationServicesVersion being Linux’s HV_DRV_VERSION', async () => {
    const { m, kvp } = booted();
    const auto = kvp.enumerate(2);
    m.runFor(1e9);
    const r = await auto.done;
    expect(r.outcome).toBe('ok');
    expect(Object.fromEntries(r.entries.map((e) => [e.key, e.value]))).toMatchObject({ IntegrationServicesVersion: '3.1', OSName: 'hvkit', ProcessorArchitecture: 'i686', FullyQualifiedDomainName: 'hvkit' });
  });

  it('a daemon that stops: Linux resets (kvp_on_reset) and holds the host’s next request in the ring until a daemon registers again', async () => {
    const { m, kvp } = booted();
    m.kvpDaemon.stop();
    const set = kvp.set(1, 'later', 'yes');
    let settled = false;
    void set.done.then(() => (settled = true));
    m.runFor(5e9);
    await Promise.resolve();
    expect(settled).toBe(false);
    m.kvpDaemon.start();
    m.runFor(1e9);
    expect(await set.done).toEqual({ outcome: 'ok' });
    expect(m.vmbus!.server.state().violations).toBe(0);
  });

  it('rmmod hv_utils: the daemon sees the device go (read fails, reopening fails) and exits; Linux’s wait for its close completes', () => {
    const { m } = booted();
    m.guest.unload();
    m.runFor(1e6);
    expect(m.kvpDaemon.status).toBe('exited');
    expect(journal(m).slice(-2)).toEqual(['KVP: read failed; error:9 Bad file descriptor', 'KVP: open /dev/vmbus/hv_kvp failed; error: 9 Bad file descriptor']);
    expect(m.guest.chardevs.registered.has('vmbus/hv_kvp')).toBe(false);
    expect(m.guest.log.records.map((r) => r.text)).toContain('hv_utils: De-Registered HyperV Utility Driver');
  });
});
