// The KVP daemon's pools (Linux 6.1 tools/hv/hv_kvp_daemon.c: kvp_file_init,
// kvp_update_mem_state, kvp_update_file, kvp_key_add_or_modify, kvp_key_delete, kvp_get_value,
// kvp_pool_enumerate). Each pool is a file /var/lib/hyperv/.kvp_pool_N holding nothing but
// kvp_record structs (512 bytes of key, 2048 of value, UTF-8 C strings as the daemon got them
// from the kernel); the daemon rereads the file before every operation and rewrites it whole
// after a change. There is no limit on the number of records: the array grows by blocks of 50.
//
// The records are modelled as the daemon's one heap block, byte for byte, because its C shows
// through in the files: a new record is written over whatever the slot held (bytes past the
// copied key and value keep old data), a delete moves the following records up with strcpy (so
// only up to each NUL), and a partial record at the end of a file is read into memory but not
// counted. Where C would read or write past its block (a record without any NUL), the model
// stops at the block's end.
import { bytes, struct } from '../../tlfs/struct.js';
import { GuestFileError, type GuestFiles } from '../device.js';
import { errnoOf, errText } from '../ic/daemon.js';
import { Errno } from '../ic/transport.js';
import { HV_KVP_EXCHANGE_MAX_KEY_SIZE, HV_KVP_EXCHANGE_MAX_VALUE_SIZE, KvpPool } from './wire.js';

export const KVP_CONFIG_LOC = '/var/lib/hyperv';
/** Records per allocation block. */
export const ENTRIES_PER_BLOCK = 50;

/** struct kvp_record: one entry of a pool file (a daemon format, not a kernel one). */
export const KvpRecord = struct('kvp_record', { key: bytes(HV_KVP_EXCHANGE_MAX_KEY_SIZE), value: bytes(HV_KVP_EXCHANGE_MAX_VALUE_SIZE) });
const RECORD = KvpRecord.size;
const KEY = KvpRecord.offsets.key;
const VALUE = KvpRecord.offsets.value;

/** The file of pool `n`: "%s/.kvp_pool_%d". */
export const poolFileName = (pool: number): string => `${KVP_CONFIG_LOC}/.kvp_pool_${pool}`;

export type SyslogPriority = 'info' | 'err';

/** The daemon process ends: exit(status), or killed by a signal. Thrown through its call stack. */
export class DaemonExit extends Error {
  override readonly name = 'DaemonExit';
  constructor(
    readonly status: number,
    readonly signal?: string,
  ) {
    super(signal ? `killed by ${signal}` : `exit(${status})`);
  }
}

/** What the pools need of the daemon: the file tree and syslog. */
export interface PoolEnv {
  readonly files: GuestFiles;
  syslog(priority: SyslogPriority, message: string): void;
}

/** struct kvp_file_state: the open file, and the records as the daemon last read them. */
interface PoolState {
  readonly fname: string;
  numBlocks: number;
  numRecords: number;
  /** The records' heap block (num_blocks * ENTRIES_PER_BLOCK records). */
  mem: Uint8Array;
}

export class KvpPools {
  private readonly pools: PoolState[] = [];

  constructor(private readonly env: PoolEnv) {}

  /** kvp_file_init: the directory, each pool file opened (created empty if missing) and read. 1 on failure. */
  init(): number {
    const files = this.env.files;
    if (!this.exists(KVP_CONFIG_LOC)) {
      try {
        // mkdir(2), not mkdir -p: the parent must be there.
        const parent = KVP_CONFIG_LOC.slice(0, KVP_CONFIG_LOC.lastIndexOf('/'));
        if (!files.isDirectory(parent)) throw new GuestFileError(files.exists(parent) ? 'ENOTDIR' : 'ENOENT', KVP_CONFIG_LOC, 'no parent directory');
        files.mkdirs(KVP_CONFIG_LOC);
      } catch (e) {
        this.env.syslog('err', `Failed to create '${KVP_CONFIG_LOC}'; error: ${errText(errnoOf(e))}`);
        throw new DaemonExit(1);
      }
    }
    this.pools.length = 0;
    for (let i = 0; i < KvpPool.COUNT; i++) {
      const fname = poolFileName(i);
      // open(fname, O_RDWR | O_CREAT): a directory there, or no way to create it, fails the init.
      try {
        if (files.isDirectory(fname)) return 1;
        if (!files.exists(fname)) files.write(fname, new Uint8Array(0));
      } catch (e) {
        errnoOf(e);
        return 1;
      }
      this.pools.push({ fname, numBlocks: 1, numRecords: 0, mem: new Uint8Array(ENTRIES_PER_BLOCK * RECORD) });
      this.updateMemState(i);
    }
    return 0;
  }

