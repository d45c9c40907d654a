/**
 * The packed tarball installed as a user installs it (`npm i <tgz>` into a fresh project outside
 * this repository, without dockerode) and used from ESM, CommonJS, TypeScript (nodenext, bundler
 * and node10 resolution, `skipLibCheck: false`) and an esbuild bundle, and every ```ts block of the
 * README type-checked against it. CI runs this on every Node the package claims.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RUNTIME_VERSION_LABEL } from '../../src/image/index.js';
import { makeImage, writeLegacyArchive } from '../image/fixtures.js';

const run = promisify(execFile);
const ROOT = resolve(__dirname, '../..');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const ESBUILD = join(ROOT, 'node_modules/.bin/esbuild');
const TYPES_NODE = (JSON.parse(readFileSync(join(ROOT, 'node_modules/@types/node/package.json'), 'utf8')) as { version: string }).version;

let app: string;

beforeAll(async () => {
  app = mkdtempSync(join(tmpdir(), 'astro-sdk-consumer-'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }, null, 2));
  await run('npm', ['install', inject('tarball'), '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: app, timeout: 240_000 });
  // Types for the TypeScript checks only, as a dev dependency of the app.
  await run('npm', ['install', '-D', `@types/node@${TYPES_NODE}`, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: app, timeout: 240_000 });

  mkdirSync(join(app, 'dags'));
  writeFileSync(join(app, 'dags', 'hello.py'), 'from airflow import DAG\n');
  const image = makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-2' }, layers: [{ 'usr/local/airflow/x.txt': 'x' }] });
  await writeLegacyArchive(join(app, 'image.tar'), image, 'local/app:1');
}, 600_000);

afterAll(() => {
  if (app) rmSync(app, { recursive: true, force: true });
});

/** What every runtime scenario prints: a DAG deploy against the fake, an archive read, and the daemon path without dockerode. */
const scenario = (load: (spec: string) => string) => `
  const { AstroClient, isAstroError } = ${load('astro-deploy-sdk')};
  const { scanDags } = ${load('astro-deploy-sdk/bundle')};
  const { uploadBlockBlob } = ${load('astro-deploy-sdk/upload')};
  const { inspectImage } = ${load('astro-deploy-sdk/image')};
  const { createFakeAstro } = ${load('astro-deploy-sdk/testing')};
  const astro = await createFakeAstro({ deployments: [{ id: 'cldep1', type: 'STANDARD' }] });
  try {
    const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
    const deployed = await client.deployDags({ deploymentId: 'cldep1', dagsDir: 'dags' });
    const scan = await scanDags('dags');
    const archive = await inspectImage('image.tar');
    const daemon = await inspectImage({ imageName: 'local/app:1' }).catch((e) => e);
    console.log(JSON.stringify({
      deployed: typeof deployed.dagTarballVersion === 'string',
      files: scan.included,
      architecture: archive.architecture,
      daemon: isAstroError(daemon, 'ASTRO_IMAGE_DOCKERODE_MISSING') ? daemon.code : String(daemon),
      mentionsInstall: /npm install dockerode/.test(daemon.message),
      upload: typeof uploadBlockBlob,
    }));
  } finally {
    await astro.close();
  }
`;

const expected = {
  deployed: true,
  files: ['hello.py'],
  architecture: 'amd64',
  daemon: 'ASTRO_IMAGE_DOCKERODE_MISSING',
  mentionsInstall: true,
  upload: 'function',
};

async function node(file: string): Promise<unknown> {
  const { stdout } = await run(process.execPath, [file], { cwd: app, timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

/** Run tsc in a project folder of the app; resolves with its output (empty when clean). */
async function tsc(dir: string, compilerOptions: Record<string, unknown>, files: Record<string, string>): Promise<string> {
  const project = join(app, dir);
  mkdirSync(project, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(project, name), text);
  const options = { strict: true, noEmit: true, skipLibCheck: false, types: ['node'], target: 'ES2022', ...compilerOptions };
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions: options, include: Object.keys(files) }, null, 2));
  const r = await run(process.execPath, [TSC, '-p', project], { cwd: project, timeout: 120_000 }).catch((err: { stdout?: string; stderr?: string }) => ({
    stdout: `${err.stdout ?? ''}${err.stderr ?? ''}`,
  }));
  return r.stdout.trim();
}

/** A TypeScript consumer: every subpath, and the types issue #12 is about. */
const USAGE = `
import { AstroClient, isAstroError, type DeployDagsParams } from 'astro-deploy-sdk';
import { scanDags } from 'astro-deploy-sdk/bundle';
import { uploadBlockBlob } from 'astro-deploy-sdk/upload';
import { inspectImage, type DockerLike } from 'astro-deploy-sdk/image';
import { createFakeAstro } from 'astro-deploy-sdk/testing';

export async function main(err: unknown, docker: DockerLike): Promise<void> {
  const client = new AstroClient({ logger: console, logLevel: 'info' });
  const params: DeployDagsParams = { deploymentId: 'cldep1', dagsDir: './dags' };
  await client.deployDags(params);
  if (isAstroError(err, 'ASTRO_ROLLOUT_TIMEOUT')) {
    const polls: number = err.lastState.polls;
    void polls;
  }
  await inspectImage({ imageName: 'a:1' }, { docker });
  // The docker option is a real type, not any: a number is refused.
  // @ts-expect-error not a Docker client
  await inspectImage({ imageName: 'a:1' }, { docker: 42 });
  void scanDags;
  void uploadBlockBlob;
  void createFakeAstro;
}
`;

