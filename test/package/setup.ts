/**
 * Global setup of the `package` tier: build the package with its own tsup config into a staging
 * folder of its own (so it never races a build of dist/), add what `files` and npm ship
 * (package.json, README.md, LICENSE), `npm pack` it, and hand the tarball's path to the tests
 * (`inject('tarball')`). With `ASTRO_SDK_TARBALL` set, that tarball is tested instead: CI packs
 * once and tests the same tarball on every Node.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

declare module 'vitest' {
  export interface ProvidedContext {
    /** Absolute path of the packed `astro-deploy-sdk-<version>.tgz`. */
    tarball: string;
  }
}

export default async function setup(project: TestProject): Promise<(() => void) | undefined> {
  const given = process.env.ASTRO_SDK_TARBALL;
  if (given) {
    project.provide('tarball', resolve(given));
    return undefined;
  }
  const stage = mkdtempSync(join(tmpdir(), 'astro-sdk-pack-'));
  await run('npx', ['tsup', '--silent', '--out-dir', join(stage, 'dist')], { cwd: ROOT, timeout: 300_000 });
  for (const file of ['package.json', 'README.md', 'LICENSE']) copyFileSync(join(ROOT, file), join(stage, file));
  const { stdout } = await run('npm', ['pack', '--silent'], { cwd: stage, timeout: 120_000 });
  project.provide('tarball', join(stage, stdout.trim().split('\n').pop()!));
  return () => rmSync(stage, { recursive: true, force: true });
}
