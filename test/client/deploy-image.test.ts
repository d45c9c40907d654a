/**
 * deployImage end to end: the fake Astro hands out an imageRepository on a REAL registry
 * (distribution 2.8, bearer challenge like Astro's), images come from archives built in the test
 * or from a real Docker engine, and the pushed image is checked with skopeo.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import type Dockerode from 'dockerode';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CountingAgent } from '../helpers/dispatchers.js';
import { AstroClient, isAstroError, type DeployImageEvent } from '../../src/index.js';
import { openImageArchive, RUNTIME_VERSION_LABEL } from '../../src/image/index.js';
import { DiskArchive } from '../../src/image/source.js';
import { createFakeAstro, createFaultProxy, type FakeAstro, type FaultProxy } from '../../src/testing/index.js';
import { buildScratchImage, getTestDocker, removeImages, uniqueName } from '../helpers/docker.js';
import { registryRouteOf, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startForwardProxy, withProxyEnv } from '../helpers/forward-proxy.js';
import { makeImage, noise, writeLegacyArchive, type LayerSpec } from '../image/fixtures.js';
import { skopeoInfo } from '../image/verify.js';
import { getRuntimeImage } from '../helpers/runtime-image.js';
import { INTEGRITY_TEST } from '../project/helpers.js';

let dir: string;
/** The registry's token server accepts user `cli` with the API token of the current test's fake Astro. */
let currentToken = '';
let registry: TestRegistry;
let proxy: FaultProxy;
const archives: Record<string, string> = {};