  private exists(path: string): boolean {
    try {
      return this.env.files.exists(path);
    } catch (e) {
      errnoOf(e);
      return false;
    }
  }

  /**
   * kvp_acquire_lock: fcntl(F_SETLKW) on the pool's descriptor. The daemon indexes its five
   * pools with the host's pool byte unchecked; for 5..255 it reads a kvp_file_state past its
   * array. UNVERIFIED what that memory holds: the model takes the descriptor to be invalid, so
   * the lock fails and the daemon exits, as it does for any lock failure.
   */
  private pool(pool: number): PoolState {
    const p = this.pools[pool];
    if (!p) {
      this.env.syslog('err', `Failed to acquire the lock pool: ${pool}; error: ${errText(Errno.EBADF)}`);
      throw new DaemonExit(1);
    }
    return p;
  }

  /** realloc: the block grows to `blocks` blocks; the old bytes stay, the new ones are zero (malloc'd memory, chosen). */
  private grow(p: PoolState, blocks: number): void {
    const mem = new Uint8Array(blocks * ENTRIES_PER_BLOCK * RECORD);
    mem.set(p.mem.subarray(0, Math.min(p.mem.length, mem.length)));
    p.mem = mem;
  }

  /** kvp_update_mem_state: reread the file, growing the block while there is more (fread semantics). */
  updateMemState(pool: number): void {
    const p = this.pool(pool);
    let data: Uint8Array | undefined;
    try {
      data = this.env.files.read(p.fname);
      if (!data) throw new GuestFileError('ENOENT', p.fname, 'no such file');
    } catch (e) {
      this.env.syslog('err', `Failed to open file, pool: ${pool}; error: ${errText(errnoOf(e))}`);
      throw new DaemonExit(1);
    }
    let read = 0;
    let pos = 0;
    let blocks = p.numBlocks;
    for (;;) {
      const want = ENTRIES_PER_BLOCK * blocks - read;
      const n = Math.min(want, Math.floor((data.length - pos) / RECORD));
      p.mem.set(data.subarray(pos, pos + n * RECORD), read * RECORD);
      pos += n * RECORD;
      read += n;
      if (n < want) {
        // Short read: end of file. A trailing partial record still lands in memory.
        p.mem.set(data.subarray(pos), read * RECORD);
        break;
      }
      // fread stopped exactly at the count asked for: it has not seen the end yet.
      blocks++;
      this.grow(p, blocks);
    }
    p.numBlocks = blocks;
    p.numRecords = read;
  }

  /** kvp_update_file: the first num_records records written over the file. */
  private updateFile(pool: number): void {
    const p = this.pool(pool);
    try {
      this.env.files.write(p.fname, p.mem.slice(0, p.numRecords * RECORD));
    } catch (e) {
      this.env.syslog('err', `Failed to open file, pool: ${pool}; error: ${errText(errnoOf(e))}`);
      throw new DaemonExit(1);
    }
  }

  private keyMatches(p: PoolState, i: number, msg: Uint8Array, keyAt: number, keySize: number): boolean {
    const n = Math.max(0, Math.min(keySize, HV_KVP_EXCHANGE_MAX_KEY_SIZE));
    for (let b = 0; b < n; b++) if (msg[keyAt + b] !== p.mem[i * RECORD + KEY + b]) return false;
    return true;
  }

