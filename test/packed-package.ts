// The package as a user gets it: packed from a staged copy whose build is a no-op (dist/ is
// built already: the suite runs after `npm run build`), so that packing runs the real prepack
// and postpack without rewriting dist/ under the other tests, then installed into an empty
// project with @types/node. Made once per test file that asks.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files: string[]; scripts: Record<string, string>; exports: Record<string, unknown> };
export const npm = (args: string[], cwd: string) =>
  spawnSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' } });

export interface PackedPackage {
  /** The staged copy that was packed, with its manifest as staged. */
  readonly stage: string;
  readonly stagedManifest: string;
  readonly tarball: string;
  readonly pack: ReturnType<typeof npm>;
  /** The user's project, the package installed in it. */
  readonly user: string;
  readonly install: ReturnType<typeof npm>;
}

let made: PackedPackage | undefined;

export function packedPackage(): PackedPackage {
  if (made) return made;
  const stage = mkdtempSync(join(tmpdir(), 'hvkit-stage-'));
  for (const f of [...manifest.files, 'README.md', 'LICENSE', 'scripts/pack-manifest.mjs']) cpSync(join(root, f), join(stage, f), { recursive: true });
  const stagedManifest = JSON.stringify({ ...manifest, scripts: { ...manifest.scripts, build: 'node -e ""' } }, null, 2) + '\n';
  writeFileSync(join(stage, 'package.json'), stagedManifest);
  const pack = npm(['pack', '--json'], stage);
  if (pack.status !== 0) throw new Error(`npm pack failed: ${pack.stderr}`);
  const tarball = join(stage, (JSON.parse(pack.stdout) as { filename: string }[])[0]!.filename);
  const user = mkdtempSync(join(tmpdir(), 'hvkit-user-'));
  writeFileSync(join(user, 'package.json'), JSON.stringify({ name: 'user', version: '1.0.0', type: 'module', private: true }));
  const install = npm(['install', '--prefer-offline', tarball, '@types/node@^20'], user);
  writeFileSync(join(user, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, types: ['node'], outDir: 'out', rootDir: 'src' } }));
  made = { stage, stagedManifest, tarball, pack, user, install };
  return made;
}

/** Compiles the user's project with the repository's TypeScript; returns tsc's output. */
export function compileUserProject(user: string): { status: number | null; output: string } {
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', user], { encoding: 'utf8' });
  return { status: tsc.status, output: tsc.stdout + tsc.stderr };
}