function archiveFor(name: string, labels: Record<string, string>, arch = 'amd64') {
  return { name, labels, arch };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deploy-image-'));
  registry = await startRegistry('bearer', { tokenPassword: () => currentToken });
  proxy = await createFaultProxy({ target: registry.url, route: registryRouteOf });
  const specs = [
    archiveFor('good', { [RUNTIME_VERSION_LABEL]: '3.1-3' }),
    archiveFor('arm', { [RUNTIME_VERSION_LABEL]: '3.1-3' }, 'arm64'),
    archiveFor('old', { [RUNTIME_VERSION_LABEL]: '3.0-1' }),
    archiveFor('unlisted', { [RUNTIME_VERSION_LABEL]: '3.1-99' }),
    archiveFor('nolabel', {}),
  ];
  for (const s of specs) {
    const path = join(dir, `${s.name}.tar`);
    await writeLegacyArchive(path, makeImage({ architecture: s.arch, labels: s.labels, layers: [{ 'data.bin': noise(600_000) }, { 'app/x.txt': s.name }] }), `test/${s.name}:1`);
    archives[s.name] = path;
  }
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function makeDags(): string {
  const d = mkdtempSync(join(tmpdir(), 'img-dags-'));
  onTestFinished(() => rmSync(d, { recursive: true, force: true }));
  writeFileSync(join(d, 'dag.py'), 'from airflow import DAG\n');
  return d;
}

async function setup(deployment: Record<string, unknown> = {}, viaProxy = false): Promise<{ astro: FakeAstro; client: AstroClient; events: DeployImageEvent[] }> {
  const astro = await createFakeAstro({
    deployments: [{ id: uniqueName('cldep').replace(/[^a-z0-9]/g, ''), runtimeVersion: '3.1-2', ...deployment }],
    imageRegistry: viaProxy ? new URL(proxy.url).host : registry.host,
    rolloutDelayMs: 100,
  });
  onTestFinished(() => astro.close());
  currentToken = astro.token;
  const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
  return { astro, client, events: [] };
}

describe('deployImage', () => {
  it('IMAGE_ONLY: validates, pushes to imageRepository:imageTag as user cli, finalizes with an empty DAG version, waits for the tag', async () => {
    const { astro, client, events } = await setup();
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    const result = await client.deployImage({ deploymentId, image: archives.good!, wait: { pollIntervalMs: 50 }, onEvent: (e) => events.push(e) });
    expect(result.deployType).toBe('IMAGE_ONLY');
    expect(result.reference).toBe(`${registry.host}/${astro.organizationId}/${deploymentId}:${result.deploy.imageTag}`);
    expect(astro.requestsFor('deploys.finalize')[0]!.body).toEqual({ dagTarballVersion: '' });
    expect(result.rollout?.deployment.imageTag).toBe(result.deploy.imageTag);
    const info = await skopeoInfo(`${result.reference}`, { username: 'cli', password: astro.token });
    expect(info.Digest).toBe(result.push.digest);
    expect(info.Architecture).toBe('amd64');
    // The registry's token server saw the Astro convention: user `cli`.
    expect(registry.tokenRequests.some((t) => t.username === 'cli')).toBe(true);
    const types = events.map((e) => e.type);
    expect(types.indexOf('deploy:image-validated')).toBeLessThan(types.indexOf('deploy:created'));
    expect(types).toContain('image:push-complete');
    expect(JSON.stringify(events)).not.toContain(astro.token);
  });

  it('IMAGE_AND_DAG: ships the DAG bundle too and waits for both', async () => {
    const { astro, client } = await setup();
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    const result = await client.deployImage({ deploymentId, image: archives.good!, dagsDir: makeDags(), wait: { pollIntervalMs: 50 } });
    expect(result.deployType).toBe('IMAGE_AND_DAG');
    expect(result.dagTarballVersion).toMatch(/Z$/);
    expect(astro.requestsFor('deploys.finalize')[0]!.body).toEqual({ dagTarballVersion: result.dagTarballVersion });
    const d = astro.deployment(deploymentId);
    expect(d.dagTarballVersion).toBe(result.dagTarballVersion);
    expect(d.imageTag).toBe(result.deploy.imageTag);
  });

  it('a created image deploy without imageTag is refused, naming the deploy, before a byte is pushed', async () => {
    const { astro, client } = await setup({}, true);
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    const created = { id: 'cldeploynotag0000000000001', deploymentId, type: 'IMAGE_ONLY', status: 'INITIALIZED', imageRepository: `${registry.host}/${astro.organizationId}/${deploymentId}` };
    astro.fail({ route: 'deploys.create', action: { kind: 'status', status: 200, body: created } });
    proxy.resetStats();
    const err = await client.deployImage({ deploymentId, image: archives.good! }).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_API_SCHEMA')).toBe(true);
    expect((err as { fields: string[] }).fields).toEqual(['imageTag']);
    expect((err as { deployId?: string }).deployId).toBe(created.id);
    expect((err as Error).message).toContain(created.id);
    expect(proxy.stats.requests).toBe(0);
    expect(astro.requestsFor('deploys.finalize')).toHaveLength(0);
  });

  it('DAG deploys disabled: an IMAGE_AND_DAG deploy finalized with an empty body', async () => {
    const { astro, client } = await setup({ isDagDeployEnabled: false });
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    const result = await client.deployImage({ deploymentId, image: archives.good!, dagsDir: makeDags() });
    expect(result.deployType).toBe('IMAGE_AND_DAG');
    expect(result.upload).toBeUndefined();
    expect(astro.requestsFor('deploys.finalize')[0]!.body).toEqual({});
  });

  for (const [name, code] of [
    ['arm', 'ASTRO_IMAGE_PLATFORM_MISMATCH'],
    ['old', 'ASTRO_IMAGE_RUNTIME_DOWNGRADE'],
    ['unlisted', 'ASTRO_IMAGE_RUNTIME_UNSUPPORTED'],
    ['nolabel', 'ASTRO_IMAGE_NOT_RUNTIME'],
  ] as const) {
    it(`fails validation (${code}) before creating a deploy or pushing a byte`, async () => {
      const { astro, client } = await setup({}, true);
      const deploymentId = (await client.deployments.listAll())[0]!.id;
      proxy.resetStats();
      const err = await client.deployImage({ deploymentId, image: archives[name]! }).catch((e) => e);
      expect(err.code).toBe(code);
      expect(astro.requestsFor('deploys.create')).toHaveLength(0);
      expect(proxy.stats.requests).toBe(0);
      if (name === 'arm') expect(err.message).toMatch(/--platform=linux\/amd64/);
    });
  }

  it('skips the parse for runtimes older than 4.1.0, as the CLI does', async () => {
    const path = join(dir, 'ancient.tar');
    await writeLegacyArchive(path, makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '4.0.0' }, layers: [{ 'a.txt': 'a' }] }), 'test/ancient:1');
    const astro = await createFakeAstro({ deployments: [{ id: 'clancient', runtimeVersion: '4.0.0' }], runtimeReleases: ['4.0.0'], imageRegistry: registry.host });
    onTestFinished(() => astro.close());
    currentToken = astro.token;
    const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
    const events: DeployImageEvent[] = [];
    const result = await client.deployImage({ deploymentId: 'clancient', image: path, dagsDir: makeDags(), tests: 'parse', onEvent: (e) => events.push(e) });
    expect(result.tests).toEqual({ mode: 'parse', parse: { status: 'skipped', reason: 'runtime-too-old' } });
    expect(events.find((e) => e.type === 'tests:suite')).toMatchObject({ suite: 'parse', status: 'skipped', reason: 'runtime-too-old' });
  });

  it('refuses the tests for an archive given as a plain path, before any deploy', async () => {
    const path = join(dir, 'modern.tar');
    await writeLegacyArchive(path, makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '4.2.0' }, layers: [{ 'a.txt': 'a' }] }), 'test/modern:1');
    const astro = await createFakeAstro({ deployments: [{ id: 'clmodern', runtimeVersion: '4.2.0' }], runtimeReleases: ['4.2.0'], imageRegistry: registry.host });
    onTestFinished(() => astro.close());
    currentToken = astro.token;
    const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
    const err = await client.deployImage({ deploymentId: 'clmodern', image: path, dagsDir: makeDags(), tests: 'parse' }).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_DEPLOY_REFUSED')).toBe(true);
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);
  });

  it('recovers from a reset mid-upload at the registry and a lost finalize answer: finalized exactly once', async () => {
    const { astro, client } = await setup({}, true);
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    proxy.faults.add({ route: /PATCH/, action: { kind: 'reset', afterBodyBytes: 100_000 } });
    astro.fail({ route: 'deploys.finalize', action: { kind: 'dropResponse' } });
    const result = await client.deployImage({ deploymentId, image: archives.good!, push: { layerCache: false, chunkSizeBytes: 256 * 1024, retry: { initialDelayMs: 20, maxDelayMs: 100 } } });
    expect(proxy.faults.pending()).toEqual([]);
    expect(astro.deploys(deploymentId)[0]!.finalizeCount).toBe(1);
    const info = await skopeoInfo(result.reference, { username: 'cli', password: astro.token });
    expect(info.Digest).toBe(result.push.digest);
  });
});

