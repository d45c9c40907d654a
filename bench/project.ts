/**
 * Project build and deploy benchmark: `buildProjectImage` vs `docker build --platform linux/amd64`
 * (the Docker CLI's legacy builder, the only one this daemon's CLI has without buildx; the SDK's
 * default builder for this project is the same classic builder) on the same daemon, same
 * project; then `deployProject` end to end with the time of each phase.
 *
 *   node --import tsx bench/project.ts
 *   BENCH_REPS=5 BENCH_DAGS=500 BENCH_INCLUDE_MB=50 node --import tsx bench/project.ts
 *
 * Measures (median of BENCH_REPS runs, SDK and CLI alternating):
 * - a cold build (`noCache` / `--no-cache`): context upload, ONBUILD COPY of the project, a RUN step;
 * - a rebuild with no change, which must come from the build cache (same image ID, every step cached);
 * - deployProject against the fake Astro and a real registry (distribution 2.8): a first deploy
 *   (cold build, whole image pushed) and a second one with no change (cached build, layers
 *   already in the registry), per phase.
 * Needs root, dockerd (scripts/start-dockerd.sh), docker-registry, mmdebstrap (for the runtime
 * base image, cached per machine). Cleans up its images, registry and temp files.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { AstroClient } from '../src/index.js';
import { buildProjectImage, type BuildProjectImageResult } from '../src/image/index.js';
import { createFakeAstro } from '../src/testing/index.js';
import { getTestDocker, removeImages } from '../test/helpers/docker.js';
import { startRegistry } from '../test/helpers/registry.js';
import { getRuntimeImage } from '../test/helpers/runtime-image.js';

const run = promisify(execFile);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const DAGS = Number(process.env.BENCH_DAGS ?? 300);
const INCLUDE_MB = Number(process.env.BENCH_INCLUDE_MB ?? 20);

const INTEGRITY_TEST = `import importlib.util, pathlib, pytest
FILES = sorted(pathlib.Path("dags").rglob("*.py"))
@pytest.mark.parametrize("path", FILES, ids=str)
def test_imports(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
`;

async function makeProject(base: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-project-'));
  const files: Record<string, string | Buffer> = {
    Dockerfile: `FROM ${base}\nRUN python3 -m compileall -q /usr/local/airflow/dags > /dev/null && echo compiled\n`,
    '.dockerignore': '.git\n**/__pycache__\n',
    'requirements.txt': '',
    'packages.txt': '',
    '.astro/test_dag_integrity_default.py': INTEGRITY_TEST,
    'tests/test_x.py': 'def test_x():\n    assert True\n',
    'plugins/helpers.py': 'def helper():\n    return 1\n',
  };
  for (let i = 0; i < DAGS; i++) files[`dags/group_${i % 10}/dag_${i}.py`] = `DAG_ID = "dag_${i}"\nTASKS = ${JSON.stringify(Array.from({ length: 20 }, (_, j) => `task_${j}`))}\n`;
  for (let i = 0; i < INCLUDE_MB; i++) files[`include/data/part_${i}.bin`] = randomBytes(1024 * 1024);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, value };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function dockerBuild(host: string, dir: string, tag: string, noCache: boolean): Promise<string> {
  const { stdout } = await run(
    'docker',
    ['-H', host, 'build', '-q', '--platform', 'linux/amd64', '--network', 'none', ...(noCache ? ['--no-cache'] : []), '-t', tag, dir],
    { env: { ...process.env, DOCKER_BUILDKIT: '0' }, maxBuffer: 16 * 1024 * 1024, timeout: 30 * 60_000 },
  );
  return stdout.trim();
}

