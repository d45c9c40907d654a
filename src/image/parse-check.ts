/**
 * The DAG parse check, as the Astro CLI runs it before an image deploy (`astro deploy --parse`):
 * create a container of the image running pytest on `.astro/test_dag_integrity_default.py`, copy
 * the project's `dags`, `tests`, `plugins`, `include` and `.astro` into `/usr/local/airflow/`, start
 * it, collect its output, read its exit code, remove it. Everything goes through the Engine API
 * (no `docker` binary), and nothing is written into the project.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { throwIfAborted } from '../core/abort.js';
import { emitterFor } from '../core/emitter.js';
import { abortAware } from '../core/scope.js';
import { ErrorCodes, ImageError, isAstroError } from '../core/errors.js';
import { dockerClient, engineCall } from './docker.js';
import type { DockerContainerLike } from './docker-like.js';
import { packTrees, type PackTree } from './tar.js';
import type { DockerOptions } from './types.js';

/** Where the CLI puts the project inside the container. */
export const AIRFLOW_HOME = '/usr/local/airflow';
/** The integrity test the CLI runs. */
export const DAG_INTEGRITY_TEST = '.astro/test_dag_integrity_default.py';

/** Options of {@link runDagParseCheck}. */
export interface DagParseCheckOptions extends DockerOptions {
  /** The DAGs folder; copied to `/usr/local/airflow/dags`. */
  dagsDir: string;
  /** The Astro project folder, whose `tests`, `plugins`, `include` and `.astro` are copied when present. @default the parent of `dagsDir` */
  projectDir?: string;
  /** Project folders copied besides `dags`. @default ['tests', 'plugins', 'include', '.astro'] */
  copyDirs?: string[];
  /** Command run in the container. @default ['pytest', '.astro/test_dag_integrity_default.py'] */
  command?: string[];
  /** Working directory in the container. @default '/usr/local/airflow' */
  workdir?: string;
  /** Environment variables for the container. */
  env?: Record<string, string>;
  /** A `.env`-style file (KEY=VALUE lines) whose variables are passed, like the CLI's `--env`. */
  envFile?: string;
  /** Kill the check after this long, in milliseconds. @default 600000 */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Output of the container (stdout and stderr) as it comes, redacted. A callback that throws is ignored. */
  onOutput?: (chunk: string) => void;
  /**
   * When set, the removal of the (exited) container is handed here instead of awaited, so the
   * caller can go on while the daemon deletes it: on a copying storage driver (vfs) that is a
   * delete of the whole image's files, 0.3-0.5 s. The promise never rejects; the caller must
   * await it before it is done. @default the removal is awaited before the check returns
   */
  onContainerRemoval?: (removal: Promise<void>) => void;
}

/** Result of {@link runDagParseCheck}. */
export interface DagParseCheckResult {
  /** True when the command exited 0 (or the check was skipped). */
  passed: boolean;
  exitCode: number;
  /** Everything the command printed (stdout and stderr, interleaved), at most the last 1 MiB. */
  output: string;
  /** Set when the check did not run: the integrity test file is missing (run `astro dev init` to create it). */
  skipped?: 'no-integrity-test';
}

const MAX_OUTPUT = 1024 * 1024;

/**
 * Parse an env file as `astro dev` reads it (`docker compose`): `KEY=VALUE` lines, comments and
 * blank lines ignored, `export ` allowed, surrounding quotes removed, and a bare `KEY` taking this
 * process's value (left out when it has none), as `docker --env-file` and compose both do.
 * `env` is the environment bare keys are read from. @default process.env
 */
export function parseEnvFile(text: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) {
      const key = line.replace(/^export\s+/, '');
      if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) && env[key] !== undefined) out[key] = env[key];
      continue;
    }
    if (eq === 0) continue;
    const key = line.slice(0, eq).replace(/^export\s+/, '').trim();
    let value = line.slice(eq + 1).trim();
    if ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'"))) value = value.slice(1, -1);
    out[key] = value;
  }
  return out;
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

function checkError(message: string, image: string, cause?: unknown): ImageError {
  return new ImageError(ErrorCodes.IMAGE_PARSE_CHECK_ERROR, message, image, cause === undefined ? {} : { cause });
}

/**
 * Run the DAG integrity test in a container of `image` (see the module comment). A failing test is
 * a normal result (`passed: false`, with the output); only a check that cannot run throws.
 *
 * @throws ImageError `ASTRO_IMAGE_PARSE_CHECK_ERROR` (no DAGs folder, container failed to run, timeout),
 *   `ASTRO_IMAGE_NOT_FOUND`, `ASTRO_IMAGE_DOCKER_UNAVAILABLE`; AstroAbortError when `signal` fires.
 */
