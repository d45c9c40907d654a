import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { defineConfig } from 'vitest/config';

/**
 * Three tiers, as vitest projects (`vitest run --project unit`), and a fourth project that runs
 * some service files again on another daemon (`containerd-store`, below):
 * - `services`: tests that start or reach a service (the Docker engine, a registry, Azurite, the
 *   Astro-like runtime image): a test file that imports one of the helpers below, itself or
 *   through a local helper module of its own;
 * - `package`: tests of the built and packed package (test/build/, test/package/): they run the
 *   build or `npm pack` and install the tarball;
 * - `unit`: the rest, which needs nothing but Node (in-process fakes on 127.0.0.1 included):
 *   `npm run test:unit`, under a minute; except the few slow files listed in `SLOW` (child
 *   processes killed mid-upload, gigabyte tars), which run with `services`.
 * A file's tier follows from what it imports, so a new test lands in the right one by itself.
 */
const SERVICE_HELPERS = ['test/helpers/docker.ts', 'test/helpers/azurite.ts', 'test/helpers/registry.ts', 'test/helpers/runtime-image.ts'].map((p) =>
  resolve(p),
);
const PACKAGE_DIRS = ['test/build/', 'test/package/'];
/** Files that need no service but take over 5 s each: kept out of the fast tier. */
const SLOW = [
  'test/upload/upload-kill.test.ts',
  'test/client/deploy-dags-race.test.ts',
  'test/image/tar-large.test.ts',
  // The CLI run as child processes, a few seconds each (test/cli/bin.test.ts, one quick run of the built bin, stays).
  'test/cli/commands.test.ts',
  'test/cli/exit-codes.test.ts',
  'test/cli/output.test.ts',
];

function testFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.test.ts')).map((f) => resolve(dir, f));
}

/** Local modules `file` imports (relative `.js` specifiers under test/, read as their `.ts` source). */
function localImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts'));
    if (target.startsWith(resolve('test')) && target.endsWith('.ts')) out.push(target);
  }
  return out;
}

function needsServices(file: string, seen = new Set<string>()): boolean {
  if (SERVICE_HELPERS.includes(file)) return true;
  if (seen.has(file)) return false;
  seen.add(file);
  let imports: string[];
  try {
    imports = localImports(file);
  } catch {
    return false;
  }
  return imports.some((f) => needsServices(f, seen));
}

/**
 * Files that need a newer Node than the one running: undici 8 needs Node 22.19. They are left out
 * of the run instead of reported as skipped; CI runs them on Node 22 and 24 (see .ci/run).
 */
const [nodeMajor, nodeMinor] = process.versions.node.split('.').map(Number) as [number, number];
const NEEDS_NEWER_NODE = nodeMajor > 22 || (nodeMajor === 22 && nodeMinor >= 19) ? [] : ['test/client/undici8-runtime.test.ts'];

const all = testFiles('test')
  .map((f) => relative(process.cwd(), f))
  .filter((f) => !NEEDS_NEWER_NODE.includes(f));
const packageTier = all.filter((f) => PACKAGE_DIRS.some((d) => f.startsWith(d)));
/**
 * The `containerd-store` project runs these files again on a daemon with Docker's containerd image
 * store (scripts/start-dockerd.sh), where image IDs are manifest digests: the flows that read a
 * daemon image end to end, and the file that tests that store's differences (only run there).
 */
const CONTAINERD_ONLY = ['test/image/containerd-store.test.ts'];
const CONTAINERD_STORE = [...CONTAINERD_ONLY, 'test/project/deploy-project.test.ts', 'test/image/push-daemon.test.ts', 'test/image/validate.test.ts'].filter((f) => all.includes(f));
const servicesTier = all.filter((f) => !packageTier.includes(f) && !CONTAINERD_ONLY.includes(f) && (SLOW.includes(f) || needsServices(resolve(f))));
const unitTier = all.filter((f) => !packageTier.includes(f) && !servicesTier.includes(f) && !CONTAINERD_ONLY.includes(f));

/**
 * The run's folders, made once per process: vitest evaluates this file once, then again for each
 * project, and each evaluation would otherwise make folders of its own and point the image
 * removals of the run (read at its end) at a list the tests never wrote. `runCache` holds the
 * SDK's default caches (upload journals, the layer-digest cache: `XDG_CACHE_HOME`), so no run sees
 * another's state and the developer's own cache is left alone; test helpers' caches (the runtime
 * image) stay in ~/.cache.
 */
const runFolders = ((globalThis as Record<symbol, { runCache: string; runTmp: string } | undefined>)[Symbol.for('astro-sdk-test.run-folders')] ??= makeRunFolders());
const { runCache, runTmp } = runFolders;

function makeRunFolders(): { runCache: string; runTmp: string } {
  const folders = {
    runCache: mkdtempSync(join(tmpdir(), 'astro-sdk-test-cache-')),
    /**
     * The tests' temp folder (`TMPDIR` of every worker and what they spawn), checked when the run
     * ends: whatever a test, a helper or the SDK left behind fails the run, named, instead of
     * piling up in the machine's /tmp. The compile caches of the tools themselves are expected:
     * tsx's (`tsx-<uid>`, from the children run through tsx) and, on Node 22 and later, Node's
     * (`node-compile-cache`).
     */
    runTmp: mkdtempSync(join(tmpdir(), 'astro-sdk-test-tmp-')),
  };
  process.on('exit', () => {
    rmSync(folders.runCache, { recursive: true, force: true });
    const left = readdirSync(folders.runTmp).filter((name) => !/^(tsx-\d+|node-compile-cache)$/.test(name));
    rmSync(folders.runTmp, { recursive: true, force: true });
    if (left.length === 0) return;
    process.stderr.write(`\nThe tests left ${left.length} item(s) in their temp folder: ${left.join(', ')}. Remove them in the test that makes them.\n`);
    process.exitCode = 1;
  });
  return folders;
}

/** Images built FROM the test runtime image, removed when the run ends (test/helpers/image-removals.ts). */
process.env.ASTRO_TEST_IMAGE_REMOVALS = join(runCache, 'image-removals.txt');
process.env.ASTRO_TEST_IMAGE_REMOVALS_CONTAINERD = join(runCache, 'image-removals-containerd.txt');
const sharedEnv = { XDG_CACHE_HOME: runCache, TMPDIR: runTmp, ASTRO_TEST_IMAGE_REMOVALS: process.env.ASTRO_TEST_IMAGE_REMOVALS };

export default defineConfig({
  test: {
    env: sharedEnv,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: keep the number of forked workers small so service-backed tests do not starve.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'unit', include: unitTier.length ? unitTier : ['test/__none__'] } },
      { extends: true, test: { name: 'package', include: packageTier.length ? packageTier : ['test/__none__'], globalSetup: ['test/package/setup.ts'] } },
      { extends: true, test: { name: 'services', include: servicesTier.length ? servicesTier : ['test/__none__'], globalSetup: ['test/helpers/image-removals.ts'] } },
      {
        extends: true,
        test: {
          name: 'containerd-store',
          include: CONTAINERD_STORE.length ? CONTAINERD_STORE : ['test/__none__'],
          env: { ...sharedEnv, ASTRO_SDK_TEST_DOCKER_STORE: 'containerd', ASTRO_TEST_IMAGE_REMOVALS: process.env.ASTRO_TEST_IMAGE_REMOVALS_CONTAINERD },
          globalSetup: ['test/helpers/image-removals-containerd.ts'],
        },
      },
    ],
  },
});
