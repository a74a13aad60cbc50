// The package as a user gets it: packed, installed into an empty project without a warning, and
// the README's library example and every example of the API reference (docs/api) compiled there
// as written and run.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileUserProject, manifest, packedPackage, root, type PackedPackage } from './packed-package.js';

/** The README's ```ts block that follows `marker`. */
function readmeBlock(marker: string): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const at = readme.indexOf(marker);
  expect(at, `README has "${marker}"`).toBeGreaterThan(0);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  return m![1]!;
}

/** Repository-relative paths of the files under `dir` whose names end in `ext`, sorted. */
function filesUnder(dir: string, ext: string): string[] {
  return readdirSync(join(root, dir))
    .sort()
    .flatMap((name) => {
      const rel = `${dir}/${name}`;
      if (statSync(join(root, rel)).isDirectory()) return filesUnder(rel, ext);
      return name.endsWith(ext) ? [rel] : [];
    });
}

/** The ```ts examples of the API reference, by page. */
const apiExamples = (): { page: string; code: string }[] =>
  filesUnder('docs/api', '.md').flatMap((page) => [...readFileSync(join(root, page), 'utf8').matchAll(/## Example\n\n```ts\n([\s\S]*?)```/g)].map((m) => ({ page, code: m[1]! })));

/** The `@example` blocks of the sources the API reference is made from, as TypeDoc prints them. */
const sourceExamples = (): string[] =>
  filesUnder('src', '.ts').flatMap((file) =>
    [...readFileSync(join(root, file), 'utf8').matchAll(/@example\n \* ```ts\n([\s\S]*?) \* ```/g)].map((m) =>
      m[1]!
        .split('\n')
        .map((l) => l.replace(/^ \* ?/, ''))
        .join('\n'),
    ),
  );

/** What an example says it prints: the text after `// → ` on each line, in order. */
const expectedOutput = (code: string): string[] => [...code.matchAll(/\/\/ → (.*)$/gm)].map((m) => m[1]!);

let pkg: PackedPackage;
beforeAll(() => {
  pkg = packedPackage();
}, 180_000);

describe('the npm package', () => {
  it('carries the MIT licence it names', () => {
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n/);
    expect((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { license: string }).license).toBe('MIT');
  });

  it('packs without its build-time script, installs without a warning, and runs the README example as written', () => {
    expect(pkg.pack.status, pkg.pack.stderr).toBe(0);
    // postpack put the manifest back as it was.
    expect(readFileSync(join(pkg.stage, 'package.json'), 'utf8')).toBe(pkg.stagedManifest);
    const packed = JSON.parse(execFileSync('tar', ['-xzOf', pkg.tarball, 'package/package.json'], { encoding: 'utf8' })) as { scripts: Record<string, string> };
    expect(packed.scripts.prepare).toBeUndefined();
    expect(manifest.scripts.prepare).toBeDefined();

    expect(pkg.install.status, pkg.install.stderr).toBe(0);
    expect(pkg.install.stderr).not.toMatch(/warn/i);
    expect(existsSync(join(pkg.user, 'node_modules/hvkit/dist/index.d.ts'))).toBe(true);

    mkdirSync(join(pkg.user, 'src'), { recursive: true });
    writeFileSync(join(pkg.user, 'src/example.ts'), readmeBlock('This program runs as it is:'));
    const tsc = compileUserProject(pkg.user);
    expect(tsc.output).toBe('');
    expect(tsc.status).toBe(0);
    const out = execFileSync(process.execPath, [join(pkg.user, 'out/example.js')], { encoding: 'utf8', cwd: pkg.user });
    expect(out).toBe("[ 'hello!!!' ]\n");
    // The command comes with it.
    const cli = spawnSync(process.execPath, [join(pkg.user, 'node_modules/hvkit/bin/hvkit.js'), 'run', '--no-vmbus', '--vps', '1'], { encoding: 'utf8' });
    expect(cli.status).toBe(0);
    expect(cli.stdout).toContain('Hypervisor detected: Microsoft Hyper-V');
  }, 180_000);

  it('ships the browser app, and `hvkit web` serves it from the installed package, cross-origin isolated', async () => {
    expect(pkg.install.status, pkg.install.stderr).toBe(0);
    const site = join(pkg.user, 'node_modules/hvkit/dist-web');
    expect(existsSync(join(site, 'index.html'))).toBe(true);
    expect(readdirSync(join(site, 'assets')).some((f) => f.startsWith('guest-worker') && f.endsWith('.js'))).toBe(true);
    const web = spawn(process.execPath, [join(pkg.user, 'node_modules/hvkit/bin/hvkit.js'), 'web', '--port', '0'], { cwd: pkg.user });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        web.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          const m = /serving (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        web.once('exit', (code) => reject(new Error(`hvkit web exited (${code}): ${out}`)));
      });
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
      expect(res.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
      expect(await res.text()).toContain('hvkit in the browser');
    } finally {
      web.kill();
    }
  }, 60_000);

  it('runs every example of the API reference from the installed package, printing what it says it prints', () => {
    const examples = apiExamples();
    // The reference shows the examples the sources hold now (else: npm run docs).
    expect(examples.map((e) => e.code).sort(), 'docs/api differs from the sources: run `npm run docs`').toEqual(sourceExamples().sort());
    for (const page of ['classes/Machine.md', 'classes/VmbusServer.md', 'classes/VmbusClient.md', 'classes/RingWriter.md', 'functions/readTraceFile.md']) {
      expect(examples.map((e) => e.page), page).toContain(`docs/api/${page}`);
    }
    expect(pkg.install.status, pkg.install.stderr).toBe(0);
    mkdirSync(join(pkg.user, 'src'), { recursive: true });
    examples.forEach((e, i) => writeFileSync(join(pkg.user, `src/api-example-${i}.ts`), e.code));
    const tsc = compileUserProject(pkg.user);
    expect(tsc.output).toBe('');
    expect(tsc.status).toBe(0);
    examples.forEach((e, i) => {
      const out = execFileSync(process.execPath, [join(pkg.user, `out/api-example-${i}.js`)], { encoding: 'utf8', cwd: pkg.user });
      expect(out.trimEnd().split('\n'), e.page).toEqual(expectedOutput(e.code));
    });
  }, 180_000);
});