  /** kvp_key_add_or_modify: 0, or 1 (the daemon answers HV_S_CONT). */
  keyAddOrModify(pool: number, msg: Uint8Array, keyAt: number, keySize: number, valueAt: number, valueSize: number): number {
    if (keySize > HV_KVP_EXCHANGE_MAX_KEY_SIZE || valueSize > HV_KVP_EXCHANGE_MAX_VALUE_SIZE) return 1;
    this.updateMemState(pool);
    const p = this.pool(pool);
    const copy = (i: number, off: number, from: number, n: number) => p.mem.set(msg.subarray(from, from + Math.max(0, n)), i * RECORD + off);
    for (let i = 0; i < p.numRecords; i++) {
      if (!this.keyMatches(p, i, msg, keyAt, keySize)) continue;
      copy(i, VALUE, valueAt, valueSize);
      this.updateFile(pool);
      return 0;
    }
    const i = p.numRecords;
    if (i === ENTRIES_PER_BLOCK * p.numBlocks) {
      this.grow(p, p.numBlocks + 1);
      p.numBlocks++;
    }
    copy(i, VALUE, valueAt, valueSize);
    copy(i, KEY, keyAt, keySize);
    p.numRecords++;
    this.updateFile(pool);
    return 0;
  }

  /** kvp_get_value: copies `valueSize` bytes of the record's value into the message. */
  getValue(pool: number, msg: Uint8Array, keyAt: number, keySize: number, valueAt: number, valueSize: number): number {
    if (keySize > HV_KVP_EXCHANGE_MAX_KEY_SIZE || valueSize > HV_KVP_EXCHANGE_MAX_VALUE_SIZE) return 1;
    this.updateMemState(pool);
    const p = this.pool(pool);
    for (let i = 0; i < p.numRecords; i++) {
      if (!this.keyMatches(p, i, msg, keyAt, keySize)) continue;
      const from = i * RECORD + VALUE;
      msg.set(p.mem.subarray(from, from + Math.max(0, valueSize)), valueAt);
      return 0;
    }
    return 1;
  }

  /** kvp_key_delete: the last record just drops off; others are moved up with strcpy. */
  keyDelete(pool: number, msg: Uint8Array, keyAt: number, keySize: number): number {
    this.updateMemState(pool);
    const p = this.pool(pool);
    const n = p.numRecords;
    for (let i = 0; i < n; i++) {
      if (!this.keyMatches(p, i, msg, keyAt, keySize)) continue;
      if (i !== n - 1) {
        for (let j = i, k = i + 1; k < n; j++, k++) {
          this.strcpyInBlock(p, j * RECORD + KEY, k * RECORD + KEY);
          this.strcpyInBlock(p, j * RECORD + VALUE, k * RECORD + VALUE);
        }
      }
      p.numRecords--;
      this.updateFile(pool);
      return 0;
    }
    return 1;
  }

  /** strcpy inside the block, byte by byte from the front (the destination is always below the source). */
  private strcpyInBlock(p: PoolState, to: number, from: number): void {
    const mem = p.mem;
    for (let b = 0; from + b < mem.length && to + b < mem.length; b++) {
      mem[to + b] = mem[from + b]!;
      if (mem[from + b] === 0) return;
    }
  }

  /**
   * kvp_pool_enumerate: record `index` copied into the message. `index` is a C int: the host's
   * u32 at 2^31 and above is negative, passes the bound check, and reads records far before
   * the block; the model lets the daemon die of SIGSEGV there (UNVERIFIED for the few values
   * just below 2^32, which would read the heap in front of the block instead).
   */
  enumerate(pool: number, index: number, msg: Uint8Array, keyAt: number, valueAt: number): number {
    this.updateMemState(pool);
    const p = this.pool(pool);
    const i = index | 0;
    if (i >= p.numRecords) return 1;
    if (i < 0) throw new DaemonExit(139, 'SIGSEGV');
    msg.set(p.mem.subarray(i * RECORD + KEY, i * RECORD + KEY + HV_KVP_EXCHANGE_MAX_KEY_SIZE), keyAt);
    msg.set(p.mem.subarray(i * RECORD + VALUE, i * RECORD + VALUE + HV_KVP_EXCHANGE_MAX_VALUE_SIZE), valueAt);
    return 0;
  }

  /** The records the daemon holds for a pool (after its last read), for inspection. */
  records(pool: number): Uint8Array[] {
    const p = this.pools[pool];
    if (!p) return [];
    return Array.from({ length: p.numRecords }, (_, i) => p.mem.slice(i * RECORD, (i + 1) * RECORD));
  }
}
