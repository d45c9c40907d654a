/**
 * deployImageToMany: one image to several deployments, read once. The fake Astro hands out
 * repositories on a REAL registry (distribution 2.8 behind a bearer challenge, like Astro's) seen
 * through a counting proxy; images come from an archive and from a real Docker engine.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import type Dockerode from 'dockerode';
import { AstroClient, isAstroError, type DeployImageEvent, type DeployImageResult } from '../../src/index.js';
import { RUNTIME_VERSION_LABEL } from '../../src/image/index.js';
import { DiskArchive } from '../../src/image/source.js';
import { createFakeAstro, createFaultProxy, type FakeAstro, type FaultProxy } from '../../src/testing/index.js';
import { getTestDocker, loadArchive, removeImages, uniqueName } from '../helpers/docker.js';
import { registryRouteOf, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, noise, writeLegacyArchive } from '../image/fixtures.js';
import { skopeoInfo } from '../image/verify.js';
import { getRuntimeImage } from '../helpers/runtime-image.js';
import { INTEGRITY_TEST } from '../project/helpers.js';

let dir: string;
let currentToken = '';
let registry: TestRegistry;
let proxy: FaultProxy;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'deploy-image-many-'));
  registry = await startRegistry('bearer', { tokenPassword: () => currentToken });
  proxy = await createFaultProxy({ target: registry.url, route: registryRouteOf });
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** An Astro-like image archive with a 1.5 MB layer of its own (so no earlier push holds it). */
async function imageArchive(name: string, gzip = false): Promise<string> {
  const path = join(dir, `${name}.tar${gzip ? '.gz' : ''}`);
  const image = makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-3' }, layers: [{ 'data.bin': noise(1_500_000) }, { 'app/x.txt': name }] });
  await writeLegacyArchive(path, image, `test/${name}:1`, { gzip });
  return path;
}

async function setup(ids: string[], runtimes: Record<string, string> = {}): Promise<{ astro: FakeAstro; client: AstroClient }> {
  const astro = await createFakeAstro({ deployments: ids.map((id) => ({ id, runtimeVersion: runtimes[id] ?? '3.1-2' })), imageRegistry: new URL(proxy.url).host, rolloutDelayMs: 50 });
  onTestFinished(() => astro.close());
  currentToken = astro.token;
  return { astro, client: new AstroClient({ baseUrl: astro.baseUrl, token: astro.token }) };
}

/** Bytes of blob uploads the registry received (PATCH and PUT bodies). */
function uploadedBytes(): number {
  const r = proxy.stats.byRoute;
  return (r['registry.patch']?.bytesUp ?? 0) + (r['registry.commit']?.bytesUp ?? 0);
}

function results(outcomes: Array<{ ok: boolean }>): Array<DeployImageResult & { tests?: unknown }> {
  for (const o of outcomes) expect(o, JSON.stringify(o)).toMatchObject({ ok: true });
  return outcomes.map((o) => (o as unknown as { result: DeployImageResult }).result);
}

