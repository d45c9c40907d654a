/**
 * deployProject end to end with real parts: a real build on the Docker engine of an Astro-like
 * project (base image with real Python and pytest, test/helpers/runtime-image.ts), the tests gate
 * in real containers, a real registry (distribution 2.8 with a bearer challenge, user `cli` and
 * the fake Astro's token, as Astro's registry), and the fake Astro for the API and the DAG blob.
 * After every case the project folder is byte-identical to what it was.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { AstroClient, isAstroError, type DeployProjectEvent, type DeployProjectParams } from '../../src/index.js';
import { LayerCache } from '../../src/image/index.js';
import { createFakeAstro, type FakeAstro } from '../../src/testing/index.js';
import { getTestDocker, removeImagesAfterRun, uniqueName } from '../helpers/docker.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { getRuntimeImage } from '../helpers/runtime-image.js';
import { skopeoInfo } from '../image/verify.js';
import { astroProject, filesInImage, guardProject, makeProject, type ProjectFile } from './helpers.js';

let base: string;
let docker: Dockerode;
let registry: TestRegistry;
/** The registry's token server accepts user `cli` with the token of the current test's fake Astro. */
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

async function setup(deployment: Record<string, unknown> = {}): Promise<{ astro: FakeAstro; client: AstroClient; deploymentId: string }> {
  const deploymentId = uniqueName('cldep').replace(/[^a-z0-9]/g, '');
  const astro = await createFakeAstro({ deployments: [{ id: deploymentId, runtimeVersion: '3.1-2', ...deployment }], imageRegistry: registry.host, rolloutDelayMs: 100 });
  onTestFinished(() => astro.close());
  currentToken = astro.token;
  return { astro, client: new AstroClient({ baseUrl: astro.baseUrl, token: astro.token }), deploymentId };
}

/** A project for `deploymentId`, its guard, and deploy() with the test settings (no network in RUN steps). */
async function project(deploymentId: string | undefined, files: Record<string, ProjectFile | null> = {}, emptyDirs: string[] = []) {
  const extra: Record<string, ProjectFile | null> = { ...files };
  if (deploymentId) extra['.astro/config.yaml'] = `project:\n    name: test-project\n    deployment: ${deploymentId}\n`;
  const dir = await makeProject(astroProject(base, extra));
  for (const d of emptyDirs) mkdirSync(join(dir, d), { recursive: true });
  const unchanged = await guardProject(dir);
  const tag = `astro-sdk-test/deploy-${uniqueName()}:latest`;
  tags.push(tag);
  const events: DeployProjectEvent[] = [];
  const deploy = (client: AstroClient, params: Partial<Omit<DeployProjectParams, 'dryRun' | 'skipUnchanged'>> = {}) =>
    client.deployProject({ projectDir: dir, tag, docker, build: { networkMode: 'none' }, onEvent: (e) => events.push(e), ...params });
  return { dir, unchanged, tag, events, deploy };
}

function bundleFiles(astro: FakeAstro, deploymentId: string): string[] {
  const blob = astro.blob.read('dags', `${astro.organizationId}/${deploymentId}`);
  if (!blob) return [];
  const dir = mkdtempSync(join(tmpdir(), 'bundle-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'b.tar.gz'), blob);
  return execFileSync('tar', ['-tzf', join(dir, 'b.tar.gz')], { encoding: 'utf8' }).trim().split('\n').filter((n) => !n.endsWith('/')).sort();
}

/** Test containers (the parse check's label) of `imageId` still on the daemon. */
async function testContainersOf(imageId: string): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: { label: ['io.astro-deploy-sdk.purpose=dag-parse-check'] } });
  return list.filter((c) => c.ImageID === imageId).map((c) => c.Id);
}

