/**
 * deployDags({ bundle }): a bundle made once by createBundle, shipped as it is, against the fake
 * Astro over real HTTP. Refused (before anything is created) when its `.airflowignore` syntax is
 * not the deployment's.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createBundle, type BundleResult, type IgnoreSyntax } from '../../src/bundle/index.js';
import { BundleError, isAstroError, type DeployDagsEvent } from '../../src/index.js';
import { startFake } from '../helpers/fake.js';

function dagsFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bundle-dags-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'etl.py'), 'from airflow import DAG\n');
  writeFileSync(join(dir, 'notes.md'), '# notes\n');
  // Excluded in glob syntax ("*.md"); in regexp syntax "*.md" is an invalid pattern and skipped.
  writeFileSync(join(dir, '.airflowignore'), '*.md\n');
  return dir;
}

async function bundleOf(dir: string, syntax: IgnoreSyntax): Promise<BundleResult> {
  const bundle = await createBundle(dir, { syntax });
  onTestFinished(() => bundle.cleanup());
  return bundle;
}

const sha256 = (b: Buffer | undefined) => (b ? createHash('sha256').update(b).digest('hex') : undefined);

describe('deployDags({ bundle })', () => {
  it('ships the bundle as it was made, leaves its file in place, and bundles nothing itself', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'clbun1', runtimeVersion: '3.1-2' }] });
    const bundle = await bundleOf(dagsFolder(), 'glob');
    const events: DeployDagsEvent[] = [];
    const result = await client.deployDags({ deploymentId: 'clbun1', bundle, onEvent: (e) => events.push(e) });
    expect('deployId' in result).toBe(true);
    const r = result as Extract<typeof result, { deployId: string }>;
    const uploaded = astro.blob.readVersion('dags', `${astro.organizationId}/clbun1`, r.dagTarballVersion);
    expect(sha256(uploaded)).toBe(bundle.sha256);
    expect(r.bundle).toMatchObject({ sha256: bundle.sha256, fingerprint: bundle.manifest.fingerprint, bytes: bundle.bytes, files: 2 });
    expect(astro.deploys('clbun1').find((d) => d.id === r.deployId)?.dagTarballVersion).toBe(r.dagTarballVersion);
    expect(existsSync(bundle.path!)).toBe(true);
    expect(events.filter((e) => e.type.startsWith('bundle:'))).toEqual([]);
    expect(events.find((e) => e.type === 'deploy:checked')).toMatchObject({ syntax: 'glob' });
    // The same bundle again, to the same deployment: a second deploy of the same bytes.
    const again = (await client.deployDags({ deploymentId: 'clbun1', bundle })) as typeof r;
    expect(sha256(astro.blob.readVersion('dags', `${astro.organizationId}/clbun1`, again.dagTarballVersion))).toBe(bundle.sha256);
  });

  it("refuses a bundle whose .airflowignore syntax is not the deployment's, before anything is created", async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'clbun2', runtimeVersion: '12.5.0' }, { id: 'clbun3', runtimeVersion: '3.1-2' }] });
    const glob = await bundleOf(dagsFolder(), 'glob');
    const error = await client.deployDags({ deploymentId: 'clbun2', bundle: glob }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BundleError);
    expect(isAstroError(error, 'ASTRO_BUNDLE_SYNTAX_MISMATCH')).toBe(true);
    expect((error as Error).message).toMatch(/'glob' syntax.*'regexp' syntax.*12\.5\.0/);
    const regexp = await bundleOf(dagsFolder(), 'regexp');
    const error3 = await client.deployDags({ deploymentId: 'clbun3', bundle: regexp }).catch((e: unknown) => e);
    expect(isAstroError(error3, 'ASTRO_BUNDLE_SYNTAX_MISMATCH')).toBe(true);
    expect(astro.requestsFor('deploys.create')).toEqual([]);
    // A deployment that overrides its syntax says so with `syntax`: then the bundle fits.
    await client.deployDags({ deploymentId: 'clbun2', bundle: glob, syntax: 'glob' });
    expect(astro.requestsFor('deploys.create')).toHaveLength(1);
  });

  it('refuses what cannot be a bundle to ship: both or neither source, shaping options, a stream bundle, a file gone', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'clbun4', runtimeVersion: '3.1-2' }] });
    const dir = dagsFolder();
    const bundle = await bundleOf(dir, 'glob');
    const code = async (p: Promise<unknown>) => ((await p.catch((e: unknown) => e)) as { code?: string }).code;
    expect(await code(client.deployDags({ deploymentId: 'clbun4', dagsDir: dir, bundle }))).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(await code(client.deployDags({ deploymentId: 'clbun4' }))).toBe('ASTRO_CONFIG_INVALID_OPTION');
    const shaped = await client.deployDags({ deploymentId: 'clbun4', bundle, exclude: ['*.md'], prefix: false }).catch((e: unknown) => e);
    expect((shaped as Error).message).toMatch(/prefix, exclude shape a bundle/);
    const sink = new PassThrough();
    sink.resume();
    const streamed = await createBundle(dir, { syntax: 'glob', output: { type: 'stream', stream: sink } });
    expect(await code(client.deployDags({ deploymentId: 'clbun4', bundle: streamed }))).toBe('ASTRO_CONFIG_INVALID_OPTION');
    await bundle.cleanup();
    const gone = await client.deployDags({ deploymentId: 'clbun4', bundle }).catch((e: unknown) => e);
    expect(isAstroError(gone, 'ASTRO_BUNDLE_IO')).toBe(true);
    expect((gone as Error).message).toMatch(/is gone/);
    expect(astro.requestsFor('deploys.create')).toEqual([]);
  });

  it('records the folder it was made from and its syntax', async () => {
    const dir = dagsFolder();
    const bundle = await bundleOf(dir, 'regexp');
    expect(bundle.manifest.syntax).toBe('regexp');
    expect(bundle.root).toBe(await import('node:fs/promises').then((fs) => fs.realpath(dir)));
  });
});
