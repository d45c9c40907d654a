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
  entry,
  format: ['esm', 'cjs'],
  dts: true,
  // No source maps: they would point at src/, which is not published (issue #12).
  sourcemap: false,
  clean: true,
  target: 'node20',
  splitting: true,
});
