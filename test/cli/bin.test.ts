/**
 * The package's `bin` as a user gets it (the other CLI tests run it too): package.json names
 * dist/cli.js, which tsup builds from tsup.config.ts as an ESM file whose first line is the
 * `#!/usr/bin/env node` shebang and that is executable, so it runs with no `node` in front.
 */
import { readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { builtBin, cliEnv, ROOT, runCli } from './helpers.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };

beforeAll(() => builtBin(), 300_000);

describe('the built bin', () => {
  it('is package.json bin astro-deploy: an executable ESM file with a node shebang', async () => {
    expect(pkg.bin).toEqual({ 'astro-deploy': './dist/cli.js' });
    const bin = await builtBin();
    expect(basename(bin)).toBe(basename(pkg.bin['astro-deploy']!));
    const text = readFileSync(bin, 'utf8');
    expect(text.split('\n')[0]).toBe('#!/usr/bin/env node');
    expect(text).toMatch(/^import /m);
    expect(statSync(bin).mode & 0o111).toBe(0o111);
    const version = await runCli(['--version'], { env: cliEnv(undefined), command: [bin] });
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe(`astro-deploy ${pkg.version}`);
  });
});
