// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The layers of DESIGN.md, top to bottom: a layer may import only the layers above it.
const layers = ['tlfs', 'memory', 'hypervisor', 'vmbus', 'devices', 'guest', 'vm', 'trace', 'cli', 'web'];
// Platform-neutral layers: they must also run in a browser.
const neutral = new Set(['tlfs', 'memory', 'hypervisor', 'vmbus', 'devices', 'guest']);
// Bare built-in names are exact module names, not patterns: a folder called `net` or `stream` is fine.
const nodeModules = ['fs', 'fs/promises', 'path', 'os', 'worker_threads', 'child_process', 'http', 'https', 'net', 'dgram', 'dns', 'crypto', 'url', 'util', 'stream', 'events', 'process', 'buffer', 'timers'];
// Node's globals: a browser has none of them.
const nodeGlobals = ['Buffer', 'process', 'require', 'module', 'global', 'setImmediate', 'clearImmediate', '__dirname', '__filename'].map((name) => ({ name, message: 'platform-neutral code: no Node globals (DESIGN.md)' }));

function layerRules(layer, index) {
  const below = layers.slice(index + 1);
  const patterns = below.map((l) => ({ group: [`**/${l}/**`, `../${l}`, `../../${l}`], message: `layer '${layer}' may not import the lower layer '${l}' (DESIGN.md)` }));
  const paths = [];
  if (neutral.has(layer)) {
    const message = `layer '${layer}' is platform-neutral: no Node built-ins (DESIGN.md)`;
    patterns.push({ group: ['node:*'], message });
    paths.push(...nodeModules.map((name) => ({ name, message })));
  }
  const rules = [{ patterns, paths }];
  if (layer === 'guest') {
    // The guest reaches the hypervisor only through traps: it may name the trap interface's types, never its code.
    return {
      files: [`src/${layer}/**/*.ts`],
      rules: {
        '@typescript-eslint/no-restricted-imports': ['error', {
          paths,
          patterns: [...patterns, { group: ['**/hypervisor/**'], allowTypeImports: true, message: 'the guest talks to the hypervisor only through traps (DESIGN.md principle 1)' }],
        }],
        'no-restricted-globals': ['error', ...nodeGlobals],
      },
    };
  }
  return { files: [`src/${layer}/**/*.ts`], rules: { '@typescript-eslint/no-restricted-imports': ['error', ...rules], ...(neutral.has(layer) ? { 'no-restricted-globals': ['error', ...nodeGlobals] } : {}) } };
}

export default tseslint.config(
  { ignores: ['dist/', 'dist-web/', 'test-web-results/', '.bench/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
      eqeqeq: ['error', 'smart'],
    },
  },
  ...layers.map(layerRules),
  {
    // The browser app runs in a page and its workers: no Node built-ins, no Node globals.
    files: ['web/src/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', {
        patterns: [{ group: ['node:*'], message: 'the browser app: no Node built-ins' }, { group: ['**/src/cli/**'], message: 'the browser app may not import the CLI' }],
        paths: nodeModules.map((name) => ({ name, message: 'the browser app: no Node built-ins' })),
      }],
      'no-restricted-globals': ['error', ...nodeGlobals],
    },
  },
  {
    files: ['bin/**/*.js', 'scripts/**/*.mjs'],
    languageOptions: { globals: { console: 'readonly', process: 'readonly' } },
  },
);
