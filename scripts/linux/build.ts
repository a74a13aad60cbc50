// Builds Linux 6.1's VMBus guest code (drivers/hv) as one WebAssembly module, against hvkit's own
// fake architecture (linux/include) and kernel shim (linux/shim). The kernel sources come from
// Debian's linux-source-6.1 at build time into .cache/linux-6.1 (git-ignored): they are GPL-2.0,
// and neither they nor anything built from them is committed or packed (hvkit is MIT).
//
// `npm run build:linux` runs it; the tests that need the module call buildLinux(), which does
// nothing when the cached module is up to date.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LINUX_RAM_BYTES } from '../../src/guest/linux/guest.js';

const run = promisify(execFile);

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Debian's linux-source-6.1 package puts the tree here. */
export const LINUX_TARBALL = '/usr/src/linux-source-6.1.tar.xz';
const TOP = 'linux-source-6.1';
export const CACHE = join(ROOT, '.cache', 'linux-6.1');
export const WASM = join(CACHE, 'hvlinux.wasm');
const SRC = join(CACHE, 'src');
const GEN = join(CACHE, 'gen');
const OBJ = join(CACHE, 'obj');
const SHIM = join(ROOT, 'linux');

/** The kernel files compiled, unchanged, from the source package, with the module each belongs to (drivers/hv/Makefile). */
export const KERNEL_FILES = [
  ...['ring_buffer', 'connection', 'channel_mgmt', 'channel', 'hv', 'hv_common', 'vmbus_drv'].map((f) => ({ file: `drivers/hv/${f}.c`, module: 'hv_vmbus' })),
  ...['hv_util', 'hv_kvp', 'hv_snapshot', 'hv_fcopy', 'hv_utils_transport'].map((f) => ({ file: `drivers/hv/${f}.c`, module: 'hv_utils' })),
] as const;

/** What is taken out of the tarball: the files above, the headers, and x86's TLFS definitions. */
const EXTRACT = ['drivers/hv', 'include', 'arch/x86/include/asm/hyperv-tlfs.h'];

/** The wasm memory's size in bytes: the guest's RAM (GPA = wasm address). */
const LINUX_MEMORY_BYTES = LINUX_RAM_BYTES;

