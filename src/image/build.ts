/**
 * `buildProjectImage`: build an Astro project into a linux/amd64 image through the Docker Engine
 * API (dockerode; no `docker` binary), as `astro deploy` builds it, without writing anything in
 * the project:
 * - the context is the project folder filtered by its `.dockerignore` (Docker's semantics), with
 *   `dags/` left out in memory when the DAGs ship separately, streamed to the daemon;
 * - the platform is always linux/amd64, the platform Astro runs (`docker build --platform=linux/amd64`);
 * - `pull: 'auto'` pulls the base images only when every `FROM` is an Astro Runtime image, as
 *   the CLI decides `--pull`;
 * - build secrets (`RUN --mount=type=secret`) are served through a BuildKit session of our own
 *   (see `buildkit-session.ts`); a daemon without BuildKit gets a typed error before anything runs;
 * - steps and output arrive as `build:*` events; a failed build is an {@link ImageBuildError}
 *   with the failing step and the last lines it printed; an abort stops the build on the daemon.
 *
 * Builder choice (`builder: 'auto'`): the classic builder, whose handling of the uploaded context
 * is `docker build`'s own (a Dockerfile or `.dockerignore` listed in `.dockerignore` is dropped
 * from what `COPY` sees), unless the build needs BuildKit: build secrets, a `# syntax=` directive
 * or what only BuildKit builds as `docker build` does (see {@link dockerfileNeedsBuildKit}).
 */
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { emitterFor } from '../core/emitter.js';
import { linkSignals } from '../core/abort.js';
import { AstroConfigError, ErrorCodes, ImageBuildError, ImageError, isAstroError, ProjectError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { registerSecret } from '../core/redact.js';
import { abortAware, runInScope } from '../core/scope.js';
import { textLines } from '../core/text-lines.js';
import { createBuildContext, type BuildContextStats } from './build-context.js';
import { BuildKitProgress, ClassicBuildProgress, type BuildProgress, type BuildStep, type BuildStepStatus } from './build-progress.js';
import { openBuildSession, type BuildSession } from './buildkit-session.js';
import { dockerClient, dockerUnavailable, isDockerUnreachable } from './docker.js';
import type { DockerLike } from './docker-like.js';
import { dockerfileInstructions, readAstroProject, shouldPullBaseImages, type AstroProject } from './project.js';
import type { DockerOptions } from './types.js';

export type { BuildStep, BuildStepStatus } from './build-progress.js';
export type { BuildContextStats } from './build-context.js';

/** The platform every project image is built for: Astro runs linux/amd64 only. */
export const BUILD_PLATFORM = 'linux/amd64';

/** Where a build secret's value comes from, as `--build-secret id=...,src=<file>` or `env=<VAR>`. */
export type BuildSecretSource = { file: string } | { env: string };

/** The builders {@link buildProjectImage} can use. */
export type ImageBuilder = 'classic' | 'buildkit';

/** Options of {@link buildProjectImage}. */
export interface BuildProjectImageOptions extends DockerOptions {
  /** The Dockerfile, relative to the project folder. @default 'Dockerfile' */
  dockerfile?: string;
  /**
   * Name the image gets in the daemon (`repository[:tag]`). Keeping one name between builds keeps
   * rebuilds fast, as the CLI's `<namespace>/airflow:latest` does.
   * @default '<project folder name>/airflow:latest' (lower-cased, invalid characters replaced)
   */
  tag?: string;
  /** `ARG` values, as `--build-arg`. */
  buildArgs?: Record<string, string>;
  /**
   * Secrets for `RUN --mount=type=secret,id=<id>`, read from a file or an environment variable
   * (as `--build-secret`). They need BuildKit; they are never written to the image, the context,
   * events or errors (values of 8 characters or more are redacted wherever they would appear).
   */
  buildSecrets?: Record<string, BuildSecretSource>;
  /**
   * Pull newer base images first. `'auto'` is the CLI's rule: pull only when every `FROM` names
   * a `quay.io/astronomer/...` or `astrocrpublic.azurecr.io/...` image. @default 'auto'
   */
  pull?: 'auto' | boolean;
  /** Labels added to the image. */
  labels?: Record<string, string>;
  /**
   * Leave `dags/` out of the image (DAG deploys ship it separately), as if `dags/` were the last
   * line of `.dockerignore`; the file itself is not touched. @default false
   */
  excludeDags?: boolean;
  /** More `.dockerignore`-style patterns, applied after `.dockerignore` (and after `dags/`). */
  exclude?: string[];
  /** `'auto'` picks as described in the module comment. @default 'auto' */
  builder?: 'auto' | ImageBuilder;
  /**
   * Network of the `RUN` steps (`--network`): `'none'` for builds that must not reach the network,
   * `'host'`. @default the daemon's default (the bridge network)
   */
  networkMode?: string;
  /** Build without the cache (`--no-cache`). @default false */
  noCache?: boolean;
  /** Build up to this stage of a multi-stage Dockerfile (`--target`). */
  target?: string;
  /** Stops the build, on the daemon too; rejects with `AstroAbortError`. */
  signal?: AbortSignal;
  /** `build:*` events. Exceptions thrown here are ignored. */
  onEvent?: (event: BuildEvent) => void;
  /**
   * When set, the removal of the classic builder's intermediate containers (one per `RUN` step)
   * is handed here instead of awaited, so the caller can go on while the daemon deletes them: on a
   * copying storage driver (vfs) each is a delete of the whole image's files, 0.5-2 s, which
   * `docker build` waits for. The promise never rejects; the caller must await it before it is
   * done. @default the removal is awaited before the build resolves or rejects
   */
  onContainerRemoval?: (removal: Promise<void>) => void;
  /** Where ignored listener errors are noted (debug level). */
  logger?: Logger;
}

/** Events of {@link buildProjectImage}. Payloads never hold secret values. */
export type BuildEvent =
  | {
      type: 'build:start';
      projectDir: string;
      dockerfile: string;
      tag: string;
      builder: ImageBuilder;
      platform: string;
      pull: boolean;
      /** Patterns applied after `.dockerignore` (`dags/` when the DAGs are left out). */
      exclude: string[];
    }
  /** The whole context was sent. */
  | ({ type: 'build:context' } & BuildContextStats)
  /** A Dockerfile step started, was found in the cache, finished or failed. */
  | { type: 'build:step'; status: BuildStepStatus; name: string; index?: number; total?: number; durationMs?: number }
  /** One line printed by the build (a `RUN` step's output, or the builder's own messages). */
  | { type: 'build:output'; line: string; step?: string }
  | { type: 'build:complete'; imageId: string; tag: string; builder: ImageBuilder; durationMs: number; steps: number; cachedSteps: number };

/** Result of {@link buildProjectImage}. */
export interface BuildProjectImageResult {
  /** The image ID (`sha256:...`). */
  imageId: string;
  /** The name given to the image in the daemon. */
  tag: string;
  /** Always `linux/amd64`. */
  platform: string;
  builder: ImageBuilder;
  /** Whether base images were pulled. */
  pulled: boolean;
  /** What the context held. */
  context: BuildContextStats;
  /** The Dockerfile steps, in the order they ran. */
  steps: BuildStep[];
  /** Steps whose result came from the build cache. */
  cachedSteps: number;
  /** Wall time of the build, in milliseconds. */
  durationMs: number;
}

/** A name the daemon accepts for `dir`'s image: `<folder name>/airflow:latest`. */
export function defaultProjectTag(dir: string): string {
  const name = basename(resolve(dir)).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return `${name || 'astro-project'}/airflow:latest`;
}

/** The flags the classic builder knows, by instruction; any other flag is BuildKit's. */
const CLASSIC_FLAGS: Record<string, readonly string[]> = { RUN: [], COPY: ['from', 'chown'], ADD: ['chown'] };
/**
 * BuildKit's automatic platform arguments. The classic builder leaves them empty, so an image
 * built with it would differ, silently, from what `docker build` (BuildKit since Docker 23) makes.
 */
const PLATFORM_ARG = /(\$\{?|^\s*ARG\s+)(TARGET|BUILD)(PLATFORM|OS|ARCH|VARIANT)\b/i;

/**
 * True when the Dockerfile needs BuildKit to build as `docker build` builds it: a `# syntax=`
 * directive, a flag of `RUN`, `COPY` or `ADD` the classic builder does not know (`--mount`,
 * `--network`, `--link`, `--chmod`, `--exclude`, ...), a heredoc, or a platform argument
 * (`TARGETARCH`, `BUILDPLATFORM`, ...). Continuation lines are joined first.
 */
export function dockerfileNeedsBuildKit(text: string): boolean {
  if (/^\s*#\s*syntax\s*=/im.test(text.split(/\r?\n(?!\s*#)/, 1)[0] ?? '')) return true;
  for (const line of dockerfileInstructions(text)) {
    if (PLATFORM_ARG.test(line)) return true;
    const m = /^\s*(RUN|COPY|ADD)\s+(.*)$/i.exec(line);
    if (!m) continue;
    const known = CLASSIC_FLAGS[m[1]!.toUpperCase()]!;
    for (const word of m[2]!.trim().split(/\s+/)) {
      const flag = /^--([a-z-]+)/i.exec(word);
      if (!flag) break;
      if (!known.includes(flag[1]!.toLowerCase())) return true;
    }
    if (/<<-?["']?\w+/.test(m[2]!)) return true;
  }
  return false;
}

async function readSecrets(sources: Record<string, BuildSecretSource>): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const [id, source] of Object.entries(sources)) {
    if (!id || /[,=\s]/.test(id)) throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Build secret id "${id}" is not valid: use letters, digits, "-", "_" or ".".`);
    let value: Buffer;
    if ('file' in source && typeof source.file === 'string') {
      try {
        value = await readFile(source.file);
      } catch (err) {
        throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Build secret "${id}": cannot read ${source.file}: ${(err as Error).message}`, { cause: err });
      }
    } else if ('env' in source && typeof source.env === 'string') {
      const text = process.env[source.env];
      if (text === undefined) throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Build secret "${id}": environment variable ${source.env} is not set.`);
      value = Buffer.from(text, 'utf8');
    } else {
      throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Build secret "${id}" needs { file } or { env }.`);
    }
    // Redacted wherever the build would print it (events, errors).
    const text = value.toString('utf8');
    registerSecret(text);
    if (text.trim() !== text) registerSecret(text.trim());
    out.set(id, value);
  }
  return out;
}

