import { defineConfig } from 'tsup';

/** One entry per package subpath (see the `exports` map in package.json). */
const entry: Record<string, string> = {
  index: 'src/index.ts',
  'bundle/index': 'src/bundle/index.ts',
  'upload/index': 'src/upload/index.ts',
  'image/index': 'src/image/index.ts',
  'testing/index': 'src/testing/index.ts',
};

export default defineConfig({
  // The CLI (package.json `bin`: dist/cli.js, ESM, its `#!/usr/bin/env node` kept by esbuild and
  // made executable by tsup) shares the library's chunks; it has no types of its own.
  entry: { ...entry, cli: 'src/cli/main.ts' },
  format: ['esm', 'cjs'],
  dts: { entry },
  // No source maps: they would point at src/, which is not published (issue #12).
  sourcemap: false,
  clean: true,
  target: 'node20',
  splitting: true,
});
