/**
 * `runProjectTests`: the tests `astro deploy` runs in the built image before anything is pushed,
 * as one gate for every image flow.
 *
 * In a container of the image, with the project's `dags`, `tests`, `plugins`, `include` and
 * `.astro` copied to `/usr/local/airflow/` (the DAG parse check's container, see
 * `parse-check.ts`):
 * - `parse` runs pytest on `.astro/test_dag_integrity_default.py`, the DAG integrity test that
 *   `astro dev init` writes; when the file is missing, a `tests:warning` says so and the suite is
 *   skipped, as the CLI goes on; images below Astro Runtime 4.1.0 skip it, as the CLI does, and so
 *   does a truthy `ASTRONOMER_SKIP_PARSE` in the environment;
 * - `pytest` runs the project's `tests/` folder (or `testFile`);
 * - `parse+pytest` runs both, the parse first; `none` runs nothing.
 * A project without any `.py` file under `dags/` skips its tests, as the CLI's image deploys do.
 * A failure is a {@link ProjectTestsError} (`ASTRO_IMAGE_PARSE_FAILED` or
 * `ASTRO_PROJECT_TESTS_FAILED`) carrying the container's output; the deploy flows create
 * nothing at Astro before this gate passed.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { join, normalize, resolve, sep } from 'node:path';
import { emitterFor } from '../core/emitter.js';
import { ErrorCodes, ProjectError, ProjectTestsError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { runInScope } from '../core/scope.js';
import { inspectImage } from './inspect.js';
import { DAG_INTEGRITY_TEST, runDagParseCheck, type DagParseCheckResult } from './parse-check.js';
import { compareRuntimeVersions } from './runtime.js';
import type { DockerOptions } from './types.js';

/** Which tests run: the CLI's `--parse`, `--pytest`, both, or none. */
export type ProjectTestsMode = 'parse' | 'pytest' | 'parse+pytest' | 'none';

/** A suite of {@link runProjectTests}. */
export type ProjectTestSuite = 'parse' | 'pytest';

/** Oldest Astro Runtime whose images can run the DAG integrity test (the CLI skips the parse below it). */
export const PARSE_MIN_RUNTIME = '4.1.0';

/** Project folders copied into the test container, as the CLI copies them. */
export const PROJECT_TEST_DIRS: readonly string[] = ['dags', 'tests', 'plugins', 'include', '.astro'];

/** Options of {@link runProjectTests}. */
export interface ProjectTestsOptions extends DockerOptions {
  /** Which tests run. @default 'parse' (what `astro deploy` runs for an image deploy) */
  tests?: ProjectTestsMode;
  /** The DAG folder copied to `/usr/local/airflow/dags`. @default '<projectDir>/dags' */
  dagsDir?: string;
  /**
   * The file (or folder) pytest runs instead of `tests/` (the CLI's `--test`), relative to the
   * project; it must be inside one of the copied folders (`tests/test_x.py`).
   */
  testFile?: string;
  /**
   * A `.env`-style file (KEY=VALUE lines) whose variables the container gets, as the CLI's
   * `--env`. A given file must exist. @default the project's `.env` when there is one
   */
  envFile?: string;
  /** More environment variables for the container (over those of `envFile`). */
  env?: Record<string, string>;
  /** The image's Astro Runtime version, when known. @default read from the image's label */
  runtimeVersion?: string;
  /** Limit of each suite's run, in milliseconds. @default 600000 */
  timeoutMs?: number;
  /** Stops the running container; rejects with `AstroAbortError`. */
  signal?: AbortSignal;
  /** `tests:*` events. Exceptions thrown here are ignored. */
  onEvent?: (event: ProjectTestsEvent) => void;
  /**
   * When set, each test container's removal is handed here instead of awaited (as `runDagParseCheck`'s
   * option of the same name): the caller goes on while the daemon deletes it, and must await the
   * promises (they never reject) before it is done. @default awaited
   */
  onContainerRemoval?: (removal: Promise<void>) => void;
  /** Where ignored listener errors are noted (debug level). */
  logger?: Logger;
}

/** Why a suite did not run. */
export type ProjectTestsSkipReason =
  | 'no-dags'
  | 'no-integrity-test'
  | 'no-tests-folder'
  | 'runtime-too-old'
  | 'ASTRONOMER_SKIP_PARSE'
  | 'force';

/** Events of {@link runProjectTests}. */
export type ProjectTestsEvent =
  | {
      type: 'tests:suite';
      suite: ProjectTestSuite;
      status: 'started' | 'passed' | 'failed' | 'skipped';
      /** The command run in the container (`started`). */
      command?: string[];
      /** Why it was skipped (`skipped`). */
      reason?: ProjectTestsSkipReason;
      /** The container's exit code (`passed`, `failed`). */
      exitCode?: number;
      /** Run time in milliseconds (`passed`, `failed`). */
      durationMs?: number;
    }
  /** Output of the test container as it comes (stdout and stderr). */
  | { type: 'tests:output'; suite: ProjectTestSuite; chunk: string }
  /** Something the user should know; the tests go on. */
  | { type: 'tests:warning'; code: 'NO_INTEGRITY_TEST' | 'NO_TESTS_FOLDER' | 'NO_DAGS'; message: string };