/** Engine API versions as numbers (`1.41` -> [1, 41]) for comparison. */
function apiAtLeast(version: string | undefined, min: [number, number]): boolean {
  const m = /^v?(\d+)\.(\d+)/.exec(version ?? '');
  if (!m) return true;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > min[0] || (major === min[0] && minor >= min[1]);
}

/**
 * Whether the daemon can run BuildKit builds with a session (Engine API 1.39 or later, on Linux),
 * and why not. The client's pinned API version counts too: requests are made with it.
 */
export async function buildKitSupport(docker: DockerLike): Promise<{ available: boolean; reason?: string; apiVersion?: string }> {
  let info: { ApiVersion?: string; Os?: string };
  try {
    info = (await docker.version()) as { ApiVersion?: string; Os?: string };
  } catch (err) {
    if (isDockerUnreachable(err)) throw dockerUnavailable(err, 'build the image');
    throw new ImageBuildError(`Docker could not report its version: ${(err as Error).message}`, { outputTail: [], builder: 'buildkit' }, { cause: err });
  }
  const pinned = docker.modem.version;
  const api = pinned ?? info.ApiVersion;
  if (info.Os && info.Os !== 'linux') return { available: false, reason: `the daemon runs ${info.Os} containers (BuildKit builds need a Linux daemon)`, ...(api ? { apiVersion: api } : {}) };
  if (!apiAtLeast(info.ApiVersion, [1, 39])) return { available: false, reason: `the daemon's Engine API is ${info.ApiVersion} (BuildKit sessions need 1.39, Docker 18.09, or later)`, apiVersion: info.ApiVersion! };
  if (pinned && !apiAtLeast(pinned, [1, 39])) return { available: false, reason: `the Docker client is pinned to Engine API ${pinned} (BuildKit sessions need 1.39 or later)`, apiVersion: pinned };
  return { available: true, ...(api ? { apiVersion: api } : {}) };
}