export async function runDagParseCheck(image: string, options: DagParseCheckOptions): Promise<DagParseCheckResult> {
  const signal = options.signal;
  throwIfAborted(signal);
  const dagsDir = resolve(options.dagsDir);
  if (!(await isDir(dagsDir))) throw checkError(`DAGs folder ${dagsDir} does not exist; nothing to parse.`, image);
  const projectDir = resolve(options.projectDir ?? dirname(dagsDir));
  const workdir = options.workdir ?? AIRFLOW_HOME;
  const command = options.command ?? ['pytest', DAG_INTEGRITY_TEST];
  if (!options.command && !(await stat(join(projectDir, DAG_INTEGRITY_TEST)).then(() => true, () => false))) {
    return { passed: true, exitCode: 0, output: '', skipped: 'no-integrity-test' };
  }
  const env: Record<string, string> = {};
  if (options.envFile) {
    let text: string;
    try {
      text = await readFile(options.envFile, 'utf8');
    } catch (err) {
      throw checkError(`Cannot read the env file ${options.envFile}: ${(err as Error).message}`, image, err);
    }
    Object.assign(env, parseEnvFile(text));
  }
  Object.assign(env, options.env);

  const trees: PackTree[] = [{ from: dagsDir, to: `${workdir}/dags` }];
  for (const name of options.copyDirs ?? ['tests', 'plugins', 'include', '.astro']) {
    const from = join(projectDir, name);
    if (from !== dagsDir && (await isDir(from))) trees.push({ from, to: `${workdir}/${name}` });
  }

  const docker = await dockerClient(options.docker, 'run the tests in a container');
  const container: DockerContainerLike = await engineCall(
    'create the parse-check container',
    image,
    () =>
      docker.createContainer({
        Image: image,
        Cmd: command,
        WorkingDir: workdir,
        Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
        Labels: { 'io.astro-deploy-sdk.purpose': 'dag-parse-check' },
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
      }),
    ErrorCodes.IMAGE_PARSE_CHECK_ERROR,
  );
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  let attached: NodeJS.ReadableStream | undefined;
  const kill = () => container.kill().catch(() => undefined);
  const onAbort = () => void kill();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    // Paths in the archive are absolute from "/" so no folder above them needs to exist first.
    const archive = Readable.from(packTrees(trees.map((t) => ({ from: t.from, to: t.to.replace(/^\//, '') }))));
    await engineCall('copy the project into the container', image, () => container.putArchive(archive, { path: '/' }), ErrorCodes.IMAGE_PARSE_CHECK_ERROR);
    throwIfAborted(signal);
    // The output as the process writes it, attached before the start as `docker start -a` does:
    // the daemon's log driver would cut long lines into 16 KiB entries stored as text, turning a
    // character cut in two into U+FFFD.
    if (container.attach) {
      const attach = container.attach.bind(container);
      attached = await engineCall('attach to the parse-check container', image, () => attach({ stream: true, stdout: true, stderr: true }), ErrorCodes.IMAGE_PARSE_CHECK_ERROR);
    }
    await engineCall('start the parse-check container', image, () => container.start(), ErrorCodes.IMAGE_PARSE_CHECK_ERROR);
    timer = setTimeout(() => {
      timedOut = true;
      void kill();
    }, options.timeoutMs ?? 600_000);
    let output = '';
    // The caller's callback gets redacted text; one that throws is ignored.
    const emitOutput = emitterFor(options.onOutput);
    // One decoder per stream: a character split between two frames of stdout arrives whole,
    // whatever stderr wrote in between.
    const collector = () => {
      const decoder = new StringDecoder('utf8');
      const take = (text: string) => {
        if (text === '') return;
        emitOutput(text);
        output += text;
        if (output.length > MAX_OUTPUT) output = output.slice(-MAX_OUTPUT);
      };
      // demuxStream only calls write(), once per frame, as it parses them.
      const sink = { write: (chunk: Buffer) => (take(decoder.write(chunk)), true) } as unknown as NodeJS.WritableStream;
      return { sink, flush: () => take(decoder.end()) };
    };
    const stdout = collector();
    const stderr = collector();
    const stream =
      attached ??
      ((await engineCall(
        'read the parse-check output',
        image,
        () => container.logs({ follow: true, stdout: true, stderr: true }),
        ErrorCodes.IMAGE_PARSE_CHECK_ERROR,
      )) as NodeJS.ReadableStream);
    await new Promise<void>((res, rej) => {
      docker.modem.demuxStream(stream, stdout.sink, stderr.sink);
      stream.on('end', () => res());
      stream.on('error', rej);
    });
    stdout.flush();
    stderr.flush();
    const waited = (await engineCall('wait for the parse-check container', image, () => container.wait(), ErrorCodes.IMAGE_PARSE_CHECK_ERROR)) as {
      StatusCode?: number;
    };
    throwIfAborted(signal);
    if (timedOut) throw checkError(`The DAG parse check did not finish within ${options.timeoutMs ?? 600_000} ms and was stopped.`, image);
    const exitCode = waited.StatusCode ?? -1;
    if (exitCode === 127 || exitCode === 126) {
      throw checkError(
        `The parse-check command (${command.join(' ')}) could not run in ${image} (exit ${exitCode}): ${output.slice(-500)}`,
        image,
      );
    }
    return { passed: exitCode === 0, exitCode, output };
  } catch (err) {
    if (signal?.aborted) throw abortAware(err, signal);
    if (isAstroError(err)) throw err;
    throw checkError(`The DAG parse check could not run: ${(err as Error).message}`, image, err);
  } finally {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    (attached as Partial<Readable> | undefined)?.destroy?.();
    const removal = container.remove({ force: true }).then(
      () => undefined,
      () => undefined,
    );
    if (options.onContainerRemoval) options.onContainerRemoval(removal);
    else await removal;
  }
}