/** How one suite went. */
export interface ProjectSuiteResult {
  status: 'passed' | 'skipped';
  /** Set when skipped. */
  reason?: ProjectTestsSkipReason;
  /** The command run in the container. */
  command?: string[];
  exitCode?: number;
  /** What the container printed, at most the last 1 MiB. */
  output?: string;
  /** Run time in milliseconds. */
  durationMs?: number;
}

/** Result of {@link runProjectTests}: one entry per suite the mode names. */
export interface ProjectTestsResult {
  mode: ProjectTestsMode;
  parse?: ProjectSuiteResult;
  pytest?: ProjectSuiteResult;
}

/** The suites of a mode, in the order they run. */
export function suitesOf(mode: ProjectTestsMode): ProjectTestSuite[] {
  switch (mode) {
    case 'parse':
      return ['parse'];
    case 'pytest':
      return ['pytest'];
    case 'parse+pytest':
      return ['parse', 'pytest'];
    case 'none':
      return [];
    default:
      throw new ProjectError(ErrorCodes.PROJECT_INVALID, `tests must be 'parse', 'pytest', 'parse+pytest' or 'none'; got ${String(mode)}.`, '');
  }
}

/** The result of a mode whose every suite was skipped for `reason` (the deploy flows' `force`). */
export function skippedTests(mode: ProjectTestsMode, reason: ProjectTestsSkipReason): ProjectTestsResult {
  const out: ProjectTestsResult = { mode };
  for (const suite of suitesOf(mode)) out[suite] = { status: 'skipped', reason };
  return out;
}

async function exists(path: string, kind: 'file' | 'dir' | 'any' = 'any'): Promise<boolean> {
  const st = await stat(path).catch(() => undefined);
  if (!st) return false;
  return kind === 'any' || (kind === 'dir' ? st.isDirectory() : st.isFile());
}

/**
 * True when `dir` holds a `.py` file at any depth, through symbolic links too: the CLI counts
 * `.py` names, and a `dags/` made of links to shared code has DAGs to test. Each real folder is
 * read once, so a link loop ends.
 */
async function hasPythonFile(dir: string, seen = new Set<string>()): Promise<boolean> {
  const real = await realpath(dir).catch(() => undefined);
  if (real === undefined || seen.has(real)) return false;
  seen.add(real);
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if ((e.isFile() || e.isSymbolicLink()) && e.name.endsWith('.py')) return true;
  for (const e of entries) {
    const folder = e.isDirectory() || (e.isSymbolicLink() && (await exists(join(dir, e.name), 'dir')));
    if (folder && (await hasPythonFile(join(dir, e.name), seen))) return true;
  }
  return false;
}

const truthy = (value: string | undefined) => value !== undefined && /^(1|t|true|y|yes|on)$/i.test(value.trim());

/**
 * Run the project's tests in a container of `image` (see the module comment).
 *
 * @param image an image name or ID in the Docker daemon (the built project image).
 * @param projectDir the Astro project folder whose files are copied into the container.
 * @throws ProjectTestsError `ASTRO_IMAGE_PARSE_FAILED` (the DAG integrity test failed) or
 *   `ASTRO_PROJECT_TESTS_FAILED` (pytest failed), with `output` and `exitCode`;
 *   ProjectError `ASTRO_PROJECT_INVALID` (a given `testFile` or `envFile` is missing);
 *   ImageError `ASTRO_IMAGE_PARSE_CHECK_ERROR` (the container could not run),
 *   `ASTRO_IMAGE_NOT_FOUND`, `ASTRO_IMAGE_DOCKER_UNAVAILABLE`; AstroAbortError when `signal` fires.
 */
export async function runProjectTests(image: string, projectDir: string, options: ProjectTestsOptions = {}): Promise<ProjectTestsResult> {
  return runInScope(options.signal, (scope) => run(image, resolve(projectDir), options, scope.signal));
}