describe('deployProject', () => {
  it('DAG deploys on: the image lacks dags/, the bundle carries them, IMAGE_AND_DAG finalized with the version; deploymentId from .astro/config.yaml', async () => {
    const { astro, client, deploymentId } = await setup();
    const p = await project(deploymentId, { '.dockerignore': 'include/private*\n', 'include/private.key': 'not for the image' });
    const result = await p.deploy(client, { description: 'project deploy', wait: { pollIntervalMs: 50 } });

    expect(result.deployType).toBe('IMAGE_AND_DAG');
    // The default push method is 'auto': it says which push it chose, and the result says which pushed.
    const chosen = p.events.find((e) => e.type === 'image:push-method') as { method: string } | undefined;
    expect(chosen?.method).toBe(result.push.method);
    expect(astro.requestsFor('deploys.create')[0]!.body).toMatchObject({
      type: 'IMAGE_AND_DAG',
      description: `project deploy [astro-deploy-sdk image:sha256:${result.imageId.slice(7, 39)} dags:sha256:${result.bundle!.fingerprint.slice(0, 32)}]`,
    });
    expect(result.dagTarballVersion).toMatch(/Z$/);
    expect(astro.requestsFor('deploys.finalize')[0]!.body).toEqual({ dagTarballVersion: result.dagTarballVersion });
    expect(result.bundle).toMatchObject({ files: 2 });
    expect(bundleFiles(astro, deploymentId)).toEqual(['dags/etl/load.py', 'dags/example_dag.py']);
    // The image: built without dags/, .dockerignore honoured, the rest of the project in.
    const files = await filesInImage(p.tag);
    expect(files.some((f) => f.startsWith('dags/'))).toBe(false);
    expect(files).toEqual(expect.arrayContaining(['include/sql/query.sql', 'plugins/helpers.py', 'requirements.txt']));
    expect(files).not.toContain('include/private.key');
    // Pushed as user cli to the deploy's repository; the digest is the registry's.
    expect(result.reference).toBe(`${registry.host}/${astro.organizationId}/${deploymentId}:${result.imageTag}`);
    const info = await skopeoInfo(result.reference, { username: 'cli', password: astro.token });
    expect(info.Digest).toBe(result.digest);
    expect(info.Architecture).toBe('amd64');
    expect(result.imageId).toBe((await docker.getImage(p.tag).inspect()).Id);
    expect(result.tests).toMatchObject({ mode: 'parse', parse: { status: 'passed' } });
    expect(result.rollout?.deployment.imageTag).toBe(result.imageTag);
    expect(result.rollout?.deployment.dagTarballVersion).toBe(result.dagTarballVersion);
    for (const phase of ['build', 'validate', 'tests', 'bundle', 'create', 'push', 'upload', 'finalize', 'wait', 'total'] as const) {
      expect(result.timings[phase]).toBeGreaterThanOrEqual(0);
    }
    // Order: build, validation, tests, and only then the deploy record.
    const types = p.events.map((e) => e.type);
    const at = (t: string) => types.indexOf(t as DeployProjectEvent['type']);
    expect(at('build:start')).toBeLessThan(at('build:complete'));
    expect(at('build:complete')).toBeLessThan(at('deploy:image-validated'));
    expect(at('deploy:image-validated')).toBeLessThan(types.lastIndexOf('tests:suite'));
    expect(types.lastIndexOf('tests:suite')).toBeLessThan(at('deploy:created'));
    expect(at('deploy:created')).toBeLessThan(at('deploy:finalized'));
    // The push and the bundle upload run at once: the upload starts before the push is complete.
    expect(at('deploy:created')).toBeLessThan(at('upload:start'));
    expect(at('upload:start')).toBeLessThan(at('image:push-complete'));
    expect(at('image:push-complete')).toBeLessThan(at('deploy:finalized'));
    // The test container was removed while the deploy went on, and is gone when it resolves.
    expect(await testContainersOf(result.imageId)).toEqual([]);
    expect(JSON.stringify(p.events)).not.toContain(astro.token);
    await p.unchanged();
  }, 900_000);

  it('a bundle upload that fails cancels the push running beside it: the upload error names the deploy, nothing is finalized', async () => {
    const { astro, client, deploymentId } = await setup();
    for (const route of ['blob.putBlob', 'blob.putBlock']) {
      astro.faults.add({ route, times: Infinity, action: { kind: 'status', status: 403, body: '<Error><Code>AuthorizationFailure</Code></Error>' } });
    }
    const p = await project(deploymentId);
    // The native push says image:push-start at once; 'auto' (the default) first asks the registry
    // what it holds, which can outlast the refused upload, so its start would not always be seen.
    const err = await p.deploy(client, { push: { method: 'native' } }).catch((e: unknown) => e);
    expect(isAstroError(err)).toBe(true);
    expect((err as { code: string }).code).toMatch(/^ASTRO_UPLOAD_/);
    const created = astro.requestsFor('deploys.create');
    expect(created).toHaveLength(1);
    expect((err as { deployId?: string }).deployId).toMatch(/\S/);
    expect(astro.requestsFor('deploys.finalize')).toHaveLength(0);
    const types = p.events.map((e) => e.type);
    expect(types).toContain('image:push-start');
    // The registry needs seconds for this image's new layers; the refused upload takes milliseconds.
    expect(types).not.toContain('image:push-complete');
    expect(types).not.toContain('deploy:finalized');
    const built = p.events.find((e) => e.type === 'build:complete') as { imageId: string };
    expect(await testContainersOf(built.imageId)).toEqual([]);
    await p.unchanged();
  }, 900_000);

  it('a created deploy without imageTag is refused before the push or the upload starts, naming the deploy', async () => {
    const { astro, client, deploymentId } = await setup();
    const created = { id: 'cldeploynotag0000000000002', deploymentId, type: 'IMAGE_AND_DAG', status: 'INITIALIZED', imageRepository: `images.example.test/${deploymentId}`, dagsUploadUrl: 'http://127.0.0.1:9/unused' };
    astro.faults.add({ route: 'deploys.create', action: { kind: 'status', status: 200, body: created } });
    const p = await project(deploymentId);
    const err = await p.deploy(client).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_API_SCHEMA')).toBe(true);
    expect((err as { fields: string[] }).fields).toEqual(['imageTag']);
    expect((err as { deployId?: string }).deployId).toBe(created.id);
    const types = p.events.map((e) => e.type);
    expect(types).not.toContain('image:push-start');
    expect(types).not.toContain('upload:start');
    expect(astro.requestsFor('deploys.finalize')).toHaveLength(0);
  }, 900_000);

  it('DAG deploys off: the DAGs are baked into the image and finalize has an empty body', async () => {
    const { astro, client, deploymentId } = await setup({ isDagDeployEnabled: false });
    const p = await project(undefined);
    const result = await p.deploy(client, { deploymentId });
    expect(result.deployType).toBe('IMAGE_AND_DAG');
    expect(result.dagTarballVersion).toBeUndefined();
    expect(result.upload).toBeUndefined();
    expect(astro.requestsFor('deploys.finalize')[0]!.body).toEqual({});
    expect(await filesInImage(p.tag)).toEqual(expect.arrayContaining(['dags/example_dag.py', 'dags/etl/load.py']));
    expect(bundleFiles(astro, deploymentId)).toEqual([]);
    await p.unchanged();
  }, 900_000);

  it("an empty layer cache (an ephemeral runner): the layers the deployment's running image shares are skipped, learned from that image in the registry", async () => {
    const { client, deploymentId } = await setup({ isDagDeployEnabled: false });
    // The first deploy, as from another machine: nothing in its cache, nothing for a seed.
    const first = await project(undefined);
    const running = await first.deploy(client, { deploymentId, push: { layerCache: new LayerCache() } });
    expect(running.push.method).toBe('daemon');
    await client.waitForRollout({ deploymentId, deployId: running.deployId });

    const next = await project(undefined, { 'include/changed.txt': 'a change the image carries\n' });
    const result = await next.deploy(client, { deploymentId, push: { layerCache: new LayerCache() } });
    const chosen = next.events.find((e) => e.type === 'image:push-method');
    expect(chosen).toMatchObject({ method: 'native', reason: expect.stringMatching(/deployment's current image/) });
    expect(result.push.method).toBe('native');
    const statuses = result.push.layers.map((l) => l.status);
    // The base image's layers are in the registry as the first push sent them; the project's are new.
    expect(statuses.filter((s) => s === 'skipped').length).toBeGreaterThanOrEqual(1);
    expect(statuses).toContain('pushed');
    const skippedBytes = result.push.layers.filter((l) => l.status === 'skipped').reduce((n, l) => n + l.size, 0);
    expect(skippedBytes).toBeGreaterThan(result.push.layers.filter((l) => l.status === 'pushed').reduce((n, l) => n + l.size, 0));
    await next.unchanged();
  }, 900_000);

  it('a DAG that fails to import stops the deploy with ASTRO_IMAGE_PARSE_FAILED and nothing is created at Astro', async () => {
    const { astro, client, deploymentId } = await setup();
    const p = await project(deploymentId, { 'dags/broken.py': 'import not_installed_anywhere\n' });
    const err = await p.deploy(client).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_IMAGE_PARSE_FAILED', name: 'ProjectTestsError', suite: 'parse' });
    expect((err as { output: string }).output).toContain("No module named 'not_installed_anywhere'");
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);
    expect(astro.requestsFor('deploys.finalize')).toHaveLength(0);
    await p.unchanged();
  }, 900_000);

  it("tests: 'pytest' with a failing test under tests/ gives ASTRO_PROJECT_TESTS_FAILED, nothing created; force deploys anyway", async () => {
    const { astro, client, deploymentId } = await setup();
    const p = await project(deploymentId, { 'tests/test_dags.py': 'def test_rule():\n    assert "prod" == "dev", "wrong environment"\n' });
    const err = await p.deploy(client, { tests: 'pytest' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_PROJECT_TESTS_FAILED', suite: 'pytest', exitCode: 1 });
    expect((err as { output: string }).output).toContain('wrong environment');
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);

    const forced = await p.deploy(client, { tests: 'pytest', force: true });
    expect(forced.tests).toEqual({ mode: 'pytest', pytest: { status: 'skipped', reason: 'force' } });
    expect(astro.requestsFor('deploys.create')).toHaveLength(1);
    expect(forced.digest).toMatch(/^sha256:/);
    await p.unchanged();
  }, 900_000);

  it('a failing RUN step gives ASTRO_IMAGE_BUILD_FAILED with the step, and nothing is created', async () => {
    const { astro, client, deploymentId } = await setup();
    const p = await project(deploymentId, { Dockerfile: `FROM ${base}\nRUN echo "compiling wheels" && echo "gcc: fatal error" >&2 && false\n` });
    const err = await p.deploy(client).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_IMAGE_BUILD_FAILED', name: 'ImageBuildError' });
    expect((err as { step: string }).step).toContain('compiling wheels');
    expect((err as { outputTail: string[] }).outputTail).toEqual(expect.arrayContaining(['compiling wheels', 'gcc: fatal error']));
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);
    await p.unchanged();
  }, 900_000);

  it('Remote Execution: dags/ is kept out of the image and not shipped, as the CLI does', async () => {
    const { astro, client, deploymentId } = await setup({ remoteExecution: true });
    const p = await project(deploymentId);
    const result = await p.deploy(client, { tests: 'none' });
    expect(result.deployType).toBe('IMAGE_AND_DAG');
    expect(result.bundle).toBeUndefined();
    expect((await filesInImage(p.tag)).some((f) => f.startsWith('dags/'))).toBe(false);
    expect(astro.requestsFor('deploys.finalize')[0]!.body).toEqual({ dagTarballVersion: '' });
    await p.unchanged();
  }, 900_000);

  it('a CI/CD-enforced deployment with a user token: ASTRO_CICD_ENFORCED before anything is built', async () => {
    const { astro, deploymentId } = await setup({ isCicdEnforced: true });
    const userClient = new AstroClient({ baseUrl: astro.baseUrl, token: astro.mintToken({ permissions: [] }), organizationId: astro.organizationId });
    const p = await project(deploymentId);
    const err = await p.deploy(userClient).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_CICD_ENFORCED' });
    expect(p.events.some((e) => e.type === 'build:start')).toBe(false);
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);
    await p.unchanged();
  });

  it('DAG deploys on with no DAG file: ASTRO_BUNDLE_EMPTY before anything is built or created', async () => {
    const { astro, client, deploymentId } = await setup();
    const p = await project(deploymentId, { 'dags/example_dag.py': null, 'dags/etl/load.py': null }, ['dags']);
    const err = await p.deploy(client).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_BUNDLE_EMPTY' });
    expect(p.events.some((e) => e.type === 'build:start')).toBe(false);
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);
    await p.unchanged();
  });

  it('a folder without a Dockerfile is ASTRO_PROJECT_NOT_FOUND before any request', async () => {
    const { astro, client, deploymentId } = await setup();
    const dir = await makeProject({ 'dags/a.py': 'x = 1\n' });
    const unchanged = await guardProject(dir);
    const err = await client.deployProject({ projectDir: dir, deploymentId, docker }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_PROJECT_NOT_FOUND', name: 'ProjectError' });
    expect(astro.requests).toHaveLength(0);
    await unchanged();
  });

  it('an abort mid-build rejects with ASTRO_ABORTED, stops the build on the daemon and creates nothing', async () => {
    const { astro, client, deploymentId } = await setup();
    const token = String(5000 + Math.floor(Math.random() * 4000));
    const p = await project(deploymentId, { Dockerfile: `FROM ${base}\nRUN sleep ${token}.25\n` });
    const controller = new AbortController();
    const deploying = p.deploy(client, {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'build:step' && e.status === 'started' && e.name.includes(`sleep ${token}`)) setTimeout(() => controller.abort(), 1500);
      },
    }).catch((e: unknown) => e);
    const err = await deploying;
    expect(isAstroError(err, 'ASTRO_ABORTED')).toBe(true);
    const deadline = Date.now() + 30_000;
    let alive = true;
    while (alive && Date.now() < deadline) {
      alive = readdirSync('/proc').some((pid) => /^\d+$/.test(pid) && (() => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`sleep ${token}.25`);
        } catch {
          return false;
        }
      })());
      if (alive) await new Promise((r) => setTimeout(r, 200));
    }
    expect(alive).toBe(false);
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);
    await p.unchanged();
  }, 900_000);
});