/** Why the build cannot run here, or undefined when it can. */
export function linuxToolsMissing(): string | undefined {
  const has = (cmd: string): boolean => {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  const missing = [...(has('clang') ? [] : ['clang (apt: clang)']), ...(has('wasm-ld') ? [] : ['wasm-ld (apt: lld)']), ...(existsSync(LINUX_TARBALL) ? [] : [`${LINUX_TARBALL} (apt: linux-source-6.1)`])];
  return missing.length ? `the Linux build needs ${missing.join(', ')}` : undefined;
}

const CFLAGS = [
  '--target=wasm32',
  '-nostdinc',
  '-std=gnu11',
  '-O2',
  '-g0',
  '-matomics',
  '-mbulk-memory',
  '-mmutable-globals',
  // Every memcpy stays a call to the shim's, which splits copies that cross a ring's end.
  '-fno-builtin',
  '-ffreestanding',
  '-fno-strict-aliasing',
  '-fno-common',
  '-fshort-wchar',
  '-funsigned-char',
  '-D__KERNEL__',
  '-D__linux__',
  `-DHVKIT_RAM_BYTES=${LINUX_MEMORY_BYTES}`,
  '-Wno-unused-command-line-argument',
  '-Wno-gnu-variable-sized-type-not-at-end',
  '-Wno-address-of-packed-member',
  '-Wno-pointer-sign',
  '-Wno-unknown-warning-option',
  '-Wno-format',
  '-Wno-unused-value',
  '-Wno-initializer-overrides',
];

function includeFlags(): string[] {
  const k = join(SRC, TOP);
  return [
    // __FILE__ as Kbuild gives it (drivers/hv/channel_mgmt.c), in WARN and BUG reports.
    `-fmacro-prefix-map=${k}/=`,
    `-fmacro-prefix-map=${ROOT}/=`,
    `-I${join(SHIM, 'include')}`,
    `-I${join(GEN, 'include')}`,
    `-I${join(k, 'include')}`,
    `-I${join(k, 'include', 'uapi')}`,
    `-I${join(GEN, 'include', 'uapi')}`,
    '-include',
    join(k, 'include', 'linux', 'kconfig.h'),
    '-include',
    join(k, 'include', 'linux', 'compiler_types.h'),
  ];
}

/** What Kbuild defines for a file of module `name`. */
function moduleFlags(name: string): string[] {
  return [`-DKBUILD_MODNAME="${name}"`, `-D__KBUILD_MODNAME=kmod_${name}`, `-DKBUILD_MODFILE="drivers/hv/${name}"`];
}

function listFiles(dir: string, ext: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((f) => join(dir, f));
}

/** A hash of everything the build depends on but the tarball: the shim, this script, the flags. */
function inputsHash(): string {
  const h = createHash('sha256');
  for (const f of [...listFiles(SHIM, '.h'), ...listFiles(SHIM, '.c'), fileURLToPath(import.meta.url)]) {
    h.update(relative(ROOT, f)).update('\0').update(readFileSync(f)).update('\0');
  }
  h.update(JSON.stringify({ CFLAGS, KERNEL_FILES, LINUX_MEMORY_BYTES, tarball: statSync(LINUX_TARBALL).mtimeMs }));
  return h.digest('hex');
}

function extract(log: (s: string) => void): void {
  const stamp = join(SRC, '.extracted');
  if (existsSync(stamp)) return;
  log(`extracting ${EXTRACT.join(', ')} from ${LINUX_TARBALL}`);
  rmSync(SRC, { recursive: true, force: true });
  mkdirSync(SRC, { recursive: true });
  execFileSync('tar', ['-xJf', LINUX_TARBALL, '-C', SRC, ...EXTRACT.map((p) => `${TOP}/${p}`)], { stdio: 'inherit' });
  writeFileSync(stamp, '');
}

/**
 * Generic asm headers, as Kbuild's generic-y makes them for a new port: every asm/ header the
 * fake architecture does not write itself includes asm-generic's.
 */
function generateAsmWrappers(): void {
  const k = join(SRC, TOP);
  const own = new Set(readdirSync(join(SHIM, 'include', 'asm')));
  for (const [from, to] of [
    [join(k, 'include', 'asm-generic'), join(GEN, 'include', 'asm')],
    [join(k, 'include', 'uapi', 'asm-generic'), join(GEN, 'include', 'uapi', 'asm')],
  ] as const) {
    mkdirSync(to, { recursive: true });
    for (const name of readdirSync(from)) {
      if (!name.endsWith('.h') || own.has(name)) continue;
      writeFileSync(join(to, name), `/* generated by hvkit scripts/linux/build.ts */\n#include <asm-generic/${name}>\n`);
    }
  }
  // x86's TLFS definitions (MSR numbers, the SynIC layouts) are what an x86 guest uses.
  writeFileSync(join(GEN, 'include', 'asm', 'hyperv-tlfs.h'), readFileSync(join(k, 'arch', 'x86', 'include', 'asm', 'hyperv-tlfs.h')));
}

async function compile(src: string, out: string, extra: string[] = []): Promise<void> {
  await run('clang', [...CFLAGS, ...includeFlags(), ...extra, '-c', src, '-o', out], { maxBuffer: 64 << 20 });
}

/** Runs tasks at most `n` at a time. */
async function pool<T>(items: readonly T[], n: number, f: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await f(items[next++]!);
    }),
  );
}

const LOCK = join(CACHE, '.lock');
/** A lock older than this was left by a build that died. */
const STALE_LOCK_MS = 15 * 60_000;