describe('the packed tarball in a fresh project', () => {
  it('installs no dockerode, no native code and nothing with an install script', () => {
    const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; hasInstallScript?: boolean }> };
    const prod = Object.entries(lock.packages).filter(([k, v]) => k.startsWith('node_modules/') && !v.dev);
    expect(prod.map(([k]) => k)).not.toContain('node_modules/dockerode');
    expect(prod.filter(([, v]) => v.hasInstallScript).map(([k]) => k)).toEqual([]);
    const nodeAddons = (readdirSync(join(app, 'node_modules'), { recursive: true }) as string[]).filter((f) => f.endsWith('.node'));
    expect(nodeAddons).toEqual([]);
    expect(existsSync(join(app, 'node_modules/astro-deploy-sdk/LICENSE'))).toBe(true);
  });

  it('works from ESM: a DAG deploy, an archive, and a typed error naming the install on a daemon path', async () => {
    writeFileSync(join(app, 'esm.mjs'), scenario((spec) => `await import('${spec}')`));
    expect(await node('esm.mjs')).toEqual(expected);
  });

  it('works from CommonJS', async () => {
    writeFileSync(join(app, 'cjs.cjs'), `(async () => {${scenario((spec) => `require('${spec}')`)}})().catch((e) => { console.error(e); process.exit(1); });`);
    expect(await node('cjs.cjs')).toEqual(expected);
  });

  it('type-checks under TypeScript nodenext resolution, from ESM and CommonJS files, with skipLibCheck off', async () => {
    expect(await tsc('ts-nodenext', { module: 'nodenext', moduleResolution: 'nodenext' }, { 'esm.mts': USAGE, 'cjs.cts': USAGE })).toBe('');
  }, 180_000);

  it('type-checks under TypeScript bundler resolution', async () => {
    expect(await tsc('ts-bundler', { module: 'esnext', moduleResolution: 'bundler' }, { 'app.ts': USAGE })).toBe('');
  }, 180_000);

  it('type-checks under TypeScript node10 resolution (module commonjs)', async () => {
    // esModuleInterop as `tsc --init` sets it: zod's own node10 types need it with skipLibCheck off.
    expect(await tsc('ts-node10', { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true }, { 'app.ts': USAGE })).toBe('');
  }, 180_000);

  it('compiles every ```ts block of the README against the installed package', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const files: Record<string, string> = {};
    for (const m of readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)) {
      const line = readme.slice(0, m.index).split('\n').length;
      // Each block is a module of its own (top-level await, no names from other blocks).
      files[`readme-line-${line}.mts`] = `${m[1]}export {};\n`;
    }
    expect(Object.keys(files).length).toBeGreaterThanOrEqual(8);
    expect(await tsc('ts-readme', { module: 'nodenext', moduleResolution: 'nodenext' }, files)).toBe('');
  }, 180_000);

  it('installs the astro-deploy command: npx astro-deploy runs a DAG deploy against a fake Astro, and its demo', async () => {
    // The fake runs in a process of its own started from the installed package, as a user's harness would.
    writeFileSync(
      join(app, 'fake.mjs'),
      `import { createFakeAstro } from 'astro-deploy-sdk/testing';
       const astro = await createFakeAstro({ deployments: [{ id: 'cldepbin1', type: 'STANDARD' }], rolloutDelayMs: 20 });
       console.log(JSON.stringify({ baseUrl: astro.baseUrl, token: astro.token }));
       process.stdin.resume();
       process.stdin.on('end', () => astro.close());`,
    );
    const { spawn } = await import('node:child_process');
    const fake = spawn(process.execPath, ['fake.mjs'], { cwd: app, stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const first = await new Promise<string>((resolve, reject) => {
        fake.stdout.once('data', (d: Buffer) => resolve(String(d)));
        fake.once('error', reject);
      });
      const { baseUrl, token } = JSON.parse(first) as { baseUrl: string; token: string };
      const env = { ...process.env, ASTRO_API_URL: baseUrl, ASTRO_API_TOKEN: token };
      const deployed = await run('npx', ['--no-install', 'astro-deploy', 'dags', '--deployment-id', 'cldepbin1', '--dags-dir', 'dags', '--wait', '--json'], { cwd: app, env, timeout: 60_000 });
      const last = JSON.parse(deployed.stdout.trim().split('\n').pop()!) as { type: string; result?: { dagTarballVersion?: string } };
      expect(last.type).toBe('result');
      expect(last.result?.dagTarballVersion).toMatch(/Z$/);
      expect(deployed.stdout).not.toContain(token);
      const demo = await run('npx', ['--no-install', 'astro-deploy', 'demo', '--json', '--quiet'], { cwd: app, timeout: 60_000 });
      expect((JSON.parse(demo.stdout.trim().split('\n').pop()!) as { type: string }).type).toBe('result');
    } finally {
      fake.stdin.end();
      fake.kill();
    }
  }, 180_000);

  for (const format of ['esm', 'cjs'] as const) {
    it(`bundles with esbuild (${format}) without dockerode installed, and the bundle runs`, async () => {
      const entry = join(app, `bundle-entry-${format}.${format === 'esm' ? 'mjs' : 'cjs'}`);
      writeFileSync(entry, format === 'esm' ? scenario((spec) => `await import('${spec}')`) : `(async () => {${scenario((spec) => `require('${spec}')`)}})();`);
      const out = join(app, `bundled.${format === 'esm' ? 'mjs' : 'cjs'}`);
      // An ESM bundle of CommonJS dependencies (undici, tar) needs a require: esbuild's usual banner.
      const banner = format === 'esm' ? ["--banner:js=import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);"] : [];
      await run(ESBUILD, [entry, '--bundle', '--platform=node', `--format=${format}`, `--outfile=${out}`, '--log-level=error', ...banner], { cwd: app, timeout: 60_000 });
      expect(await node(out)).toEqual(expected);
    }, 120_000);
  }
});