/** Send `POST /build` through dockerode's modem (dockerode's own `buildImage` opens a session of its own for BuildKit builds). */
function postBuild(docker: DockerLike, context: NodeJS.ReadableStream, query: Record<string, unknown>, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    docker.modem.dial(
      {
        path: '/build?',
        method: 'POST',
        file: context,
        options: query,
        isStream: true,
        abortSignal: signal,
        headers: { 'Content-Type': 'application/x-tar' },
        statusCodes: { 200: true, 400: 'bad parameter', 500: 'server error' },
      },
      (err: unknown, res: unknown) => (err ? reject(err) : resolve(res as IncomingMessage)),
    );
  });
}

/** Feed the daemon's JSON lines to `progress` until the stream ends. */
async function follow(res: IncomingMessage, progress: BuildProgress): Promise<void> {
  const feed = (text: string) => {
    const trimmed = text.trim();
    if (!trimmed) return;
    let message: unknown;
    try {
      message = JSON.parse(trimmed);
    } catch {
      return;
    }
    if (message && typeof message === 'object') progress.line(message as Record<string, unknown>);
  };
  for await (const line of textLines(res as AsyncIterable<Buffer>)) feed(line);
  progress.end();
}

/** A failed build: the daemon's message, the failing step and the last lines of its output. */
function buildFailed(message: string, progress: BuildProgress | undefined, builder: ImageBuilder, tag: string, cause?: unknown): ImageBuildError {
  const step = progress?.failedStep;
  const tail = progress?.outputTail() ?? [];
  const shown = tail.slice(-15).join('\n');
  return new ImageBuildError(
    `The image build failed${step ? ` at step ${step}` : ''}: ${message}${shown ? `\nLast output:\n${shown}` : ''}`,
    { reference: tag, ...(step ? { step } : {}), outputTail: tail, builder },
    cause === undefined ? {} : { cause },
  );
}

