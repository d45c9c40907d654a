/**
 * `astro-deploy image` and `project` as child processes: an archive pushed to a real registry
 * (distribution, with Astro's bearer challenge) behind the fake Astro; the tests gate in a real
 * container of an Astro-like runtime image (real pytest): a DAG that does not import exits 4,
 * nothing created; a project built on the Docker daemon, tested and deployed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNTIME_VERSION_LABEL } from '../../src/image/index.js';
import { getTestDocker, removeImagesAfterRun } from '../helpers/docker.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { getRuntimeImage } from '../helpers/runtime-image.js';
import { makeImage, noise, writeLegacyArchive } from '../image/fixtures.js';
import { astroProject, INTEGRITY_TEST, makeProject } from '../project/helpers.js';
import { builtBin, cliEnv, fakeAstro, ndjson, runCli, tempTree } from './helpers.js';

const DEP = 'clclideployment0000000001';
let dir: string;
let archive: string;
let registry: TestRegistry;
/** The registry's token server takes user `cli` with the current test's fake Astro token. */
let currentToken = '';
/** Images the tests built in the daemon, removed at the end. */
const tags: string[] = [];

beforeAll(async () => {
  await builtBin();
  dir = mkdtempSync(join(tmpdir(), 'cli-image-'));
  registry = await startRegistry('bearer', { tokenPassword: () => currentToken });
  archive = join(dir, 'image.tar');
  await writeLegacyArchive(archive, makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-3' }, layers: [{ 'data.bin': noise(300_000) }, { 'app/x.txt': 'x' }] }), 'test/cli:1');
}, 300_000);

afterAll(async () => {
  await registry?.stop();
  await removeImagesAfterRun(...tags);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function astroWithRegistry(deployment: Record<string, unknown> = {}) {
  const astro = await fakeAstro({ deployments: [{ id: DEP, runtimeVersion: '3.1-2', ...deployment }], imageRegistry: registry.host });
  currentToken = astro.token;
  return astro;
}

describe('astro-deploy image', () => {
  it('pushes an archive and deploys it with the DAGs (IMAGE_AND_DAG), --json to the result', async () => {
    const astro = await astroWithRegistry();
    const dags = tempTree({ 'dags/dag.py': 'DAG_ID = "x"\n' });
    const r = await runCli(['image', '--image', archive, '--deployment-id', DEP, '--dags-dir', join(dags, 'dags'), '--wait', '--json'], { env: cliEnv(astro) });
    expect(r.code, r.stderr).toBe(0);
    const { lines, last } = ndjson(r.stdout);
    const types = lines.map((l) => l.type);
    for (const t of ['deploy:image-validated', 'image:push-start', 'image:push-complete', 'upload:committed', 'deploy:finalized', 'rollout:complete']) expect(types).toContain(t);
    const deploy = astro.deploys(DEP)[0]!;
    expect(deploy).toMatchObject({ type: 'IMAGE_AND_DAG', finalizeCount: 1 });
    expect(last).toMatchObject({ type: 'result', command: 'image', result: { deployId: deploy.id, deployType: 'IMAGE_AND_DAG', reference: `${deploy.imageRepository}:${deploy.imageTag}` } });
    expect(astro.deployment(DEP).imageTag).toBe(deploy.imageTag);
  });

  it('image without --image is a usage error (2)', async () => {
    const astro = await astroWithRegistry();
    const r = await runCli(['image', '--deployment-id', DEP], { env: cliEnv(astro) });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('image needs --image');
    expect(astro.requests).toHaveLength(0);
  });

  it('4: --tests parse on DAGs that do not import stops before anything is created, with the output', async () => {
    await getTestDocker();
    const image = await getRuntimeImage();
    const astro = await astroWithRegistry();
    const project = tempTree({
      '.astro/test_dag_integrity_default.py': INTEGRITY_TEST,
      'dags/broken_dag.py': 'import not_installed_anywhere\n',
    });
    // getTestDocker set DOCKER_HOST for this process; the CLI inherits it.
    const r = await runCli(['image', '--image', image, '--deployment-id', DEP, '--dags-dir', join(project, 'dags'), '--tests', 'parse'], { env: cliEnv(astro) });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/^ASTRO_IMAGE_PARSE_FAILED: /m);
    expect(r.stderr).toContain("No module named 'not_installed_anywhere'");
    expect(r.stdout).toContain('tests: parse failed');
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);
  }, 900_000);
});

describe('astro-deploy project', () => {
  it('builds, tests (real pytest) and deploys a project to the deployment of its .astro/config.yaml', async () => {
    await getTestDocker();
    const base = await getRuntimeImage();
    const astro = await astroWithRegistry();
    // The image is built under the name the CLI gives it: <namespace>/airflow:latest.
    tags.push(`${astro.deployment(DEP).namespace}/airflow:latest`);
    const project = await makeProject(astroProject(base, { '.astro/config.yaml': `project:\n  name: cli\n  deployment: ${DEP}\n` }));
    const r = await runCli(['project', '--project-dir', project, '--json'], { env: cliEnv(astro) });
    expect(r.code, r.stderr).toBe(0);
    const { lines, last } = ndjson(r.stdout);
    expect(lines.find((l) => l.type === 'build:complete')).toBeDefined();
    expect(lines.find((l) => l.type === 'tests:suite' && l.status === 'passed')).toMatchObject({ suite: 'parse' });
    const deploy = astro.deploys(DEP)[0]!;
    expect(deploy).toMatchObject({ type: 'IMAGE_AND_DAG', finalizeCount: 1 });
    expect(last).toMatchObject({ type: 'result', command: 'project', result: { deployId: deploy.id, imageTag: deploy.imageTag, tests: { mode: 'parse', parse: { status: 'passed' } } } });
    // The default push method is 'auto', which says what it chose; --push-method native forces the native push.
    const chose = lines.find((l) => l.type === 'image:push-method');
    expect(chose).toBeDefined();
    expect((last.result as { push: { method: string } }).push.method).toBe(chose!.method);
    const again = await runCli(['project', '--project-dir', project, '--push-method', 'native', '--tests', 'none', '--json'], { env: cliEnv(astro) });
    expect(again.code, again.stderr).toBe(0);
    const second = ndjson(again.stdout);
    expect(second.lines.find((l) => l.type === 'image:push-method')).toBeUndefined();
    expect(second.last).toMatchObject({ type: 'result', result: { push: { method: 'native' } } });
    const bogus = await runCli(['project', '--project-dir', project, '--push-method', 'fast'], { env: cliEnv(astro) });
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toContain('--push-method must be one of auto, native, daemon');
  }, 900_000);
});
