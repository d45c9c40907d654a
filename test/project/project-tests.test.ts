/**
 * runProjectTests in real containers of the Astro-like runtime image (real Python, real pytest):
 * the project's dags, tests, plugins, include and .astro are copied in, as the CLI copies them.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import Dockerode from 'dockerode';
import { runProjectTests, type ProjectTestsEvent } from '../../src/image/project-tests.js';
import { isAstroError, ProjectTestsError } from '../../src/core/errors.js';
import { getTestDocker } from '../helpers/docker.js';
import { getRuntimeImage } from '../helpers/runtime-image.js';
import { astroProject, guardProject, makeProject, type ProjectFile } from './helpers.js';

let base: string;
let docker: Dockerode;

beforeAll(async () => {
  ({ docker } = await getTestDocker());
  base = await getRuntimeImage();
}, 900_000);

async function runIn(files: Record<string, ProjectFile | null>, options: Parameters<typeof runProjectTests>[2] = {}) {
  const dir = await makeProject(astroProject(base, files));
  const unchanged = await guardProject(dir);
  const events: ProjectTestsEvent[] = [];
  const outcome = await runProjectTests(base, dir, { docker, onEvent: (e) => events.push(e), ...options }).then(
    (result) => ({ result, error: undefined }),
    (error: unknown) => ({ result: undefined, error }),
  );
  await unchanged();
  return { ...outcome, events };
}

describe('runProjectTests', () => {
  it("'parse' (the default) runs the DAG integrity test with pytest and passes", async () => {
    const { result, error, events } = await runIn({});
    expect(error).toBeUndefined();
    expect(result?.parse).toMatchObject({ status: 'passed', exitCode: 0, command: ['pytest', '.astro/test_dag_integrity_default.py'] });
    expect(result?.parse?.output).toMatch(/2 passed/);
    expect(result?.pytest).toBeUndefined();
    expect(events.filter((e) => e.type === 'tests:suite').map((e) => (e as { status: string }).status)).toEqual(['started', 'passed']);
  }, 180_000);

  it('a DAG that fails to import gives ASTRO_IMAGE_PARSE_FAILED with the container output', async () => {
    const { error } = await runIn({ 'dags/broken.py': 'import does_not_exist_anywhere\n' });
    expect(error).toBeInstanceOf(ProjectTestsError);
    const e = error as ProjectTestsError;
    expect(e).toMatchObject({ code: 'ASTRO_IMAGE_PARSE_FAILED', suite: 'parse', exitCode: 1 });
    expect(e.output).toContain("ModuleNotFoundError: No module named 'does_not_exist_anywhere'");
    expect(e.output).toMatch(/1 failed, 2 passed/);
    expect(e.message).toContain('force: true');
  }, 180_000);

  it("'pytest' runs tests/ and a failing test gives ASTRO_PROJECT_TESTS_FAILED", async () => {
    const { error } = await runIn({ 'tests/test_dags.py': 'def test_ok():\n    pass\n\ndef test_numbers():\n    assert 2 + 2 == 5, "math is broken"\n' }, { tests: 'pytest' });
    expect(error).toMatchObject({ code: 'ASTRO_PROJECT_TESTS_FAILED', suite: 'pytest', exitCode: 1, name: 'ProjectTestsError' });
    expect((error as ProjectTestsError).output).toContain('math is broken');
    expect((error as ProjectTestsError).output).toMatch(/1 failed, 1 passed/);
  }, 180_000);

  it("'parse+pytest' runs the parse first and stops there when it fails", async () => {
    const { error, events } = await runIn({ 'dags/broken.py': 'raise RuntimeError("bad dag")\n' }, { tests: 'parse+pytest' });
    expect(error).toMatchObject({ code: 'ASTRO_IMAGE_PARSE_FAILED' });
    expect(events.some((e) => e.type === 'tests:suite' && e.suite === 'pytest')).toBe(false);
    const ok = await runIn({}, { tests: 'parse+pytest' });
    expect(ok.result).toMatchObject({ mode: 'parse+pytest', parse: { status: 'passed' }, pytest: { status: 'passed', command: ['pytest', 'tests'] } });
  }, 300_000);

  it('testFile runs that file only; the project .env reaches the container', async () => {
    const { result } = await runIn(
      {
        '.env': 'GREETING=from-dotenv\n',
        'tests/test_env.py': 'import os\n\ndef test_env():\n    assert os.environ["GREETING"] == "from-dotenv"\n    assert os.environ["EXTRA"] == "yes"\n',
        'tests/test_dags.py': 'def test_never():\n    assert False\n',
      },
      { tests: 'pytest', testFile: 'tests/test_env.py', env: { EXTRA: 'yes' } },
    );
    expect(result?.pytest).toMatchObject({ status: 'passed', command: ['pytest', 'tests/test_env.py'] });
    expect(result?.pytest?.output).toMatch(/1 passed/);
  }, 180_000);

  it('skips as the CLI does: no integrity test (with a warning), runtime below 4.1.0, no DAG files, no tests folder', async () => {
    const noTest = await runIn({ '.astro/test_dag_integrity_default.py': null });
    expect(noTest.result?.parse).toEqual({ status: 'skipped', reason: 'no-integrity-test' });
    expect(noTest.events.find((e) => e.type === 'tests:warning')).toMatchObject({ code: 'NO_INTEGRITY_TEST', message: expect.stringContaining('astro dev init') });

    const old = await runIn({}, { runtimeVersion: '4.0.0' });
    expect(old.result?.parse).toEqual({ status: 'skipped', reason: 'runtime-too-old' });

    const noDags = await runIn({ 'dags/example_dag.py': null, 'dags/etl/load.py': null, 'dags/README.md': 'no python here' }, { tests: 'parse+pytest' });
    expect(noDags.result).toEqual({ mode: 'parse+pytest', parse: { status: 'skipped', reason: 'no-dags' }, pytest: { status: 'skipped', reason: 'no-dags' } });

    const noTests = await runIn({ 'tests/test_dags.py': null }, { tests: 'pytest' });
    expect(noTests.result?.pytest).toEqual({ status: 'skipped', reason: 'no-tests-folder' });

    const none = await runIn({}, { tests: 'none' });
    expect(none.result).toEqual({ mode: 'none' });
    expect(none.events).toEqual([]);
  }, 300_000);

  it('a dags/ whose DAGs are symbolic links is tested, not skipped as holding no DAGs (and a link loop in it ends the search)', async () => {
    const { error, events } = await runIn({
      'dags/example_dag.py': null,
      'dags/etl/load.py': null,
      'dags/broken.py': { symlink: '../include/team_a/broken.py' },
      'include/team_a/broken.py': 'import does_not_exist_anywhere\n',
      'dags/loop': { symlink: '.' },
    });
    expect(events.some((e) => e.type === 'tests:warning')).toBe(false);
    expect(error).toMatchObject({ code: 'ASTRO_IMAGE_PARSE_FAILED', suite: 'parse' });
    expect((error as ProjectTestsError).output).toContain("No module named 'does_not_exist_anywhere'");
    // Only a link loop and a linked folder without Python: no DAGs, found without looping forever.
    const empty = await runIn({ 'dags/example_dag.py': null, 'dags/etl/load.py': null, 'dags/loop': { symlink: '.' }, 'dags/sql': { symlink: '../include/sql' } });
    expect(empty.error).toBeUndefined();
    expect(empty.events).toContainEqual(expect.objectContaining({ type: 'tests:warning', code: 'NO_DAGS' }));
  }, 180_000);

  it('refuses a testFile outside the copied folders or missing, and a missing envFile, with ASTRO_PROJECT_INVALID', async () => {
    for (const options of [{ testFile: 'elsewhere/test_x.py' }, { testFile: 'tests/missing.py' }, { envFile: 'nope.env' }]) {
      const { error } = await runIn({ 'elsewhere/test_x.py': 'def test_x():\n    pass\n' }, { tests: 'pytest', ...options });
      expect(error).toMatchObject({ code: 'ASTRO_PROJECT_INVALID', name: 'ProjectError' });
    }
  }, 60_000);

  it('an abort stops the test container and rejects with ASTRO_ABORTED', async () => {
    const dir = await makeProject(astroProject(base, { 'tests/test_slow.py': 'import time\n\ndef test_slow():\n    print("sleeping", flush=True)\n    time.sleep(240)\n' }));
    const unchanged = await guardProject(dir);
    const controller = new AbortController();
    // Only this test's containers: other files build (classic step containers) and run test
    // containers of their own images on the same daemon at the same time.
    const ours = async () =>
      (await docker.listContainers({ all: true, filters: { label: ['io.astro-deploy-sdk.purpose=dag-parse-check'] } })).filter((c) => c.Image === base);
    const before = new Set((await ours()).map((c) => c.Id));
    const running = runProjectTests(base, dir, { docker, tests: 'pytest', signal: controller.signal }).catch((e: unknown) => e);
    // Abort once the test container runs (pytest captures the test's own output, so none arrives).
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const live = await docker.listContainers({ filters: { label: ['io.astro-deploy-sdk.purpose=dag-parse-check'], status: ['running'] } });
      if (live.some((c) => !before.has(c.Id))) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    controller.abort();
    const err = await running;
    expect(isAstroError(err, 'ASTRO_ABORTED')).toBe(true);
    expect((await ours()).filter((c) => !before.has(c.Id))).toEqual([]);
    await unchanged();
  }, 180_000);
});