describe('deployImage opens an archive once (a .tar.gz is gunzipped once) and removes its temp copy', () => {
  let gz: string;
  let armGz: string;
  beforeAll(async () => {
    gz = join(dir, 'good.tar.gz');
    armGz = join(dir, 'arm.tar.gz');
    const layers: LayerSpec[] = [{ 'data.bin': noise(600_000) }, { 'app/x.txt': 'gz' }];
    await writeLegacyArchive(gz, makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-3' }, layers }), 'test/gz:1', { gzip: true });
    await writeLegacyArchive(armGz, makeImage({ architecture: 'arm64', labels: { [RUNTIME_VERSION_LABEL]: '3.1-3' }, layers }), 'test/armgz:1', { gzip: true });
  });

  /** Counts every archive open (validate, push, anything else) and keeps the archives opened. */
  function countOpens(): { count: () => number; archives: () => Promise<DiskArchive[]> } {
    const spy = vi.spyOn(DiskArchive, 'open');
    onTestFinished(() => spy.mockRestore());
    return {
      count: () => spy.mock.calls.length,
      archives: () => Promise.all(spy.mock.results.map((r) => r.value as Promise<DiskArchive>)),
    };
  }

  function tempFolder(): string {
    const d = mkdtempSync(join(tmpdir(), 'img-temp-'));
    onTestFinished(() => rmSync(d, { recursive: true, force: true }));
    return d;
  }

  it('success, as a path and as { archivePath }: one open, one gunzip, nothing left in the temp folder', async () => {
    const { astro, client } = await setup();
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    for (const image of [gz, { archivePath: gz }]) {
      const opens = countOpens();
      const tempDir = tempFolder();
      const result = await client.deployImage({ deploymentId, image, push: { tempDir, layerCache: false } });
      expect(opens.count()).toBe(1);
      const [archive] = await opens.archives();
      expect(archive!.gunzipped).toBe(true);
      expect(archive!.tarPath.startsWith(`${tempDir}/`)).toBe(true);
      expect(archive!.closed).toBe(true);
      expect(existsSync(archive!.tarPath)).toBe(false);
      expect(readdirSync(tempDir)).toEqual([]);
      expect(result.image).toMatchObject({ source: 'archive', reference: gz });
      const info = await skopeoInfo(result.reference, { username: 'cli', password: astro.token });
      expect(info.Digest).toBe(result.push.digest);
      vi.restoreAllMocks();
    }
  });

  it('a push refused by the registry (401) and a validation failure: one open, temp copy removed', async () => {
    const { astro, client } = await setup();
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    // The registry's token server now refuses the API token: the push fails with a 401.
    currentToken = 'not-the-api-token';
    let opens = countOpens();
    let tempDir = tempFolder();
    const err = await client.deployImage({ deploymentId, image: gz, push: { tempDir, layerCache: false } }).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_IMAGE_REGISTRY_AUTH')).toBe(true);
    expect(registry.tokenRequests.some((t) => !t.granted)).toBe(true);
    expect(astro.requestsFor('deploys.create')).toHaveLength(1);
    expect(opens.count()).toBe(1);
    expect((await opens.archives())[0]!.closed).toBe(true);
    expect(readdirSync(tempDir)).toEqual([]);
    currentToken = astro.token;
    vi.restoreAllMocks();

    opens = countOpens();
    tempDir = tempFolder();
    const invalid = await client.deployImage({ deploymentId, image: armGz, push: { tempDir } }).catch((e: unknown) => e);
    expect(isAstroError(invalid, 'ASTRO_IMAGE_PLATFORM_MISMATCH')).toBe(true);
    expect(opens.count()).toBe(1);
    expect(readdirSync(tempDir)).toEqual([]);
  });

  it('an abort mid-push: AstroAbortError, one open, temp copy removed', async () => {
    const { client } = await setup();
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    const opens = countOpens();
    const tempDir = tempFolder();
    const controller = new AbortController();
    const err = await client
      .deployImage({
        deploymentId,
        image: gz,
        push: { tempDir, layerCache: false, chunkSizeBytes: 256 * 1024 },
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === 'image:layer-progress') controller.abort(new Error('user cancelled'));
        },
      })
      .catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_ABORTED')).toBe(true);
    expect((err as Error).name).toBe('AstroAbortError');
    expect(opens.count()).toBe(1);
    expect(readdirSync(tempDir)).toEqual([]);
  });

  it("a caller's { archive } is used as it is and left open for the caller", async () => {
    const { client } = await setup();
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    const opens = countOpens();
    const archive = await openImageArchive(gz);
    try {
      const result = await client.deployImage({ deploymentId, image: { archive }, push: { layerCache: false } });
      expect(result.image.reference).toBe(gz);
      expect(opens.count()).toBe(1);
      expect(archive.closed).toBe(false);
    } finally {
      await archive.close();
    }
  });
});