async function main(): Promise<void> {
  const { docker, host } = await getTestDocker();
  console.log('runtime base image (mmdebstrap, cached per machine)...');
  const base = await getRuntimeImage();
  const dir = await makeProject(base);
  const sdkTag = 'astro-sdk-bench/sdk:latest';
  const cliTag = 'astro-sdk-bench/cli:latest';
  const bkTag = 'astro-sdk-bench/buildkit:latest';
  const rows: Array<[string, number[]]> = [];
  try {
    console.log(`project: ${DAGS} DAG files, ${INCLUDE_MB} MiB under include/; ${REPS} reps each\n`);
    const sdkCold: number[] = [];
    const cliCold: number[] = [];
    const sdkWarm: number[] = [];
    const cliWarm: number[] = [];
    const bkCold: number[] = [];
    const bkWarm: number[] = [];
    let last: BuildProjectImageResult | undefined;
    for (let rep = 0; rep < REPS; rep++) {
      const opts = { docker, networkMode: 'none', builder: 'classic' as const };
      const order = rep % 2 === 0 ? ['sdk', 'cli'] : ['cli', 'sdk'];
      for (const who of order) {
        if (who === 'sdk') {
          const cold = await timed(() => buildProjectImage(dir, { ...opts, tag: sdkTag, noCache: true }));
          sdkCold.push(cold.ms);
          const warm = await timed(() => buildProjectImage(dir, { ...opts, tag: sdkTag }));
          sdkWarm.push(warm.ms);
          if (warm.value.imageId !== cold.value.imageId || warm.value.cachedSteps !== warm.value.steps.length) {
            throw new Error(`the SDK rebuild did not come from the cache: ${warm.value.cachedSteps}/${warm.value.steps.length} steps cached, ${warm.value.imageId} vs ${cold.value.imageId}`);
          }
          last = warm.value;
        } else {
          const cold = await timed(() => dockerBuild(host, dir, cliTag, true));
          cliCold.push(cold.ms);
          const warm = await timed(() => dockerBuild(host, dir, cliTag, false));
          cliWarm.push(warm.ms);
          if (warm.value !== cold.value) throw new Error('the docker rebuild did not come from the cache');
        }
      }
      const bk = await timed(() => buildProjectImage(dir, { docker, networkMode: 'none', builder: 'buildkit', tag: bkTag, noCache: true }));
      bkCold.push(bk.ms);
      const bkAgain = await timed(() => buildProjectImage(dir, { docker, networkMode: 'none', builder: 'buildkit', tag: bkTag }));
      bkWarm.push(bkAgain.ms);
      if (bkAgain.value.imageId !== bk.value.imageId) throw new Error('the BuildKit rebuild did not come from the cache');
    }
    rows.push(['cold build      sdk (classic)', sdkCold], ['cold build      docker build', cliCold], ['no-change build sdk (classic)', sdkWarm], ['no-change build docker build', cliWarm]);
    rows.push(['cold build      sdk (buildkit)', bkCold], ['no-change build sdk (buildkit)', bkWarm]);
    console.log('build                              median     runs');
    for (const [name, xs] of rows) console.log(`${name.padEnd(34)} ${fmt(median(xs)).padStart(8)}   ${xs.map(fmt).join(', ')}`);
    console.log(`ratio sdk/docker: cold ${(median(sdkCold) / median(cliCold)).toFixed(2)}, no-change ${(median(sdkWarm) / median(cliWarm)).toFixed(2)}`);
    if (last) console.log(`context: ${last.context.files} files, ${(last.context.contentBytes / 1048576).toFixed(1)} MiB, tar ${(last.context.tarBytes / 1048576).toFixed(1)} MiB; rebuild: ${last.cachedSteps}/${last.steps.length} steps cached`);

    console.log('\ndeployProject against the fake Astro and a real registry (DAG deploys on, tests: parse)');
    let token = '';
    const registry = await startRegistry('bearer', { tokenPassword: () => token });
    const astro = await createFakeAstro({ deployments: [{ id: 'clbench01', runtimeVersion: '3.1-2' }], imageRegistry: registry.host, rolloutDelayMs: 100 });
    token = astro.token;
    try {
      const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
      const phases = ['build', 'validate', 'tests', 'bundle', 'create', 'push', 'upload', 'finalize', 'total'] as const;
      console.log(`${'run'.padEnd(24)}${phases.map((p) => p.padStart(10)).join('')}`);
      for (const [name, noCache] of [
        ['first (cold build)', true],
        ['second (no change)', false],
      ] as const) {
        const result = await client.deployProject({ projectDir: dir, deploymentId: 'clbench01', docker, tag: sdkTag, build: { networkMode: 'none', noCache } });
        console.log(`${name.padEnd(24)}${phases.map((p) => fmt(result.timings[p] ?? 0).padStart(10)).join('')}`);
      }
    } finally {
      await astro.close();
      await registry.stop();
    }
    console.log(`\npeak RSS of this process: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
  } finally {
    await removeImages(sdkTag, cliTag, bkTag);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