describe('deployImageToMany', () => {
  it('an archive: opened once, its layers uploaded once and mounted into the other repositories; the DAGs bundled once', async () => {
    const ids = ['climg1', 'climg2', 'climg3'];
    const { astro, client } = await setup(ids);
    const gz = await imageArchive(uniqueName('many'), true);
    const dags = join(dir, uniqueName('dags'));
    mkdirSync(dags);
    writeFileSync(join(dags, 'etl.py'), 'from airflow import DAG\n');
    const opens = vi.spyOn(DiskArchive, 'open');
    onTestFinished(() => opens.mockRestore());
    proxy.resetStats();
    const events: Array<{ type: string; deploymentId: string | undefined }> = [];
    const outcomes = await client.deployImageToMany({
      deploymentIds: ids,
      image: gz,
      dagsDir: dags,
      concurrency: 3,
      onEvent: (e: DeployImageEvent, deploymentId) => events.push({ type: e.type, deploymentId }),
    });
    const all = results(outcomes);
    expect(outcomes.map((o) => o.deploymentId)).toEqual(ids);
    expect(opens).toHaveBeenCalledTimes(1);

    // One push uploaded the layers; the other two mounted every one of them.
    const pushed = all.filter((r) => r.push.layers.some((l) => l.status === 'pushed'));
    expect(pushed).toHaveLength(1);
    const layerBytes = pushed[0]!.push.layers.reduce((n, l) => n + l.size, 0);
    for (const r of all.filter((x) => x !== pushed[0])) expect(r.push.layers.map((l) => l.status)).toEqual(r.push.layers.map(() => 'mounted'));
    // What crossed the link: the layers once (plus the three configs).
    expect(uploadedBytes()).toBeLessThan(layerBytes * 1.1 + 3 * 4096);
    expect(uploadedBytes()).toBeGreaterThanOrEqual(layerBytes);

    // Every deployment runs the same image under its own repository and tag, with the DAGs.
    for (const r of all) {
      expect(r.deployType).toBe('IMAGE_AND_DAG');
      expect(r.push.digest).toBe(all[0]!.push.digest);
      const info = await skopeoInfo(r.reference, { username: 'cli', password: astro.token });
      expect(info.Digest).toBe(r.push.digest);
    }
    expect(new Set(all.map((r) => r.bundle!.sha256)).size).toBe(1);
    expect(events.filter((e) => e.type === 'bundle:complete')).toEqual([{ type: 'bundle:complete', deploymentId: undefined }]);
    expect(events.filter((e) => e.type === 'deploy:created').map((e) => e.deploymentId).sort()).toEqual(ids);
  });

  it('a daemon image: exported once; the second push mounts its layers and config without an export', async () => {
    const ids = ['cldae1', 'cldae2'];
    const { client } = await setup(ids);
    const { docker } = await getTestDocker();
    const name = uniqueName('many');
    await loadArchive(await imageArchive(name));
    onTestFinished(() => removeImages(`test/${name}:1`));
    // Count the image exports (GET /images/{name}/get) the pushes ask the daemon for.
    let exports = 0;
    const counting = Object.create(docker) as Dockerode;
    counting.getImage = (id: string) => {
      const image = docker.getImage(id);
      const get = image.get.bind(image);
      image.get = ((...args: Parameters<typeof image.get>) => {
        exports += 1;
        return get(...args);
      }) as typeof image.get;
      return image;
    };
    const outcomes = await client.deployImageToMany({ deploymentIds: ids, image: `test/${name}:1`, docker: counting, concurrency: 2 });
    const all = results(outcomes);
    expect(exports).toBe(1);
    const mounted = all.filter((r) => r.push.layers.every((l) => l.status === 'mounted'));
    expect(mounted).toHaveLength(1);
    expect(all[0]!.push.digest).toBe(all[1]!.push.digest);
  });

  it('runs the tests gate once for all deployments; a failing test creates nothing anywhere', async () => {
    const image = await getRuntimeImage();
    const project = mkdtempSync(join(tmpdir(), 'many-project-'));
    onTestFinished(() => rmSync(project, { recursive: true, force: true }));
    mkdirSync(join(project, '.astro'));
    mkdirSync(join(project, 'dags'));
    writeFileSync(join(project, '.astro', 'test_dag_integrity_default.py'), INTEGRITY_TEST);
    writeFileSync(join(project, 'dags', 'dag.py'), 'DAG_ID = "ok"\n');
    const ids = ['cltest1', 'cltest2'];
    const { astro, client } = await setup(ids);
    const suites: Array<{ status: string; deploymentId: string | undefined }> = [];
    const outcomes = await client.deployImageToMany({
      deploymentIds: ids,
      image,
      projectDir: project,
      tests: 'parse',
      onEvent: (e, deploymentId) => e.type === 'tests:suite' && suites.push({ status: e.status, deploymentId }),
    });
    const all = results(outcomes);
    expect(suites).toEqual([
      { status: 'started', deploymentId: undefined },
      { status: 'passed', deploymentId: undefined },
    ]);
    for (const r of all) expect(r.tests).toMatchObject({ mode: 'parse', parse: { status: 'passed', exitCode: 0 } });

    writeFileSync(join(project, 'dags', 'broken.py'), 'import not_installed_anywhere\n');
    const before = astro.requestsFor('deploys.create').length;
    const error = await client.deployImageToMany({ deploymentIds: ids, image, projectDir: project, tests: 'parse' }).catch((e: unknown) => e);
    expect(isAstroError(error, 'ASTRO_IMAGE_PARSE_FAILED')).toBe(true);
    expect(astro.requestsFor('deploys.create')).toHaveLength(before);
  }, 900_000);

  it('refuses invalid targets before any request, and a deployment that fails does not stop the others', async () => {
    const { astro, client } = await setup(['clok1', 'clok2'], { clok2: '3.1-99' });
    const archive = await imageArchive(uniqueName('many'));
    const code = async (p: Promise<unknown>) => ((await p.catch((e: unknown) => e)) as { code?: string }).code;
    expect(await code(client.deployImageToMany({ deploymentIds: [], image: archive }))).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(await code(client.deployImageToMany({ deploymentIds: ['clok1', 'clok1'], image: archive }))).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(astro.requests).toEqual([]);
    const outcomes = await client.deployImageToMany({ deploymentIds: ['clok2', 'clok1'], image: archive });
    expect(outcomes.map((o) => [o.deploymentId, o.ok])).toEqual([
      ['clok2', false],
      ['clok1', true],
    ]);
    const first = outcomes[0]!;
    expect(!first.ok && isAstroError(first.error, 'ASTRO_IMAGE_RUNTIME_DOWNGRADE')).toBe(true);
  });
});
