/**
 * deployProject: dryRun (a local build, nothing pushed or created) and skipUnchanged (the rebuilt
 * image, from the build cache, has the same config digest as the one the deployment runs), with a
 * real build on the Docker engine, a real registry and the fake Astro.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import Dockerode from 'dockerode';
import { AstroClient, type DeployProjectEvent, type DeployProjectResult } from '../../src/index.js';
import { createFakeAstro, type FakeAstro } from '../../src/testing/index.js';
import { getTestDocker, removeImagesAfterRun, uniqueName } from '../helpers/docker.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { getRuntimeImage } from '../helpers/runtime-image.js';
import { astroProject, guardProject, makeProject } from './helpers.js';

let base: string;
let docker: Dockerode;
let registry: TestRegistry;
let currentToken = '';
const tags: string[] = [];

beforeAll(async () => {
  ({ docker } = await getTestDocker());
  registry = await startRegistry('bearer', { tokenPassword: () => currentToken });
  base = await getRuntimeImage();
}, 900_000);

afterAll(async () => {
  await registry?.stop();
  await removeImagesAfterRun(...tags);
});

async function setup(): Promise<{ astro: FakeAstro; client: AstroClient; deploymentId: string; dir: string; tag: string; unchanged: () => Promise<void> }> {
  const deploymentId = uniqueName('cldep').replace(/[^a-z0-9]/g, '');
  const astro = await createFakeAstro({ deployments: [{ id: deploymentId, runtimeVersion: '3.1-2' }], imageRegistry: registry.host, rolloutDelayMs: 50 });
  onTestFinished(() => astro.close());
  currentToken = astro.token;
  const dir = await makeProject(astroProject(base, { '.astro/config.yaml': `project:\n    name: test-project\n    deployment: ${deploymentId}\n` }));
  const tag = `astro-sdk-test/plan-${uniqueName()}:latest`;
  tags.push(tag);
  return { astro, client: new AstroClient({ baseUrl: astro.baseUrl, token: astro.token }), deploymentId, dir, tag, unchanged: await guardProject(dir) };
}

describe('deployProject dryRun and skipUnchanged', () => {
  it('dryRun builds locally and plans: image checks, tests it would run, bundle, impact; nothing pushed, nothing created', async () => {
    const { astro, client, deploymentId, dir, tag, unchanged } = await setup();
    const events: DeployProjectEvent[] = [];
    const { plan } = await client.deployProject({ projectDir: dir, tag, docker, build: { networkMode: 'none' }, dryRun: true, onEvent: (e) => events.push(e) });
    expect(plan).toMatchObject({
      deploymentId,
      deployType: 'IMAGE_AND_DAG',
      wouldDeploy: true,
      refusals: [],
      image: { platform: 'linux/amd64', valid: true, reference: tag },
      tests: { mode: 'parse', suites: ['parse'] },
      impact: { restartsComponents: true },
    });
    expect(plan.bundle?.paths).toEqual(['etl/load.py', 'example_dag.py']);
    expect(events.map((e) => e.type)).toContain('build:complete');
    expect(events.map((e) => e.type)).not.toContain('tests:suite');
    expect(registry.tokenRequests).toHaveLength(0);
    expect(new Set(astro.requests.map((r) => r.method))).toEqual(new Set(['GET']));
    expect(astro.deploys(deploymentId)).toHaveLength(0);
    await unchanged();
  });

  it('skipUnchanged: the rebuilt project (same image from the build cache, same dags/) is not deployed again', async () => {
    const { astro, client, deploymentId, dir, tag } = await setup();
    const deploy = (extra: { skipUnchanged?: true } = {}) => client.deployProject({ projectDir: dir, tag, docker, build: { networkMode: 'none' }, tests: 'none', wait: { pollIntervalMs: 30 }, ...extra });
    const first = (await deploy()) as DeployProjectResult;
    const tokenRequests = registry.tokenRequests.length;
    const skipped = await deploy({ skipUnchanged: true });
    expect(skipped).toMatchObject({ skipped: 'unchanged', imageId: first.imageId, fingerprint: first.bundle!.fingerprint, check: { image: true, dags: true } });
    expect(registry.tokenRequests.length).toBe(tokenRequests);
    expect(astro.deploys(deploymentId)).toHaveLength(1);
  });
});
