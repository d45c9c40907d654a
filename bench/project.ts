/**
 * Project deploy benchmark, in one run:
 *
 * 1. deployProject end to end vs its peer, `docker build --platform linux/amd64` + `docker push`
 *    of the built image to a registry on 127.0.0.1 (the Docker CLI's legacy builder, the only one
 *    this daemon's CLI has without buildx; the SDK's default builder for this project is the same
 *    classic builder). Same daemon, same project, same work: DAG deploys off (the DAGs are baked
 *    into the image on both sides) and the tests gate off (`tests: 'none'`; the peer runs none);
 *    the gate is timed on its own afterwards. Rows:
 *    - cold: no build cache (`noCache` / `--no-cache`), a fresh registry (every layer gzipped and sent);
 *    - no change: warm build cache, the layers already in the registry (a manifest under a new tag);
 *    - DAG change: one DAG file edited, warm build cache (the COPY and RUN steps rebuilt, their
 *      layers pushed).
 * 2. buildProjectImage vs `docker build` alone: cold and no-change (which must come from the
 *    build cache: same image ID, every step cached), the sides taking turns build by build; the
 *    SDK's BuildKit builder too.
 * 3. deployProject as users run it by default (DAG deploys on, tests: 'parse'), time per phase.
 * 4. A 20 MiB/s link behind a proxy answering 408 to requests running over 3 s (as in
 *    bench/image.ts): a cold deployProject (its default push, or each of BENCH_PUSH_METHODS) and
 *    docker build + docker push through it, once each; whether each completed, and its time.
 *
 *   flock /tmp/astro-bench.lock node --import tsx bench/project.ts
 *   BENCH_REPS=5 BENCH_DAGS=500 BENCH_INCLUDE_MB=50 node --import tsx bench/project.ts
 *   BENCH_PUSH_METHOD=daemon BENCH_BUILDER=buildkit ...   (deployProject's push method / builder in parts 1 and 4)
 *   BENCH_PUSH_METHODS=native,auto ...   (one deployProject side per push method, alternating with docker in each rep)
 *   BENCH_PARTS=1,4 ...   (only those parts; default 1,2,3,4)
 *
 * Medians of BENCH_REPS reps (default 3), SDK and CLI alternating which goes first. In part 1 the
 * sides take turns run by run, and each rep runs the no-change deploy 5 times and the DAG change
 * twice per side (BENCH_NO_CHANGE_SAMPLES, BENCH_DAG_CHANGE_SAMPLES), the median taken over all
 * of them. The two sides build two copies of the project that differ only in the text their RUN
 * step echoes, so neither side's build can reuse the other's cache entries (the daemon's build
 * cache is shared).
 * Needs root, dockerd (scripts/start-dockerd.sh), docker-registry, mmdebstrap (for the runtime
 * base image, cached per machine). Cleans up its images, registries and temp files.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { AstroClient, type DeployProjectResult } from '../src/index.js';
import { buildProjectImage, type BuildProjectImageResult } from '../src/image/index.js';
import { createFakeAstro } from '../src/testing/index.js';
import { getTestDocker, removeImages } from '../test/helpers/docker.js';
import { createFaultProxy } from '../src/testing/fault-proxy.js';
import { registryRouteOf, startRegistry, type TestRegistry } from '../test/helpers/registry.js';
import { getRuntimeImage } from '../test/helpers/runtime-image.js';

const run = promisify(execFile);
const REPS = Number(process.env.BENCH_REPS ?? 3);
/**
 * Runs per side and rep of each scenario of part 1. A no-change deploy takes ~0.3-0.5 s and
 * single runs of either side spread over ±30 %, so one sample per rep left that row's ratio
 * inside the noise; the cheap scenarios are sampled more often.
 */
