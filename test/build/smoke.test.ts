/**
 * Imports the BUILT package (dist/) through its own name, with `import` and with `require`, for
 * every subpath of the exports map, and checks that errors work across the two copies.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const root = new URL('../../', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { exports: Record<string, unknown>; engines: { node: string } };
const subpaths = Object.keys(pkg.exports).filter((k) => k !== './package.json');

beforeAll(() => {
  execFileSync('npx', ['tsup', '--silent'], { cwd: root, stdio: 'pipe' });
}, 180_000);

describe('built package', () => {
  for (const sub of subpaths) {
    it(`loads ${sub} with import and require, with the same export names`, async () => {
      const spec = sub === '.' ? 'astro-deploy-sdk' : `astro-deploy-sdk/${sub.slice(2)}`;
      const script = `
        const esm = await import(${JSON.stringify(spec)});
        const { createRequire } = await import('node:module');
        const cjs = createRequire(${JSON.stringify(`${root}package.json`)})(${JSON.stringify(spec)});
        console.log(JSON.stringify({ esm: Object.keys(esm).filter(k => k !== 'default').sort(), cjs: Object.keys(cjs).sort() }));
      `;
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
      const { esm, cjs } = JSON.parse(out) as { esm: string[]; cjs: string[] };
      expect(esm.length).toBeGreaterThan(0);
      expect(cjs).toEqual(esm);
    });
  }

  it('recognises errors across the ESM and CJS copies', async () => {
    const script = `
      const esm = await import('astro-deploy-sdk');
      const { createRequire } = await import('node:module');
      const cjs = createRequire(${JSON.stringify(`${root}package.json`)})('astro-deploy-sdk');
      const fromCjs = new cjs.AstroApiError('ASTRO_API_NOT_FOUND', 'x', { status: 404, method: 'GET', path: '/p' });
      const fromEsm = new esm.AstroConfigError('ASTRO_CONFIG_MISSING_TOKEN', 'y');
      console.log(JSON.stringify([
        esm.isAstroError(fromCjs, 'ASTRO_API_NOT_FOUND'), fromCjs instanceof esm.AstroApiError, fromCjs instanceof esm.AstroError,
        cjs.isAstroError(fromEsm), fromEsm instanceof cjs.AstroConfigError, fromEsm instanceof cjs.AstroApiError,
        esm.AstroApiError === cjs.AstroApiError,
      ]));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual([true, true, true, true, true, false, false]);
  });

  for (const flavour of ['import', 'require'] as const) {
    it(`uploads a file through the built ./upload (${flavour})`, () => {
      const load = (spec: string) =>
        flavour === 'import' ? `await import('${spec}')` : `createRequire(${JSON.stringify(`${root}package.json`)})('${spec}')`;
      const script = `
        const { createRequire } = await import('node:module');
        const { writeFileSync, mkdtempSync, rmSync } = await import('node:fs');
        const { randomFillSync, createHash } = await import('node:crypto');
        const { uploadBlockBlob } = ${load('astro-deploy-sdk/upload')};
        const { startFakeBlobServer } = ${load('astro-deploy-sdk/testing')};
        const server = await startFakeBlobServer();
        const dir = mkdtempSync('/tmp/smoke-upload-');
        const file = dir + '/bundle.bin';
        const data = randomFillSync(Buffer.alloc(6 * 1024 * 1024 + 5));
        writeFileSync(file, data);
        const url = server.service.sasUrl(server.url, 'dags', 'b.tar.gz');
        const r = await uploadBlockBlob(url, file, { journalDir: false, blockSizeBytes: 1024 * 1024, maxBlockSizeBytes: 1024 * 1024 });
        const back = server.service.read('dags', 'b.tar.gz');
        await server.close();
        rmSync(dir, { recursive: true, force: true });
        console.log(JSON.stringify({ blocks: r.blocks, same: createHash('sha256').update(back).digest('hex') === createHash('sha256').update(data).digest('hex') }));
      `;
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 });
      const { blocks, same } = JSON.parse(out) as { blocks: number; same: boolean };
      expect(blocks).toBeGreaterThanOrEqual(6);
      expect(same).toBe(true);
    });
  }

  it('runs the testing fake from the CommonJS build', () => {
    const require = createRequire(`${root}package.json`);
    const testing = require('astro-deploy-sdk/testing') as { createFakeAstro: unknown };
    expect(typeof testing.createFakeAstro).toBe('function');
  });

  it('declares an engines range that includes this Node', () => {
    const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
    const [, wantMajor, wantMinor] = /^>=(\d+)\.(\d+)/.exec(pkg.engines.node)!.map(Number) as [number, number, number];
    expect(major > wantMajor || (major === wantMajor && minor >= wantMinor)).toBe(true);
  });
});