describe('deployImage with a daemon image and the tests gate (the gate of deployProject)', () => {
  let image: string;
  beforeAll(async () => {
    await getTestDocker();
    // An Astro-like runtime image with real Python and pytest (mmdebstrap, cached per machine).
    image = await getRuntimeImage();
  }, 900_000);

  /** An Astro project (integrity test, tests/) with `dags` as its DAG files; returns its dags folder. */
  function makeProjectDags(dags: Record<string, string>): string {
    const root = mkdtempSync(join(tmpdir(), 'img-project-'));
    onTestFinished(() => rmSync(root, { recursive: true, force: true }));
    const files: Record<string, string> = { '.astro/test_dag_integrity_default.py': INTEGRITY_TEST, 'tests/test_x.py': 'def test_x():\n    assert True\n' };
    for (const [name, text] of Object.entries(dags)) files[`dags/${name}`] = text;
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    return join(root, 'dags');
  }

  it('stops before creating a deploy when the DAGs do not parse, with the output', async () => {
    const { astro, client } = await setup();
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    const err = await client
      .deployImage({ deploymentId, image, dagsDir: makeProjectDags({ 'broken_dag.py': 'import not_installed_anywhere\n' }), tests: 'parse' })
      .catch((e) => e);
    expect(err).toMatchObject({ code: 'ASTRO_IMAGE_PARSE_FAILED', name: 'ProjectTestsError', suite: 'parse' });
    expect(err.output).toContain("No module named 'not_installed_anywhere'");
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);
  }, 300_000);

  it('deploys after passing tests (parse+pytest), and skips them with force', async () => {
    const { client } = await setup();
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    const events: DeployImageEvent[] = [];
    const ok = await client.deployImage({ deploymentId, image, dagsDir: makeProjectDags({ 'dag.py': 'DAG_ID = "ok"\n' }), tests: 'parse+pytest', onEvent: (e) => events.push(e) });
    expect(ok.tests).toMatchObject({ mode: 'parse+pytest', parse: { status: 'passed', exitCode: 0 }, pytest: { status: 'passed', exitCode: 0 } });
    expect(ok.tests?.parse?.output).toMatch(/1 passed/);
    expect(events.some((e) => e.type === 'tests:output')).toBe(true);
    const forced = await client.deployImage({ deploymentId, image, dagsDir: makeProjectDags({ 'bad.py': 'raise SystemExit(3)\n' }), tests: 'parse', force: true });
    expect(forced.tests).toEqual({ mode: 'parse', parse: { status: 'skipped', reason: 'force' } });
  }, 600_000);

  it('tests and pushes the image it validated, by ID: a name retagged once it was validated does not swap in another image', async () => {
    const { docker } = await getTestDocker();
    const name = `astro-sdk-test/retag-${uniqueName()}:1`;
    const [repo, tag] = name.split(':') as [string, string];
    await docker.getImage(image).tag({ repo, tag });
    // Another image, one small layer and no pytest, that the name points at once validated.
    const other = `astro-sdk-test/other-${uniqueName()}:1`;
    await buildScratchImage({ tag: other, labels: { [RUNTIME_VERSION_LABEL]: '3.1-2' }, layers: [{ 'x.txt': 'x' }] });
    onTestFinished(() => removeImages(name, other));
    const tested = (await docker.getImage(image).inspect()) as { Id: string; RootFS: { Layers: string[] } };
    const { client } = await setup();
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    // The retag starts when the image is validated, and the tests' container waits for it.
    let retag: Promise<unknown> | undefined;
    const waitingDocker = new Proxy(docker, {
      get(target, key) {
        if (key === 'createContainer') return async (options: Dockerode.ContainerCreateOptions) => (await retag, target.createContainer(options));
        const value = Reflect.get(target, key) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const result = await client.deployImage({
      deploymentId,
      image: name,
      dagsDir: makeProjectDags({ 'dag.py': 'DAG_ID = "ok"\n' }),
      tests: 'parse',
      docker: waitingDocker,
      push: { method: 'native' },
      onEvent: (e) => {
        if (e.type === 'deploy:image-validated') retag = docker.getImage(other).tag({ repo, tag });
      },
    });
    expect(retag).toBeDefined();
    expect((await docker.getImage(name).inspect()).Id).not.toBe(tested.Id);
    expect(result.tests?.parse).toMatchObject({ status: 'passed' });
    expect(result.push.layers).toHaveLength(tested.RootFS.Layers.length);
  }, 600_000);
});

describe('deployImage on the resilience kernel (issue #9) and finalize exactly once (issue #15)', () => {
  const fast = { initialDelayMs: 1, maxDelayMs: 5 };

  it('a listener that throws is ignored through a registry reset, API retries and a lost finalize answer', async () => {
    const { astro } = await setup({}, true);
    const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token, retry: { maxRetries: 2, ...fast } });
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    proxy.faults.add({ route: /PATCH/, action: { kind: 'reset', afterBodyBytes: 100_000 } });
    astro.fail({ route: 'deploymentOptions.get', action: { kind: 'status', status: 503 } });
    astro.fail({ route: 'deploys.finalize', action: { kind: 'dropResponse' } });
    const calls: string[] = [];
    const result = await client.deployImage({
      deploymentId,
      image: archives.good!,
      dagsDir: makeDags(),
      push: { layerCache: false, chunkSizeBytes: 256 * 1024, retry: fast },
      upload: { journalDir: false },
      wait: { pollIntervalMs: 10 },
      onEvent: (e) => {
        calls.push(e.type);
        throw new Error(`listener broke on ${e.type}`);
      },
    });
    expect(proxy.faults.pending()).toEqual([]);
    expect(astro.deploys(deploymentId)[0]!.finalizeCount).toBe(1);
    expect(result.rollout?.deployment.imageTag).toBe(result.deploy.imageTag);
    for (const type of ['api:retry', 'image:layer-retry', 'upload:committed', 'deploy:finalize-recovered', 'rollout:complete']) expect(calls).toContain(type);
  });

  it("the client's dispatcher carries the registry push and the DAG upload, as well as the API calls", async () => {
    const { astro } = await setup({}, true);
    const counting = new CountingAgent();
    onTestFinished(() => counting.close());
    const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token, dispatcher: counting });
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    proxy.resetStats();
    await client.deployImage({ deploymentId, image: archives.good!, dagsDir: makeDags(), push: { layerCache: false }, upload: { journalDir: false } });
    const registry = new URL(proxy.url).origin;
    // Every registry request (they all pass the fault proxy) and every API and blob request.
    expect(proxy.stats.requests).toBeGreaterThan(0);
    expect(counting.origins.filter((o) => o === registry)).toHaveLength(proxy.stats.requests);
    expect(counting.origins.filter((o) => o === astro.origin)).toHaveLength(astro.requests.length);
    expect(astro.requests.some((r) => r.route.startsWith('blob.'))).toBe(true);
  });

  it('with HTTP_PROXY set and no dispatcher, API, blob and registry requests all go through the proxy', async () => {
    const { astro } = await setup({}, true);
    const forward = await startForwardProxy();
    onTestFinished(() => forward.close());
    const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    proxy.resetStats();
    await withProxyEnv({ HTTP_PROXY: forward.url }, () =>
      client.deployImage({ deploymentId, image: archives.good!, dagsDir: makeDags(), push: { layerCache: false }, upload: { journalDir: false } }),
    );
    const targets = new Set(forward.stats.targets);
    expect(targets.has(new URL(astro.origin).host)).toBe(true);
    expect(targets.has(new URL(proxy.url).host)).toBe(true);
    expect(forward.stats.refused).toBe(0);
    expect(proxy.stats.requests).toBeGreaterThan(0);
    // Each connection the fake Astro saw (API and blob) was one the forward proxy opened.
    const connections = new Set(astro.requests.filter((r) => r.route !== 'deployments.list').map((r) => r.remotePort));
    expect(connections.size).toBeLessThanOrEqual(forward.used);
  });

  it('a lost finalize answer and three read-backs answered 503: success, finalized once', async () => {
    const { astro } = await setup();
    const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token, retry: { maxRetries: 2, ...fast } });
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    astro.fail({ route: 'deploys.finalize', action: { kind: 'dropResponse' } });
    astro.fail({ route: 'deploys.get', times: 3, action: { kind: 'status', status: 503 } });
    const result = await client.deployImage({ deploymentId, image: archives.good!, push: { layerCache: false } });
    expect(astro.deploys(deploymentId)[0]!.finalizeCount).toBe(1);
    expect(astro.requestsFor('deploys.finalize')).toHaveLength(1);
    expect(result.deploy.imageTag).toBe(astro.deploys(deploymentId)[0]!.imageTag);
  });

  it('finalize in doubt and the deploy unreadable within the bound: ASTRO_FINALIZE_UNKNOWN with deployId and imageTag', async () => {
    const { astro } = await setup();
    const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token, retry: { maxRetries: 1, ...fast } });
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    astro.fail({ route: 'deploys.finalize', action: { kind: 'dropResponse' } });
    astro.fail({ route: 'deploys.get', times: Infinity, action: { kind: 'status', status: 503 } });
    const err = await client.deployImage({ deploymentId, image: archives.good!, push: { layerCache: false }, finalizeCheckTimeoutMs: 200 }).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_FINALIZE_UNKNOWN')).toBe(true);
    const [record] = astro.deploys(deploymentId);
    expect(err).toMatchObject({ deployId: record!.id, deploymentId, imageTag: record!.imageTag });
    expect(astro.requestsFor('deploys.finalize')).toHaveLength(1);
  });

  it('an error after create carries deployId (a push refused by the registry)', async () => {
    const { astro, client } = await setup();
    const deploymentId = (await client.deployments.listAll())[0]!.id;
    currentToken = 'not-the-api-token';
    try {
      const err = await client.deployImage({ deploymentId, image: archives.good!, push: { layerCache: false } }).catch((e: unknown) => e);
      expect(isAstroError(err, 'ASTRO_IMAGE_REGISTRY_AUTH')).toBe(true);
      expect((err as { deployId?: string }).deployId).toBe(astro.deploys(deploymentId)[0]!.id);
    } finally {
      currentToken = astro.token;
    }
  });
});