/**
 * Build the Astro project in `projectDir` into a linux/amd64 image (see the module comment).
 *
 * @throws ProjectError `ASTRO_PROJECT_NOT_FOUND` (no folder or no Dockerfile) before anything runs,
 *   `ASTRO_PROJECT_INVALID` (an invalid `.dockerignore` pattern; a file that cannot be read, or is
 *   removed, while the context streams);
 *   AstroConfigError `ASTRO_CONFIG_INVALID_OPTION` (unreadable build secret, bad option);
 *   ImageError `ASTRO_IMAGE_BUILDKIT_UNAVAILABLE` (build secrets or a BuildKit-only Dockerfile on a
 *   daemon without BuildKit), `ASTRO_IMAGE_DOCKER_UNAVAILABLE`; ImageBuildError
 *   `ASTRO_IMAGE_BUILD_FAILED`; AstroAbortError when `signal` fires.
 */
export async function buildProjectImage(projectDir: string, options: BuildProjectImageOptions = {}): Promise<BuildProjectImageResult> {
  const project = await readAstroProject(projectDir, options.dockerfile ? { dockerfile: options.dockerfile } : {});
  return runInScope(options.signal, (scope) => build(project, options, scope.signal));
}

async function build(project: AstroProject, options: BuildProjectImageOptions, signal: AbortSignal): Promise<BuildProjectImageResult> {
  const started = Date.now();
  const emit = emitterFor<BuildEvent>(options.onEvent, options.logger);
  const docker = await dockerClient(options.docker, 'build the image');
  const tag = options.tag ?? defaultProjectTag(project.dir);
  const dockerfileText = await readFile(project.dockerfilePath, 'utf8');
  const secrets = await readSecrets(options.buildSecrets ?? {});
  const requested = options.builder ?? 'auto';
  const needsBuildKit = secrets.size > 0 || dockerfileNeedsBuildKit(dockerfileText);
  let builder: ImageBuilder = requested === 'auto' ? (needsBuildKit ? 'buildkit' : 'classic') : requested;
  if (builder === 'classic' && secrets.size > 0) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, "buildSecrets need BuildKit: leave builder at 'auto' (or 'buildkit').");
  }
  if (builder === 'buildkit') {
    const support = await buildKitSupport(docker);
    if (!support.available) {
      const why = secrets.size > 0 ? 'build secrets need BuildKit' : requested === 'buildkit' ? "builder: 'buildkit' was asked for" : 'the Dockerfile uses BuildKit-only syntax';
      throw new ImageError(ErrorCodes.IMAGE_BUILDKIT_UNAVAILABLE, `Cannot build with BuildKit: ${support.reason}; ${why}. Nothing was built.`, tag);
    }
  }
  builder = builder as ImageBuilder;
  const pull = options.pull === undefined || options.pull === 'auto' ? shouldPullBaseImages(project.baseImages) : options.pull;
  const exclude = [...(options.excludeDags ? ['dags/'] : []), ...(options.exclude ?? [])];
  emit({ type: 'build:start', projectDir: project.dir, dockerfile: project.dockerfile, tag, builder, platform: BUILD_PLATFORM, pull, exclude });

  let session: BuildSession | undefined;
  const buildId = randomUUID();
  let intermediate: readonly string[] = [];
  let classic: ClassicBuildProgress | undefined;
  try {
    if (builder === 'buildkit' && secrets.size > 0) session = await openBuildSession(docker, secrets, signal);
    const context = await createBuildContext(project.dir, { dockerfile: project.dockerfile, exclude, signal });
    context.stream.once('end', () => emit({ type: 'build:context', ...context.stats }));
    const query: Record<string, unknown> = {
      t: tag,
      dockerfile: project.dockerfile,
      platform: BUILD_PLATFORM,
      version: builder === 'buildkit' ? '2' : '1',
      // The classic builder's intermediate containers are removed here, not by the daemon (which
      // makes the build wait for each delete), after a failed step too (docker build keeps those):
      // see removeContainers.
      rm: 'false',
      forcerm: 'false',
    };
    if (pull) query.pull = '1';
    if (options.buildArgs && Object.keys(options.buildArgs).length) query.buildargs = options.buildArgs;
    if (options.labels && Object.keys(options.labels).length) query.labels = options.labels;
    if (options.networkMode) query.networkmode = options.networkMode;
    if (options.noCache) query.nocache = 'true';
    if (options.target) query.target = options.target;
    if (builder === 'buildkit') query.buildid = buildId;
    if (session) query.session = session.id;

    const sink = {
      step: (step: BuildStep, status: BuildStepStatus) =>
        emit({
          type: 'build:step',
          status,
          name: step.name,
          ...(step.index !== undefined ? { index: step.index } : {}),
          ...(step.total !== undefined ? { total: step.total } : {}),
          ...(step.durationMs !== undefined && (status === 'done' || status === 'failed') ? { durationMs: step.durationMs } : {}),
        }),
      output: (line: string, step: string | undefined) => emit({ type: 'build:output', line, ...(step ? { step } : {}) }),
    };
    const reader: BuildProgress = builder === 'buildkit' ? new BuildKitProgress(sink) : new ClassicBuildProgress(sink);
    if (reader instanceof ClassicBuildProgress) {
      classic = reader;
      intermediate = reader.containers;
    }
    // A context that cannot be read (a file removed mid-walk, an unreadable file) must not leave
    // the request waiting for bytes that never come: it cancels the build and is the error.
    let contextError: unknown;
    const request = new AbortController();
    const requestSignal = linkSignals(signal, request.signal);
    context.stream.once('error', (err) => {
      if (signal.aborted) return;
      contextError = err;
      request.abort(err);
    });
    const onAbort = () => void stopOnDaemon(docker, builder, buildId, reader);
    requestSignal.signal.addEventListener('abort', onAbort, { once: true });
    try {
      let res: IncomingMessage;
      try {
        res = await postBuild(docker, context.stream, query, requestSignal.signal);
      } catch (err) {
        if (requestSignal.signal.aborted) throw err;
        if (isAstroError(err)) throw err;
        if (isDockerUnreachable(err)) throw dockerUnavailable(err, 'build the image');
        const json = (err as { json?: { message?: unknown } }).json;
        const message = typeof json?.message === 'string' ? json.message : (err as Error).message;
        throw buildFailed(message, reader, builder, tag, err);
      }
      await follow(res, reader);
    } catch (err) {
      if (contextError !== undefined && !signal.aborted) throw contextUnreadable(contextError, project.dir);
      throw err;
    } finally {
      requestSignal.signal.removeEventListener('abort', onAbort);
      requestSignal.dispose();
      // A daemon that answered before reading the whole context, or an abort, leaves the walk
      // suspended with a file open: ending the stream closes it (a no-op once it has ended).
      context.stream.destroy();
    }
    if (contextError !== undefined) throw contextUnreadable(contextError, project.dir);
    if (reader.error !== undefined) throw buildFailed(reader.error, reader, builder, tag);
    if (!reader.imageId) throw buildFailed('the daemon ended the build without reporting an image ID', reader, builder, tag);
    const cachedSteps = reader.steps.filter((s) => s.cached).length;
    const durationMs = Date.now() - started;
    emit({ type: 'build:complete', imageId: reader.imageId, tag, builder, durationMs, steps: reader.steps.length, cachedSteps });
    return {
      imageId: reader.imageId,
      tag,
      platform: BUILD_PLATFORM,
      builder,
      pulled: pull,
      context: { ...context.stats },
      steps: reader.steps,
      cachedSteps,
      durationMs,
    };
  } catch (err) {
    throw abortAware(err, signal);
  } finally {
    session?.close();
    for (const value of secrets.values()) value.fill(0);
    // A container the daemon may still be creating is looked for after the rest is removed: in
    // the promise handed to onContainerRemoval, else in the background (never holding up the
    // abort's rejection, nor the process's exit).
    const hook = options.onContainerRemoval;
    const strayParent = signal.aborted && classic?.containerPending ? classic.parentImage : undefined;
    const stray = strayParent ? () => strayStepContainer(docker, strayParent, started, hook !== undefined).then((ids) => removeContainers(docker, ids)) : undefined;
    if (intermediate.length || stray) {
      const removal = removeContainers(docker, intermediate);
      if (hook) hook(stray ? removal.then(stray) : removal);
      else {
        await removal;
        void stray?.();
      }
    }
  }
}

