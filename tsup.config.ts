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
  sourcemap: true,
  clean: true,
  target: 'node20',
  splitting: true,
});