async function run(image: string, dir: string, options: ProjectTestsOptions, signal: AbortSignal): Promise<ProjectTestsResult> {
  const mode = options.tests ?? 'parse';
  const suites = suitesOf(mode);
  const emit = emitterFor<ProjectTestsEvent>(options.onEvent, options.logger);
  const result: ProjectTestsResult = { mode };
  if (!suites.length) return result;

  const skip = (suite: ProjectTestSuite, reason: ProjectTestsSkipReason) => {
    result[suite] = { status: 'skipped', reason };
    emit({ type: 'tests:suite', suite, status: 'skipped', reason });
  };

  let envFile = options.envFile;
  if (envFile !== undefined) {
    envFile = resolve(dir, envFile);
    if (!(await exists(envFile, 'file'))) throw new ProjectError(ErrorCodes.PROJECT_INVALID, `The env file ${envFile} does not exist.`, envFile);
  } else if (await exists(join(dir, '.env'), 'file')) {
    envFile = join(dir, '.env');
  }
  let pytestTarget = 'tests';
  if (options.testFile !== undefined) {
    const rel = normalize(options.testFile).split(sep).join('/').replace(/^\.\//, '');
    const top = rel.split('/')[0] ?? '';
    if (rel.startsWith('../') || !PROJECT_TEST_DIRS.includes(top) || !(await exists(join(dir, rel)))) {
      throw new ProjectError(
        ErrorCodes.PROJECT_INVALID,
        `The test file ${options.testFile} must exist inside one of the project folders copied into the test container (${PROJECT_TEST_DIRS.join(', ')}).`,
        join(dir, rel),
      );
    }
    pytestTarget = rel;
  }

  const dagsDir = options.dagsDir === undefined ? join(dir, 'dags') : resolve(dir, options.dagsDir);
  if (!(await hasPythonFile(dagsDir))) {
    // As the CLI: an image deploy without DAG files runs no tests.
    emit({ type: 'tests:warning', code: 'NO_DAGS', message: `No .py file under ${dagsDir}: the tests are skipped.` });
    for (const suite of suites) skip(suite, 'no-dags');
    return result;
  }

  for (const suite of suites) {
    let command: string[];
    if (suite === 'parse') {
      if (truthy(process.env.ASTRONOMER_SKIP_PARSE)) {
        skip(suite, 'ASTRONOMER_SKIP_PARSE');
        continue;
      }
      const runtime = options.runtimeVersion ?? (await inspectImage({ imageName: image }, { ...(options.docker ? { docker: options.docker } : {}), signal })).runtimeVersion;
      if (runtime && compareRuntimeVersions(runtime, PARSE_MIN_RUNTIME) < 0) {
        skip(suite, 'runtime-too-old');
        continue;
      }
      if (!(await exists(join(dir, DAG_INTEGRITY_TEST), 'file'))) {
        emit({
          type: 'tests:warning',
          code: 'NO_INTEGRITY_TEST',
          message: `${DAG_INTEGRITY_TEST} is missing, so the DAGs were not parsed. Run \`astro dev init\` in the project to create it.`,
        });
        skip(suite, 'no-integrity-test');
        continue;
      }
      command = ['pytest', DAG_INTEGRITY_TEST];
    } else {
      if (options.testFile === undefined && !(await exists(join(dir, 'tests'), 'dir'))) {
        emit({ type: 'tests:warning', code: 'NO_TESTS_FOLDER', message: `The project has no tests/ folder: pytest was not run.` });
        skip(suite, 'no-tests-folder');
        continue;
      }
      command = ['pytest', pytestTarget];
    }

    emit({ type: 'tests:suite', suite, status: 'started', command });
    const started = Date.now();
    const check: DagParseCheckResult = await runDagParseCheck(image, {
      dagsDir,
      projectDir: dir,
      copyDirs: PROJECT_TEST_DIRS.filter((d) => d !== 'dags'),
      command,
      ...(envFile ? { envFile } : {}),
      ...(options.env ? { env: options.env } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.docker ? { docker: options.docker } : {}),
      signal,
      onOutput: (chunk) => emit({ type: 'tests:output', suite, chunk }),
      ...(options.onContainerRemoval ? { onContainerRemoval: options.onContainerRemoval } : {}),
    });
    const durationMs = Date.now() - started;
    if (!check.passed) {
      emit({ type: 'tests:suite', suite, status: 'failed', exitCode: check.exitCode, durationMs });
      const shown = check.output.slice(-4000);
      throw suite === 'parse'
        ? new ProjectTestsError(
            ErrorCodes.IMAGE_PARSE_FAILED,
            `Your DAGs did not parse in image ${image} (the DAG integrity test exited ${check.exitCode}). Fix the errors below, or deploy with force: true to skip the tests.\n${shown}`,
            { reference: image, suite, exitCode: check.exitCode, output: check.output },
          )
        : new ProjectTestsError(
            ErrorCodes.PROJECT_TESTS_FAILED,
            `The project's tests failed in image ${image} (pytest ${pytestTarget} exited ${check.exitCode}). Fix them, or deploy with force: true to skip the tests.\n${shown}`,
            { reference: image, suite, exitCode: check.exitCode, output: check.output },
          );
    }
    result[suite] = { status: 'passed', command, exitCode: check.exitCode, output: check.output, durationMs };
    emit({ type: 'tests:suite', suite, status: 'passed', exitCode: check.exitCode, durationMs });
  }
  return result;
}