/** Runs `f` holding the cache's lock (a directory: mkdir is atomic), so that test files building at once take turns. */
async function withLock<T>(f: () => Promise<T>): Promise<T> {
  mkdirSync(CACHE, { recursive: true });
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > STALE_LOCK_MS) rmSync(LOCK, { recursive: true, force: true });
      } catch {
        // gone meanwhile
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await f();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

/** Builds the module if it is missing or stale; returns its path. */
export async function buildLinux(opts: { log?: (s: string) => void; jobs?: number } = {}): Promise<string> {
  const missing = linuxToolsMissing();
  if (missing) throw new Error(missing);
  return withLock(() => buildLocked(opts));
}

async function buildLocked(opts: { log?: (s: string) => void; jobs?: number }): Promise<string> {
  const log = opts.log ?? (() => {});
  const hash = inputsHash();
  const stampFile = join(CACHE, 'hvlinux.hash');
  if (existsSync(WASM) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === hash) return WASM;
  mkdirSync(CACHE, { recursive: true });
  extract(log);
  rmSync(GEN, { recursive: true, force: true });
  rmSync(OBJ, { recursive: true, force: true });
  mkdirSync(OBJ, { recursive: true });
  generateAsmWrappers();
  const k = join(SRC, TOP);
  const kernelUnit = ({ file: f, module }: { file: string; module: string }) => {
    const base = f.replace(/.*\//, '').replace(/\.c$/, '');
    // A unit in linux/shim/units includes the kernel file unchanged and adds an entry point.
    const wrapper = join(SHIM, 'shim', 'units', `${base}.c`);
    return {
      src: existsSync(wrapper) ? wrapper : join(k, f),
      out: join(OBJ, `${base}.o`),
      extra: [...moduleFlags(module), `-DKBUILD_BASENAME="${base}"`, `-I${join(k, 'drivers', 'hv')}`, `-I${k}`],
    };
  };
  const units = [
    ...KERNEL_FILES.map(kernelUnit),
    ...listFiles(join(SHIM, 'shim'), '.c')
      .filter((f) => !f.includes(`${join('shim', 'units')}`))
      .map((f) => ({ src: f, out: join(OBJ, `shim_${relative(join(SHIM, 'shim'), f).replace(/\//g, '_').replace(/\.c$/, '.o')}`), extra: [...moduleFlags('hvkit_shim'), `-I${join(k, 'drivers', 'hv')}`] })),
  ];
  log(`compiling ${units.length} files with clang --target=wasm32`);
  await pool(units, opts.jobs ?? 2, async (u) => {
    try {
      await compile(u.src, u.out, u.extra);
    } catch (e) {
      const err = e as { stderr?: string };
      throw new Error(`compiling ${relative(ROOT, u.src)} failed:\n${err.stderr ?? String(e)}`, { cause: e });
    }
  });
  const tmp = `${WASM}.tmp`;
  log('linking with wasm-ld');
  try {
    await run(
      'clang',
      [
        '--target=wasm32',
        '-nostdlib',
        '-matomics',
        '-mbulk-memory',
        '-mmutable-globals',
        `-Wl,--no-entry,--export-all,--shared-memory,--import-memory,--initial-memory=${LINUX_MEMORY_BYTES},--max-memory=${LINUX_MEMORY_BYTES}`,
        // No --allow-undefined: the imports linux/shim/hvkit.h declares are the only symbols left.
        '-Wl,--stack-first,-z,stack-size=262144',
        ...units.map((u) => u.out),
        '-o',
        tmp,
      ],
      { maxBuffer: 64 << 20 },
    );
  } catch (e) {
    const err = e as { stderr?: string };
    throw new Error(`linking failed:\n${err.stderr ?? String(e)}`, { cause: e });
  }
  renameSync(tmp, WASM);
  writeFileSync(stampFile, hash);
  return WASM;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildLinux({ log: (s) => console.log(`build:linux: ${s}`) }).then(
    (p) => console.log(`build:linux: ${relative(ROOT, p)}`),
    (e: Error) => {
      console.error(`build:linux: ${e.message}`);
      process.exit(1);
    },
  );
}