/**
 * The error of a build stopped because its context could not be read, with the advice its cause
 * calls for: a file without read permission is the project's to fix (or to leave out); a file or
 * folder gone mid-walk means the project changed under the build.
 * @internal Exported for its test.
 */
export function contextUnreadable(error: unknown, projectDir: string): ProjectError {
  const reason = (error as Error | undefined)?.message ?? String(error);
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const advice =
    code === 'EACCES' || code === 'EPERM'
      ? 'A file or folder of the project cannot be read by this process: make it readable, or list it in .dockerignore.'
      : code === 'ENOENT' || code === 'ENOTDIR'
        ? 'Was the project changed during the build?'
        : 'Check the project folder and its disk.';
  return new ProjectError(ErrorCodes.PROJECT_INVALID, `The build context could not be read (${reason}); the build was stopped. ${advice}`, projectDir, { cause: error });
}

/**
 * How long after an abort the daemon is given to finish creating the step container it was on, in
 * milliseconds, and how often it is looked for meanwhile: on a copying storage driver (vfs) under
 * load, a create takes seconds.
 */
const STRAY_WAIT_MS = 15_000;
const STRAY_POLL_MS = 250;

/**
 * The container an aborted classic build left without announcing it: the daemon was creating a
 * step's container (from `parentImage`) when the build was cancelled, so no `Running in` line
 * named it, and it stays, never started. Looked for until it shows up or {@link STRAY_WAIT_MS}
 * passes: created from that image since the build started and never started, which a container
 * of another build would be only for the moment before its start. Without `keepAlive` its timers
 * do not keep the process running (best effort in the background).
 */
