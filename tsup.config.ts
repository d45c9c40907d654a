import { defineConfig } from 'tsup';

/** One entry per package subpath (see the `exports` map in package.json). */
const entry: Record<string, string> = {
  index: 'src/index.ts',
  'bundle/index': 'src/bundle/index.ts',
  'upload/index': 'src/upload/index.ts',
  'image/index': 'src/image/index.ts',
  'testing/index': 'src/testing/index.ts',
};

/** The package's `bin` (see src/cli/start.cts): kept by the library build's clean, built on its own. */
const BIN = 'astro-deploy';

export default defineConfig([
  {
    // The CLI (dist/cli.js, ESM, its `#!/usr/bin/env node` kept by esbuild and made executable by
    // tsup) shares the library's chunks; it has no types of its own. The bin loads it.
    entry: { ...entry, cli: 'src/cli/main.ts' },
    format: ['esm', 'cjs'],
    dts: { entry },
    // No source maps: they would point at src/, which is not published (issue #12).
    sourcemap: false,
    // The two builds run at once: this one's clean must not remove the bin the other writes.
    clean: [`!${BIN}.cjs`],
    target: 'node20',
    splitting: true,
  },
  {
    // The bin must be CommonJS: it sizes libuv's thread pool before any ES module loads.
    entry: { [BIN]: 'src/cli/start.cts' },
    format: ['cjs'],
    sourcemap: false,
    clean: false,
    target: 'node20',
  },
]);