const SAMPLES: Record<'cold' | 'no change' | 'DAG change', number> = {
  cold: 1,
  'no change': Number(process.env.BENCH_NO_CHANGE_SAMPLES ?? 5),
  'DAG change': Number(process.env.BENCH_DAG_CHANGE_SAMPLES ?? 2),
};
const DAGS = Number(process.env.BENCH_DAGS ?? 300);
const INCLUDE_MB = Number(process.env.BENCH_INCLUDE_MB ?? 20);
type PushMethod = 'native' | 'daemon' | 'auto';
/** deployProject's push methods in parts 1 and 4, one side each (`default`: the SDK's default). */
const PUSH_METHODS = (process.env.BENCH_PUSH_METHODS ?? process.env.BENCH_PUSH_METHOD ?? 'default').split(',').map((m) => m.trim()) as Array<PushMethod | 'default'>;
const PARTS = new Set((process.env.BENCH_PARTS ?? '1,2,3,4').split(',').map((p) => p.trim()));
/** A 20 MiB/s link whose proxy answers 408 to any request running over 3 s (part 4). */
const THROTTLE = 20 * 1024 * 1024;
const BUDGET_MS = 3000;
/** deployProject's builder in part 1 (`classic`, `buildkit`). @default the SDK's default ('auto': classic for this project) */
const BUILDER = process.env.BENCH_BUILDER as 'classic' | 'buildkit' | undefined;

const INTEGRITY_TEST = `import importlib.util, pathlib, pytest
FILES = sorted(pathlib.Path("dags").rglob("*.py"))
@pytest.mark.parametrize("path", FILES, ids=str)
def test_imports(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
`;

const dockerfile = (base: string, who: string) => `FROM ${base}\nRUN python3 -m compileall -q /usr/local/airflow/dags > /dev/null && echo compiled ${who}\n`;

async function makeProject(base: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-project-'));
  const files: Record<string, string | Buffer> = {
    Dockerfile: dockerfile(base, 'sdk'),
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

/** The CLI's copy: same files (timestamps kept), a RUN step that echoes another word. */
async function copyProject(dir: string, base: string): Promise<string> {
  const copy = await mkdtemp(join(tmpdir(), 'bench-project-cli-'));
  await cp(dir, copy, { recursive: true, preserveTimestamps: true });
  await writeFile(join(copy, 'Dockerfile'), dockerfile(base, 'cli'));
  return copy;
}

let edits = 0;
/** A small DAG change: one file's content, never seen before by either side's cache. */
async function editDag(dir: string): Promise<void> {
  edits++;
  await writeFile(join(dir, 'dags/group_0/dag_0.py'), `DAG_ID = "dag_0"\nEDIT = ${edits}\nTASKS = []\n`);
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, value };
}

const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! : NaN);
/** The median of `a[i] / b[i]`: runs i of two sides ran back to back, so the daemon's drift cancels in each ratio. */
const pairedMedian = (a: number[], b: number[]) => median(a.map((x, i) => x / b[i]!));
const fmt = (ms: number) => (Number.isNaN(ms) ? '-' : `${(ms / 1000).toFixed(2)} s`);

async function dockerBuild(host: string, dir: string, tag: string, noCache: boolean): Promise<string> {
  const { stdout } = await run(
    'docker',
    ['-H', host, 'build', '-q', '--platform', 'linux/amd64', '--network', 'none', ...(noCache ? ['--no-cache'] : []), '-t', tag, dir],
    { env: { ...process.env, DOCKER_BUILDKIT: '0' }, maxBuffer: 16 * 1024 * 1024, timeout: 30 * 60_000 },
  );
  return stdout.trim();
}

/** `docker tag` + `docker push` of `tag` as `<registry>/bench/cli:<name>`; returns the pushed reference. */
async function dockerPush(host: string, tag: string, registry: string, name: string): Promise<string> {
  const ref = `${registry}/bench/cli:${name}`;
  await run('docker', ['-H', host, 'tag', tag, ref]);
  await run('docker', ['-H', host, 'push', '-q', ref], { maxBuffer: 16 * 1024 * 1024, timeout: 30 * 60_000 });
  return ref;
}