async function strayStepContainer(docker: DockerLike, parentImage: string, startedMs: number, keepAlive: boolean): Promise<string[]> {
  const since = Math.floor(startedMs / 1000) - 1;
  const deadline = Date.now() + STRAY_WAIT_MS;
  const filters = JSON.stringify({ status: ['created'] });
  while (Date.now() < deadline) {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, STRAY_POLL_MS);
      if (!keepAlive) timer.unref();
    });
    const list = await new Promise<unknown>((resolve) => {
      try {
        docker.modem.dial({ path: '/containers/json?', options: { all: true, filters }, method: 'GET', statusCodes: { 200: true } }, (err, data) => resolve(err ? [] : data));
      } catch {
        resolve([]);
      }
    });
    const found = (Array.isArray(list) ? (list as Array<{ Id?: unknown; ImageID?: unknown; Created?: unknown }>) : [])
      .filter((c) => typeof c.Id === 'string' && typeof c.ImageID === 'string' && c.ImageID.replace(/^sha256:/, '').startsWith(parentImage))
      .filter((c) => typeof c.Created === 'number' && c.Created >= since)
      .map((c) => c.Id as string);
    if (found.length) return found;
  }
  return [];
}

/**
 * Remove the build's intermediate containers, as the daemon's `rm`/`forcerm` would (forced, with
 * their anonymous volumes). Never rejects: one already gone (an abort removed it) is fine.
 */
function removeContainers(docker: DockerLike, ids: readonly string[]): Promise<void> {
  // `v` is passed through as the query parameter of `DELETE /containers/{id}` (DockerLike names only `force`).
  const options = { force: true, v: true } as { force: boolean };
  return Promise.all(ids.map((id) => docker.getContainer(id).remove(options).catch(() => undefined))).then(() => undefined);
}

/**
 * Make sure an aborted build stops on the daemon, not only in this process: closing the request
 * cancels it (the daemon watches the connection), and on top of that BuildKit is told to cancel
 * the build by ID and the classic builder's running step container is removed.
 */
async function stopOnDaemon(docker: DockerLike, builder: ImageBuilder, buildId: string, progress: BuildProgress): Promise<void> {
  try {
    if (builder === 'buildkit') {
      await new Promise<void>((resolve) => {
        docker.modem.dial(
          { path: '/build/cancel?', options: { id: buildId }, method: 'POST', statusCodes: { 200: true, 404: true, 500: true } },
          () => resolve(),
        );
      });
    } else {
      const container = (progress as ClassicBuildProgress).runningContainer;
      if (container) await docker.getContainer(container).remove({ force: true });
    }
  } catch {
    // Best effort: the closed connection cancels the build anyway.
  }
}
