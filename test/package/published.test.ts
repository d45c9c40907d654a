/**
 * What the published tarball carries (issue #12): the license, the metadata npm shows, no source
 * maps pointing at sources it does not ship, no third-party code copied into the build (whose
 * license notice it would then owe), every import it makes declared, types that every resolution
 * mode finds (@arethetypeswrong/cli), and a clean publint.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '../..');
const BIN = (name: string) => join(ROOT, 'node_modules/.bin', name);

let unpacked: string;
let files: string[];
let pkg: {
  license?: string;
  repository?: { url?: string };
  homepage?: string;
  bugs?: { url?: string };
  keywords?: string[];
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
};

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'astro-sdk-unpacked-'));
  await run('tar', ['-xzf', inject('tarball'), '-C', dir]);
  unpacked = join(dir, 'package');
  files = (readdirSync(unpacked, { recursive: true }) as string[]).map((f) => f.split('\\').join('/')).sort();
  pkg = JSON.parse(readFileSync(join(unpacked, 'package.json'), 'utf8')) as typeof pkg;
}, 60_000);

afterAll(() => {
  if (unpacked) rmSync(resolve(unpacked, '..'), { recursive: true, force: true });
});

const jsFiles = () => files.filter((f) => /\.(c|m)?js$/.test(f));

describe('the published tarball', () => {
  it('carries the Apache-2.0 license text, the README and the metadata npm shows', () => {
    expect(files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json']));
    const license = readFileSync(join(unpacked, 'LICENSE'), 'utf8');
    expect(license).toContain('Apache License');
    expect(license).toContain('Version 2.0, January 2004');
    expect(license).toContain('END OF TERMS AND CONDITIONS');
    expect(pkg.license).toBe('Apache-2.0');
    expect(pkg.repository?.url).toMatch(/^git\+https:\/\/github\.com\/.+\.git$/);
    expect(pkg.homepage).toMatch(/^https:\/\//);
    expect(pkg.bugs?.url).toMatch(/^https:\/\//);
    expect(pkg.keywords).toEqual(expect.arrayContaining(['astronomer', 'airflow']));
  });

  it('ships no source maps and no references to them (the sources are not in the tarball)', () => {
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    for (const f of jsFiles()) expect(readFileSync(join(unpacked, f), 'utf8'), f).not.toMatch(/sourceMappingURL=/);
    expect(files.some((f) => f.startsWith('src/'))).toBe(false);
  });

  it('copies no third-party code into the build, so it owes no license notice of one', () => {
    // esbuild heads each bundled module with a `// <path>` comment: all of them must be our src/.
    const origins = new Set<string>();
    for (const f of jsFiles()) {
      for (const m of readFileSync(join(unpacked, f), 'utf8').matchAll(/^\/\/ (\S+\.(?:[cm]?[jt]s|json))$/gm)) origins.add(m[1]!);
    }
    expect(origins.size).toBeGreaterThan(10);
    expect([...origins].filter((o) => !o.startsWith('src/'))).toEqual([]);
  });

  it('imports only Node built-ins and the dependencies it declares; dockerode is an optional peer', () => {
    const declared = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const used = new Set<string>();
    for (const f of jsFiles()) {
      const text = readFileSync(join(unpacked, f), 'utf8');
      const specifiers = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*)["']((?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(?:\/[\w./-]*)?)["']/g;
      for (const m of text.matchAll(specifiers)) {
        const spec = m[1]!;
        used.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
    const undeclared = [...used].filter((s) => !builtins.has(s) && !declared.has(s));
    expect(undeclared).toEqual([]);
    expect(pkg.dependencies).not.toHaveProperty('dockerode');
    expect(pkg.peerDependencies).toHaveProperty('dockerode');
    expect(pkg.peerDependenciesMeta?.dockerode?.optional).toBe(true);
  });

  it('has types every resolution finds (@arethetypeswrong/cli: node10, node16 CJS and ESM, bundler)', async () => {
    const { stdout } = await run(BIN('attw'), [inject('tarball'), '--format', 'json'], { timeout: 180_000, maxBuffer: 64 * 1024 * 1024 }).catch(
      (err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }),
    );
    const report = JSON.parse(stdout) as { analysis: { problems: unknown[]; entrypoints: Record<string, unknown> } };
    expect(Object.keys(report.analysis.entrypoints)).toEqual(
      expect.arrayContaining(['.', './bundle', './upload', './image', './testing']),
    );
    expect(report.analysis.problems).toEqual([]);
  }, 240_000);

  it('passes publint (strict)', async () => {
    const { stdout } = await run(BIN('publint'), ['run', inject('tarball'), '--strict'], { timeout: 120_000 }).catch((err: { stdout?: string; stderr?: string }) => {
      throw new Error(`publint failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    });
    expect(stdout).toContain('All good');
  }, 180_000);
});
