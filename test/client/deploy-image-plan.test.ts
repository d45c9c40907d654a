/**
 * deployImage: dryRun, the deploy:impact notice and skipUnchanged by image digest, against the fake
 * Astro and a real registry (distribution 2.8 behind a counting proxy), with image archives made
 * in the test (no Docker daemon needed).
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AstroClient, type DeployImageEvent, type DeployImageResult } from '../../src/index.js';
import { RUNTIME_VERSION_LABEL } from '../../src/image/index.js';
import { createFakeAstro, createFaultProxy, type FakeAstro, type FaultProxy } from '../../src/testing/index.js';
import { registryRouteOf, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, noise, writeLegacyArchive } from '../image/fixtures.js';

let dir: string;
let currentToken = '';
let registry: TestRegistry;
let proxy: FaultProxy;
const archives: Record<string, string> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'image-plan-'));
  registry = await startRegistry('bearer', { tokenPassword: () => currentToken });
  proxy = await createFaultProxy({ target: registry.url, route: registryRouteOf });
  const specs: Array<[string, string, string]> = [
    ['good', 'amd64', 'good'],
    ['other', 'amd64', 'other'],
    ['arm', 'arm64', 'arm'],
  ];
  for (const [name, arch, content] of specs) {
    const path = join(dir, `${name}.tar`);
    await writeLegacyArchive(path, makeImage({ architecture: arch, labels: { [RUNTIME_VERSION_LABEL]: '3.1-3' }, layers: [{ 'data.bin': noise(200_000) }, { 'app/x.txt': content }] }), `test/${name}:1`);
    archives[name] = path;
  }
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function makeDags(content = 'x'): string {
  const d = mkdtempSync(join(tmpdir(), 'plan-img-dags-'));
  onTestFinished(() => rmSync(d, { recursive: true, force: true }));
  writeFileSync(join(d, 'dag.py'), `from airflow import DAG\n# ${content}\n`);
  return d;
}

async function setup(deployment: Record<string, unknown> = {}): Promise<{ astro: FakeAstro; client: AstroClient; deploymentId: string }> {
  const deploymentId = `cldep${Math.random().toString(36).slice(2, 10)}`;
  const astro = await createFakeAstro({ deployments: [{ id: deploymentId, runtimeVersion: '3.1-2', ...deployment }], imageRegistry: new URL(proxy.url).host, rolloutDelayMs: 30 });
  onTestFinished(() => astro.close());
  currentToken = astro.token;
  proxy.resetStats();
  return { astro, client: new AstroClient({ baseUrl: astro.baseUrl, token: astro.token }), deploymentId };
}

const wait = { pollIntervalMs: 20 };

describe('deployImage dryRun', () => {
  it('validates the image and plans the deploy without a request to the registry or a deploy created', async () => {
    const { astro, client, deploymentId } = await setup();
    const { dryRun, plan } = await client.deployImage({ deploymentId, image: archives.good!, dagsDir: makeDags(), dryRun: true });
    expect(dryRun).toBe(true);
    expect(plan).toMatchObject({
      deployType: 'IMAGE_AND_DAG',
      wouldDeploy: true,
      refusals: [],
      image: { platform: 'linux/amd64', runtimeVersion: '3.1-3', valid: true },
      tests: { mode: 'none', suites: [] },
      impact: { deployType: 'IMAGE_AND_DAG', restartsComponents: true, taskGraceHours: 24 },
      unchanged: { unchanged: false, image: false, dags: false },
    });
    expect(plan.image!.configDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(plan.image!.checks).toContain('platform linux/amd64');
    expect(plan.bundle?.files).toBe(1);
    expect(plan.description).toBe(`[astro-deploy-sdk image:sha256:${plan.image!.configDigest.slice(7, 39)} dags:sha256:${plan.bundle!.fingerprint.slice(0, 32)}]`);
    expect(plan.impact.details.join(' ')).toMatch(/webserver/);
    expect(plan.impact.details.join(' ')).toMatch(/zombie/);
    expect(plan.impact.details.join(' ')).toMatch(/execution_timeout/);
    expect(proxy.stats.requests).toBe(0);
    expect(new Set(astro.requests.map((r) => r.method))).toEqual(new Set(['GET']));
    expect(astro.deploys(deploymentId)).toHaveLength(0);
  });

  it('collects the image refusal and the tests that could not run on an archive', async () => {
    const { client, deploymentId } = await setup();
    const { plan } = await client.deployImage({ deploymentId, image: archives.arm!, dagsDir: makeDags(), tests: 'parse', dryRun: true });
    expect(plan.refusals.map((r) => r.code)).toEqual(['ASTRO_IMAGE_PLATFORM_MISMATCH', 'ASTRO_DEPLOY_REFUSED']);
    expect(plan.image).toMatchObject({ platform: 'linux/arm64', valid: false });
    expect(plan.tests).toEqual({ mode: 'parse', suites: ['parse'] });
    expect(plan.wouldDeploy).toBe(false);
    expect(proxy.stats.requests).toBe(0);
  });
});

describe('deployImage impact notice', () => {
  it('emits deploy:impact (components restart, running tasks go on up to 24 h) before the deploy is created', async () => {
    const { client, deploymentId } = await setup();
    const events: DeployImageEvent[] = [];
    await client.deployImage({ deploymentId, image: archives.good!, onEvent: (e) => events.push(e) });
    const types = events.map((e) => e.type);
    expect(types.indexOf('deploy:impact')).toBeGreaterThan(types.indexOf('deploy:image-validated'));
    expect(types.indexOf('deploy:impact')).toBeLessThan(types.indexOf('deploy:created'));
    const impact = events.find((e) => e.type === 'deploy:impact');
    expect(impact).toMatchObject({ impact: { deployType: 'IMAGE_ONLY', restartsComponents: true, taskGraceHours: 24 } });
  });
});

describe('deployImage skipUnchanged (by image digest)', () => {
  it('skips an image the deployment already runs: no deploy created, nothing pushed; another image deploys', async () => {
    const { astro, client, deploymentId } = await setup();
    const first = (await client.deployImage({ deploymentId, image: archives.good!, wait })) as DeployImageResult;
    expect(astro.deploys(deploymentId)[0]!.description).toBe(`[astro-deploy-sdk image:sha256:${first.image.configDigest.slice(7, 39)}]`);
    proxy.resetStats();
    // Another client, as another CI runner would be: only Astro's records are shared.
    const other = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
    const skipped = await other.deployImage({ deploymentId, image: archives.good!, skipUnchanged: true });
    expect(skipped).toMatchObject({ skipped: 'unchanged', imageId: first.image.configDigest, imageTag: first.deploy.imageTag, runningDeployId: first.deployId });
    expect(proxy.stats.requests).toBe(0);
    expect(astro.deploys(deploymentId)).toHaveLength(1);

    const second = (await other.deployImage({ deploymentId, image: archives.other!, skipUnchanged: true })) as DeployImageResult;
    expect(second.deployId).toBeDefined();
    expect(astro.deploys(deploymentId)).toHaveLength(2);
  });

  it('with DAGs: skipped only when both the image and the bundle are the running ones', async () => {
    const { astro, client, deploymentId } = await setup();
    const dags = makeDags('v1');
    await client.deployImage({ deploymentId, image: archives.good!, dagsDir: dags, wait });
    const skipped = await client.deployImage({ deploymentId, image: archives.good!, dagsDir: dags, skipUnchanged: true });
    expect(skipped).toMatchObject({ skipped: 'unchanged', check: { image: true, dags: true } });
    const changed = (await client.deployImage({ deploymentId, image: archives.good!, dagsDir: makeDags('v2'), skipUnchanged: true, wait })) as DeployImageResult;
    expect(changed.deployId).toBeDefined();
    expect(astro.deploys(deploymentId)).toHaveLength(2);
  });

  it('never skips while an image rollout is in flight (there is no desired image tag to compare with)', async () => {
    const { astro, client, deploymentId } = await setup();
    await client.deployImage({ deploymentId, image: archives.good!, wait });
    astro.deployment(deploymentId).status = 'DEPLOYING';
    const result = (await client.deployImage({ deploymentId, image: archives.good!, skipUnchanged: true })) as DeployImageResult;
    expect(result.deployId).toBeDefined();
  });
});