type Scenario = 'cold' | 'no change' | 'DAG change';
const SCENARIOS: Scenario[] = ['cold', 'no change', 'DAG change'];
const PHASES = ['bundle', 'build', 'validate', 'tests', 'create', 'push', 'upload', 'finalize', 'total'] as const;

async function main(): Promise<void> {
  const { docker, host } = await getTestDocker();
  console.log('runtime base image (mmdebstrap, cached per machine)...');
  const base = await getRuntimeImage();
  const sdkDir = await makeProject(base);
  const cliDir = await copyProject(sdkDir, base);
  const sdkTag = 'astro-sdk-bench/sdk:latest';
  const cliTag = 'astro-sdk-bench/cli:latest';
  const bkTag = 'astro-sdk-bench/buildkit:latest';
  const images = new Set<string>();
  const refs: string[] = [];
  const t0 = Date.now();
  try {
    console.log(`project: ${DAGS} DAG files, ${INCLUDE_MB} MiB under include/; ${REPS} reps each\n`);

    // 1. deployProject (one side per push method) vs docker build + docker push.
    const sides = [...PUSH_METHODS.map((m) => `sdk:${m}`), 'cli'];
    const runs = (): Record<Scenario, number[]> => ({ cold: [], 'no change': [], 'DAG change': [] });
    const sdk = new Map(PUSH_METHODS.map((m) => [m, runs()]));
    const cli = runs();
    const phases = new Map(PUSH_METHODS.map((m): [string, Record<Scenario, DeployProjectResult['timings'][]>] => [m, { cold: [], 'no change': [], 'DAG change': [] }]));
    /** Which push pushed each run's manifest (`auto` picks one; `+fallback` when the native push took over). */
    const pushedBy = new Map(PUSH_METHODS.map((m): [string, Record<Scenario, string[]>] => [m, { cold: [], 'no change': [], 'DAG change': [] }]));
    const cliSplit: Record<Scenario, Array<[number, number]>> = { cold: [], 'no change': [], 'DAG change': [] };
    const deploy = (client: AstroClient, deploymentId: string, method: PushMethod | 'default', scenario: Scenario) =>
      client.deployProject({
        projectDir: sdkDir,
        deploymentId,
        docker,
        tag: sdkTag,
        tests: 'none',
        build: { networkMode: 'none', noCache: scenario === 'cold', ...(BUILDER ? { builder: BUILDER } : {}) },
        ...(method !== 'default' ? { push: { method } } : {}),
      });
    const cliRun = async (registryHost: string, name: string, scenario: Scenario) => {
      const b = await timed(() => dockerBuild(host, cliDir, cliTag, scenario === 'cold'));
      // Removed at the end even when the push fails (part 4's link fails docker push).
      refs.push(`${registryHost}/bench/cli:${name}`);
      const p = await timed(() => dockerPush(host, cliTag, registryHost, name));
      images.add(b.value);
      return [b.ms, p.ms] as [number, number];
    };
    for (let rep = 0; PARTS.has('1') && rep < REPS; rep++) {
      // A fresh registry per side and rep: the cold push sends every layer. Each side keeps its
      // registry (and fake Astro) for the whole rep, and the sides take turns run by run: a
      // no-change build gets slower as the daemon holds more images (+50-100 % over four reps of
      // cold builds, both sides alike), so a side that ran its samples in a block ran them on
      // another daemon than its peer.
      const registries = new Map<string, TestRegistry>();
      const clients = new Map<string, { client: AstroClient; close: () => Promise<void> }>();
      try {
        for (const who of sides) {
          const registry = await startRegistry('none');
          registries.set(who, registry);
          if (!who.startsWith('sdk:')) continue;
          const astro = await createFakeAstro({ deployments: [{ id: 'clbenchoff', runtimeVersion: '3.1-2', isDagDeployEnabled: false }], imageRegistry: registry.host, rolloutDelayMs: 100 });
          clients.set(who, { client: new AstroClient({ baseUrl: astro.baseUrl, token: astro.token }), close: () => astro.close() });
        }
        let turn = rep;
        for (const scenario of SCENARIOS) {
          for (let sample = 0; sample < SAMPLES[scenario]; sample++) {
            // Each side goes first in turn.
            const order = sides.map((_, i) => sides[(i + turn) % sides.length]!);
            turn += 1;
            for (const who of order) {
              if (who.startsWith('sdk:')) {
                const method = who.slice(4) as PushMethod | 'default';
                if (scenario === 'DAG change') await editDag(sdkDir);
                const r = await timed(() => deploy(clients.get(who)!.client, 'clbenchoff', method, scenario));
                sdk.get(method)![scenario].push(r.ms);
                phases.get(method)![scenario].push(r.value.timings);
                pushedBy.get(method)![scenario].push(`${r.value.push.method}${r.value.push.fallback ? '+fallback' : ''}`);
                images.add(r.value.imageId);
              } else {
                if (scenario === 'DAG change') await editDag(cliDir);
                const r = await timed(() => cliRun(registries.get(who)!.host, `r${rep}-${scenario.replace(' ', '-')}-${sample}`, scenario));
                cliSplit[scenario].push(r.value);
                cli[scenario].push(r.ms);
              }
            }
          }
        }
      } finally {
        for (const c of clients.values()) await c.close();
        for (const r of registries.values()) await r.stop();
      }
    }
    if (PARTS.has('1')) {
      console.log(`deployProject vs docker build + docker push (DAG deploys off, tests: 'none'; the peer runs no tests; builder ${BUILDER ?? 'default'})`);
      console.log(`${'scenario'.padEnd(28)}${'push'.padStart(9)}${'sdk'.padStart(9)}${'docker'.padStart(9)}${'ratio'.padStart(7)}${'paired'.padStart(8)}   runs sdk | docker   (what pushed)`);
      for (const s of SCENARIOS) {
        for (const m of PUSH_METHODS) {
          const mine = sdk.get(m)![s];
          const ratio = median(mine) / median(cli[s]);
          const paired = pairedMedian(mine, cli[s]);
          const by = [...new Set(pushedBy.get(m)![s])].map((x) => `${x} x${pushedBy.get(m)![s].filter((y) => y === x).length}`).join(', ');
          console.log(`${`${s} build+push`.padEnd(28)}${m.padStart(9)}${fmt(median(mine)).padStart(9)}${fmt(median(cli[s])).padStart(9)}${ratio.toFixed(2).padStart(7)}${paired.toFixed(2).padStart(8)}   ${mine.map(fmt).join(', ')} | ${cli[s].map(fmt).join(', ')}   (${by})`);
        }
      }
      console.log('\ndeployProject phases, medians of the runs above (phases may overlap; total is wall time); the peer: docker build, docker tag + push');
      console.log(`${'scenario'.padEnd(16)}${'push'.padStart(9)}${PHASES.map((p) => p.padStart(10)).join('')}${'| build'.padStart(12)}${'push'.padStart(10)}`);
      for (const s of SCENARIOS) {
        const peer = [0, 1].map((i) => fmt(median(cliSplit[s].map((x) => x[i]!))).padStart(10));
        for (const m of PUSH_METHODS) {
          const ph = phases.get(m)![s];
          console.log(`${s.padEnd(16)}${m.padStart(9)}${PHASES.map((p) => fmt(median(ph.map((t) => t[p] ?? NaN).filter((x) => !Number.isNaN(x)))).padStart(10)).join('')}  |${peer.join('')}`);
        }
      }
    }

    // 2. Build only.
    const rows: Array<[string, number[], number[]]> = [];
    const bCold: [number[], number[]] = [[], []];
    const bWarm: [number[], number[]] = [[], []];
    const bkCold: number[] = [];
    const bkWarm: number[] = [];
    let last: BuildProjectImageResult | undefined;
    for (let rep = 0; PARTS.has('2') && rep < REPS; rep++) {
      const opts = { docker, networkMode: 'none', builder: 'classic' as const };
      // The sides take turns build by build, as in part 1: cold builds first, then the rebuilds.
      const sdkCold = async () => {
        const cold = await timed(() => buildProjectImage(sdkDir, { ...opts, tag: sdkTag, noCache: true }));
        bCold[0].push(cold.ms);
        images.add(cold.value.imageId);
        return cold.value.imageId;
      };
      const sdkWarm = async (coldId: string) => {
        const warm = await timed(() => buildProjectImage(sdkDir, { ...opts, tag: sdkTag }));
        bWarm[0].push(warm.ms);
        if (warm.value.imageId !== coldId || warm.value.cachedSteps !== warm.value.steps.length) {
          throw new Error(`the SDK rebuild did not come from the cache: ${warm.value.cachedSteps}/${warm.value.steps.length} steps cached, ${warm.value.imageId} vs ${coldId}`);
        }
        last = warm.value;
      };
      const cliCold = async () => {
        const cold = await timed(() => dockerBuild(host, cliDir, cliTag, true));
        bCold[1].push(cold.ms);
        images.add(cold.value);
        return cold.value;
      };
      const cliWarm = async (coldId: string) => {
        const warm = await timed(() => dockerBuild(host, cliDir, cliTag, false));
        bWarm[1].push(warm.ms);
        if (warm.value !== coldId) throw new Error('the docker rebuild did not come from the cache');
      };
      // Each side goes first in turn: the SDK's cold build in even reps, its rebuild in odd ones.
      if (rep % 2 === 0) {
        const [sdkId, cliId] = [await sdkCold(), await cliCold()];
        await cliWarm(cliId);
        await sdkWarm(sdkId);
      } else {
        const [cliId, sdkId] = [await cliCold(), await sdkCold()];
        await sdkWarm(sdkId);
        await cliWarm(cliId);
      }
      const bk = await timed(() => buildProjectImage(sdkDir, { docker, networkMode: 'none', builder: 'buildkit', tag: bkTag, noCache: true }));
      bkCold.push(bk.ms);
      const bkAgain = await timed(() => buildProjectImage(sdkDir, { docker, networkMode: 'none', builder: 'buildkit', tag: bkTag }));
      bkWarm.push(bkAgain.ms);
      if (bkAgain.value.imageId !== bk.value.imageId) throw new Error('the BuildKit rebuild did not come from the cache');
      images.add(bk.value.imageId);
    }
    rows.push(['cold build (classic)', ...bCold], ['no-change build (classic)', ...bWarm], ['cold build (sdk buildkit)', bkCold, []], ['no-change build (sdk buildkit)', bkWarm, []]);
    if (PARTS.has('2')) console.log('\nbuildProjectImage vs docker build');
    if (PARTS.has('2')) console.log(`${'build only'.padEnd(28)}${'sdk'.padStart(9)}${'docker'.padStart(9)}${'ratio'.padStart(7)}${'paired'.padStart(8)}   runs sdk | docker`);
    for (const [name, s, c] of PARTS.has('2') ? rows : []) {
      const ratio = c.length ? (median(s) / median(c)).toFixed(2) : '-';
      const paired = c.length ? pairedMedian(s, c).toFixed(2) : '-';
      console.log(`${name.padEnd(28)}${fmt(median(s)).padStart(9)}${fmt(median(c)).padStart(9)}${ratio.padStart(7)}${paired.padStart(8)}   ${s.map(fmt).join(', ')}${c.length ? ` | ${c.map(fmt).join(', ')}` : ''}`);
    }
    if (last) console.log(`context: ${last.context.files} files, ${(last.context.contentBytes / 1048576).toFixed(1)} MiB, tar ${(last.context.tarBytes / 1048576).toFixed(1)} MiB; rebuild: ${last.cachedSteps}/${last.steps.length} steps cached`);

    // 3. As users run it by default: DAG deploys on, the parse gate on.
    if (PARTS.has('3')) await byDefault();
    // 4. A throttled link answering 408.
    if (PARTS.has('4')) await throttled();
    console.log(`\npeak RSS of this process: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB; bench wall time ${fmt(Date.now() - t0)}`);

    async function byDefault(): Promise<void> {
    console.log("\ndeployProject by default (DAG deploys on, tests: 'parse'), one run each");
    let token = '';
    const registry: TestRegistry = await startRegistry('bearer', { tokenPassword: () => token });
    const astro = await createFakeAstro({ deployments: [{ id: 'clbench01', runtimeVersion: '3.1-2' }], imageRegistry: registry.host, rolloutDelayMs: 100 });
    token = astro.token;
    try {
      const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
      console.log(`${'scenario'.padEnd(16)}${PHASES.map((p) => p.padStart(10)).join('')}`);
      for (const scenario of SCENARIOS) {
        if (scenario === 'DAG change') await editDag(sdkDir);
        const result = await client.deployProject({ projectDir: sdkDir, deploymentId: 'clbench01', docker, tag: sdkTag, build: { networkMode: 'none', noCache: scenario === 'cold' } });
        images.add(result.imageId);
        console.log(`${scenario.padEnd(16)}${PHASES.map((p) => fmt(result.timings[p] ?? NaN).padStart(10)).join('')}`);
      }
    } finally {
      await astro.close();
      await registry.stop();
    }
    }

    async function throttled(): Promise<void> {
      console.log(`\ncold deploy through a ${THROTTLE / 1048576} MiB/s link answering 408 after ${BUDGET_MS / 1000} s (one run each)`);
      for (const who of sides) {
        const registry = await startRegistry('none');
        const proxy = await createFaultProxy({ target: registry.url, route: registryRouteOf, throttleBytesPerSecond: THROTTLE, timeoutPolicy: { respond408AfterMs: BUDGET_MS } });
        const via = new URL(proxy.url).host;
        const t = performance.now();
        let note = '';
        try {
          if (who.startsWith('sdk:')) {
            const method = who.slice(4) as PushMethod | 'default';
            const astro = await createFakeAstro({ deployments: [{ id: 'clbenchthr', runtimeVersion: '3.1-2', isDagDeployEnabled: false }], imageRegistry: via, rolloutDelayMs: 100 });
            try {
              const r = await deploy(new AstroClient({ baseUrl: astro.baseUrl, token: astro.token }), 'clbenchthr', method, 'cold');
              images.add(r.imageId);
              note = `completed, pushed by ${r.push.method}${r.push.fallback ? ` after the daemon push failed: ${r.push.fallback.reason.slice(0, 90)}` : ''}`;
            } finally {
              await astro.close();
            }
          } else {
            await cliRun(via, 'throttled', 'cold');
            note = 'completed';
          }
        } catch (err) {
          note = `FAILED: ${String((err as { stderr?: string }).stderr || (err as Error).message).split('\n').filter(Boolean).at(-1)?.slice(0, 110)}`;
        } finally {
          await proxy.close();
          await registry.stop();
        }
        console.log(`${(who === 'cli' ? 'docker build + push' : `deployProject (${who.slice(4)})`).padEnd(28)}${fmt(performance.now() - t).padStart(9)}   ${note}`);
      }
    }
  } finally {
    await removeImages(sdkTag, cliTag, bkTag, ...refs, ...images);
    await rm(sdkDir, { recursive: true, force: true });
    await rm(cliDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
