import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'docs/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      'no-console': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // A dispatcher is driven by its own undici only (#12): undici 8 refuses undici 7's top-level
    // functions. Every request goes through httpRequest in src/core/dispatcher.ts.
    files: ['src/**'],
    ignores: ['src/core/dispatcher.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: 'undici',
              importNames: ['request', 'stream', 'pipeline', 'connect', 'upgrade', 'fetch'],
              message: 'Use httpRequest from src/core/dispatcher.ts, which works with dispatchers of undici 7 and 8.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**', 'examples/**', 'bench/**', 'scripts/**'],
    rules: { 'no-console': 'off' },
  },
);
