// The package as a user gets it: packed, installed into an empty project without a warning, and
// the README's library example compiled there as written and run.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files: string[]; scripts: Record<string, string>; exports: Record<string, unknown> };
const npm = (args: string[], cwd: string) => spawnSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' } });

/** The README's ```ts block that follows `marker`. */
function readmeBlock(marker: string): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const at = readme.indexOf(marker);
  expect(at, `README has "${marker}"`).toBeGreaterThan(0);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  return m![1]!;
}

describe('the npm package', () => {
  it('carries the MIT licence it names', () => {
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n/);
    expect((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { license: string }).license).toBe('MIT');
  });

  it('packs without its build-time script, installs without a warning, and runs the README example as written', () => {
    // Pack a copy whose build is a no-op (dist/ is built already: the suite runs after `npm run
    // build`), so that the packing runs the real prepack and postpack without rewriting dist/
    // under the other tests.
    const stage = mkdtempSync(join(tmpdir(), 'hvkit-stage-'));
    for (const f of [...manifest.files, 'README.md', 'LICENSE', 'scripts/pack-manifest.mjs']) cpSync(join(root, f), join(stage, f), { recursive: true });
    const staged = { ...manifest, scripts: { ...manifest.scripts, build: 'node -e ""' } };
    writeFileSync(join(stage, 'package.json'), JSON.stringify(staged, null, 2) + '\n');
    const pack = npm(['pack', '--json'], stage);
    expect(pack.status, pack.stderr).toBe(0);
    const tarball = join(stage, (JSON.parse(pack.stdout) as { filename: string }[])[0]!.filename);
    // postpack put the manifest back as it was.
    expect(readFileSync(join(stage, 'package.json'), 'utf8')).toBe(JSON.stringify(staged, null, 2) + '\n');
    const packed = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' })) as { scripts: Record<string, string> };
    expect(packed.scripts.prepare).toBeUndefined();

    const user = mkdtempSync(join(tmpdir(), 'hvkit-user-'));
    writeFileSync(join(user, 'package.json'), JSON.stringify({ name: 'user', version: '1.0.0', type: 'module', private: true }));
    const install = npm(['install', '--prefer-offline', tarball, '@types/node@^20'], user);
    expect(install.status, install.stderr).toBe(0);
    expect(install.stderr).not.toMatch(/warn/i);
    expect(existsSync(join(user, 'node_modules/hvkit/dist/index.d.ts'))).toBe(true);

    mkdirSync(join(user, 'src'));
    writeFileSync(join(user, 'src/example.ts'), readmeBlock('This program runs as it is:'));
    writeFileSync(join(user, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, types: ['node'], outDir: 'out', rootDir: 'src' } }));
    const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', user], { encoding: 'utf8' });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
    const out = execFileSync(process.execPath, [join(user, 'out/example.js')], { encoding: 'utf8', cwd: user });
    expect(out).toBe("[ 'hello!!!' ]\n");
    // The command comes with it.
    const cli = spawnSync(process.execPath, [join(user, 'node_modules/hvkit/bin/hvkit.js'), 'run', '--no-vmbus', '--vps', '1'], { encoding: 'utf8' });
    expect(cli.status).toBe(0);
    expect(cli.stdout).toContain('Hypervisor detected: Microsoft Hyper-V');
  }, 180_000);
});
