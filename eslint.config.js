// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The layers of DESIGN.md, top to bottom: a layer may import only the layers above it.
const layers = ['tlfs', 'memory', 'hypervisor', 'vmbus', 'devices', 'guest', 'vm', 'trace', 'cli', 'web'];
// Platform-neutral layers: they must also run in a browser.
const neutral = new Set(['tlfs', 'memory', 'hypervisor', 'vmbus', 'devices', 'guest']);
const nodeBuiltins = ['node:*', 'fs', 'fs/*', 'path', 'os', 'worker_threads', 'child_process', 'http', 'net', 'crypto', 'url', 'util', 'stream', 'events', 'process'];

function layerRules(layer, index) {
  const below = layers.slice(index + 1);
  const patterns = below.map((l) => ({ group: [`**/${l}/**`, `../${l}`, `../../${l}`], message: `layer '${layer}' may not import the lower layer '${l}' (DESIGN.md)` }));
  if (neutral.has(layer)) {
    patterns.push({ group: nodeBuiltins, message: `layer '${layer}' is platform-neutral: no Node built-ins (DESIGN.md)` });
  }
  const rules = [{ patterns }];
  if (layer === 'guest') {
    // The guest reaches the hypervisor only through traps: it may name the trap interface's types, never its code.
    return {
      files: [`src/${layer}/**/*.ts`],
      rules: {
        '@typescript-eslint/no-restricted-imports': ['error', {
          patterns: [...patterns, { group: ['**/hypervisor/**'], allowTypeImports: true, message: 'the guest talks to the hypervisor only through traps (DESIGN.md principle 1)' }],
        }],
      },
    };
  }
  return { files: [`src/${layer}/**/*.ts`], rules: { '@typescript-eslint/no-restricted-imports': ['error', ...rules] } };
}

export default tseslint.config(
  { ignores: ['dist/', '.bench/', 'node_modules/', 'coverage/'] },
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
    files: ['bin/**/*.js', 'scripts/**/*.mjs'],
    languageOptions: { globals: { console: 'readonly', process: 'readonly' } },
  },
);
