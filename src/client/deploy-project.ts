/**
 * deployProject: `astro deploy` of an Astro project folder, in one call. Bundle `dags/` when DAG
 * deploys are on (so an invalid `.airflowignore`, an empty folder or a missing one fails at once),
 * build the project into a linux/amd64 image, check it, run the tests gate, and only then create the
 * deploy, push the image and upload the bundle (at once: they share nothing), finalize and
 * optionally wait. The test container is deleted while the deploy goes on; the call resolves only
 * once it is gone.
 *
 * Differences from the CLI, each on purpose:
 * - nothing is created at Astro until the image is built, validated and tested (the CLI creates
 *   the deploy first and leaves a dangling record when the build or the parse fails);
 * - `.dockerignore` is never edited: `dags/` is left out of the build context in memory;
 * - the build goes through the Engine API, always for linux/amd64.
 */
import { join } from 'node:path';
import { stat } from 'node:fs/promises';
import type { DockerLike } from '../image/docker-like.js';
import { ignoreSyntaxForRuntime, type BundleEvent, type BundleResult } from '../bundle/index.js';
import {
  buildProjectImage,
  pushImage,
  readAstroProject,
  runProjectTests,
  skippedTests,
  suitesOf,
  validateImage,
  type BuildEvent,
  type BuildProjectImageOptions,
  type BuildProjectImageResult,
  type ImageEvent,
  type ImageInfo,
  type ProjectTestsEvent,
  type ProjectTestsMode,
  type ProjectTestsResult,
  type PushImageOptions,
  type PushResult,
} from '../image/index.js';
import type { UploadBlockBlobResult, UploadEvent } from '../upload/index.js';
import { throwIfAborted } from '../core/abort.js';
import { emitterFor } from '../core/emitter.js';
import { AstroConfigError, ErrorCodes } from '../core/errors.js';
import { runInScope } from '../core/scope.js';
import {
  bundleDags,
  checkCicd,
  checkProjectDags,
  finalizeContextOf,
  finalizeOnce,
  imageTargetOf,
  projectBuildOptions,
  serialised,
  uploadBundle,
  waitIfAsked,
  withDeployId,
  type DeployContext,
  type DeployPhaseEvent,
  type FlowWait,
} from './deploy-common.js';
import type { DeployDagsBundleOptions, DeployDagsParams } from './deploy-dags.js';
import type { ClientEvent } from './events.js';
import { checkFlowOptions } from './flow-options.js';
import { pathSegment } from './path.js';
import type { DeployGitMetadata, FinalizeDeployParams } from './resources.js';
import type { RolloutResult } from './rollout.js';
import { redactDeploySas } from './redact-results.js';
import type { Deploy, DeployType } from './schemas.js';
import type { RequestOptions } from './transport.js';
import { planDeployProject, type DeployDryRun } from './dry-run.js';
import { impactOf } from './impact.js';
import { compareWithRunning, describeDeploy, runningCode, skippedResult, type DeployPlanningOptions, type DeploySkipped } from './skip-unchanged.js';
import { deployGitFields } from './git.js';

/** Parameters of `deployProject`. */
export interface DeployProjectParams extends DeployDagsBundleOptions, DeployPlanningOptions {
  /**
   * The Astro project folder (Dockerfile, `requirements.txt`, `packages.txt`, `dags/`,
   * `plugins/`, `include/`, `tests/`, `.astro/`). Nothing in it is written.
   * @default process.cwd()
   */
  projectDir?: string;
  /** The deployment to deploy to. @default `project.deployment` of the project's `.astro/config.yaml` */
  deploymentId?: string;
  /** The Dockerfile, relative to the project. @default 'Dockerfile' */
  dockerfile?: string;
  /** `ARG` values of the build (`--build-arg`). */
  buildArgs?: Record<string, string>;
  /** Build secrets (`--build-secret`): id to `{ file }` or `{ env }`. They need BuildKit. */
  buildSecrets?: BuildProjectImageOptions['buildSecrets'];
  /** Pull base images first: `'auto'` is the CLI's rule (only Astro Runtime bases). @default 'auto' */
  pull?: 'auto' | boolean;
  /** Labels added to the image. */
  labels?: Record<string, string>;
  /**
   * Other build settings: `builder` ('auto', 'classic', 'buildkit'), `networkMode` of the RUN
   * steps, `noCache`, `target`, extra `exclude` patterns.
   */
  build?: Pick<BuildProjectImageOptions, 'builder' | 'networkMode' | 'noCache' | 'target' | 'exclude'>;
  /**
   * Name of the built image in the daemon. Keeping it between deploys keeps rebuilds fast.
   * @default '<deployment namespace>/airflow:latest', as the CLI names it
   */
  tag?: string;
  /** The tests gate run in the built image before anything is created at Astro. @default 'parse' (as `astro deploy`) */
  tests?: ProjectTestsMode;
  /** What pytest runs instead of `tests/` (the CLI's `--test`), relative to the project. */
  testFile?: string;
  /** A `.env`-style file for the test container (the CLI's `--env`). @default the project's `.env` when there is one */
  envFile?: string;
  /** Skip the tests (the CLI's `-f`). @default false */
  force?: boolean;
  /** Shown in the Astro UI; at most 500 characters. @default '' */
  description?: string;
  /**
   * Git metadata shown with the deploy (commit, branch, repository): an object sent as it is, or
   * `'auto'` to read it from the project's repository, as `deployDags` does; without a
   * `description`, the commit message's first line becomes it (as `astro deploy`). @default none
   */
  git?: DeployGitMetadata | 'auto';
  /**
   * Refuse to deploy when the project has uncommitted changes, untracked files included
   * (`ASTRO_GIT_UNCOMMITTED_CHANGES`), before anything is built or created: `astro deploy`'s check
   * without `-f`, which exits 0 there (astro-cli#1721). @default false
   */
  requireClean?: boolean;
  /** Allow moving an Airflow 2 deployment to an Airflow 3 image. @default false */
  allowAirflow3Upgrade?: boolean;
  /** Engine API client for the build, checks, tests and a daemon push. @default one for DOCKER_HOST */
  docker?: DockerLike;
  /**
   * Push options (method, chunk size, concurrency, `retry`, ...). `method` defaults to `'auto'`:
   * the Docker daemon pushes the image when the registry holds none of its layers in the native
   * push's gzip (so a changed layer goes up without the daemon first writing an export of the whole
   * image, which the native push of a daemon image waits for), the native push when the registry
   * already holds every layer (only the manifest is sent) or holds them as the native push gzipped
   * them, and the native push takes over when the daemon's fails or starts retrying (a bad link,
   * where its resumable chunked uploads complete). `'native'` or `'daemon'` force one.
   * @default { method: 'auto' }
   */
  push?: Omit<PushImageOptions, 'auth' | 'signal' | 'onEvent' | 'docker'>;
  /**
   * Deploy even when nothing ships as DAGs, on a deployment with DAG deploys on: an empty `dags/`
   * (as `createBundle`'s `allowEmpty`), or no `dags/` folder at all, finalized without a DAG
   * version. Either removes the DAGs the deployment runs; without this option both are refused
   * before anything is built or created (`ASTRO_BUNDLE_EMPTY`, `ASTRO_BUNDLE_DIR_NOT_FOUND`), where
   * the CLI asks "No DAGs found. This will delete any existing DAGs". @default false
   */
  allowEmpty?: boolean;
  /** Options of the DAG bundle upload. */
  upload?: DeployDagsParams['upload'];
  /** Wait until the deployment runs this image (and DAG version). @default false */
  wait?: FlowWait;
  /** Cancels the deploy (a running build or test container is stopped on the daemon); an abort after finalize leaves the deploy in place. */
  signal?: AbortSignal;
  /** Typed events for every phase. Exceptions thrown here are ignored. */
  onEvent?: (event: DeployProjectEvent) => void;
  /** Per-call options of every API request of the flow (`timeoutMs`, `retry`, `onRetry`). */
  request?: Omit<RequestOptions, 'signal'>;
  /** See {@link DeployDagsParams.finalizeCheckTimeoutMs}. @default 60000 */
  finalizeCheckTimeoutMs?: number;
}

/** Every event deployProject emits. */
export type DeployProjectEvent =
  | DeployPhaseEvent
  | { type: 'deploy:image-validated'; reference: string; platform: string; runtimeVersion?: string }
  | BuildEvent
  | ProjectTestsEvent
  | ImageEvent
  | BundleEvent
  | UploadEvent
  | ClientEvent;

/**
 * Time spent in each phase, in milliseconds (absent: the phase did not run). `push` and `upload`
 * run at the same time, so they overlap; `total` is the wall time of the call.
 */
export interface DeployProjectTimings {
  build: number;
  validate: number;
  tests: number;
  bundle?: number;
  create: number;
  push: number;
  upload?: number;
  finalize: number;
  wait?: number;
  total: number;
}

/** What deployProject resolves with. */
export interface DeployProjectResult {
  deployId: string;
  /** Always `IMAGE_AND_DAG`, as `astro deploy` creates it. */
  deployType: DeployType;
  /** The finalized deploy record; its `dagsUploadUrl` has the SAS signature redacted. */
  deploy: Deploy;
  /** The tag pushed to the deployment's repository (from the deploy record). */
  imageTag: string;
  /** `repository:tag` that was pushed. */
  reference: string;
  /** The built image's ID in the daemon (`sha256:...`). */
  imageId: string;
  /** Digest of the pushed manifest. */
  digest: string;
  /** The build (tag in the daemon, builder, steps, cached steps, context summary). */
  build: BuildProjectImageResult;
  /** The validated image (platform, labels, runtime version). */
  image: ImageInfo;
  /** The push: digest, reference, layers, bytes sent, method. */
  push: PushResult;
  /** What the tests gate ran (suites skipped with reason `force` when `force` was set). */
  tests: ProjectTestsResult;
  /** Set when `dags/` shipped separately (DAG deploys on). */
  dagTarballVersion?: string;
  /** The DAG bundle, when `dags/` shipped separately. */
  bundle?: { bytes: number; sha256: string; fingerprint: string; files: number };
  /** The bundle upload, when `dags/` shipped separately. */
  upload?: UploadBlockBlobResult;
  /** Present when `wait` was set. */
  rollout?: RolloutResult;
  /** Milliseconds spent in each phase. */
  timings: DeployProjectTimings;
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** What deployProject resolves with: the deploy, the plan of a dry run, or a skip of an unchanged project. */
export type DeployProjectOutcome = DeployProjectResult | DeployDryRun | DeploySkipped;

/** Implementation of `AstroClient.deployProject`; see there. */
export async function deployProject(ctx: DeployContext, params: DeployProjectParams & { dryRun: true }): Promise<DeployDryRun>;
export async function deployProject(ctx: DeployContext, params: DeployProjectParams & { dryRun?: false; skipUnchanged?: false }): Promise<DeployProjectResult>;
export async function deployProject(ctx: DeployContext, params: DeployProjectParams): Promise<DeployProjectOutcome>;
export async function deployProject(ctx: DeployContext, params: DeployProjectParams): Promise<DeployProjectOutcome> {
  checkFlowOptions(params);
  if (params.dryRun) return planDeployProject(ctx, params);
  const started = Date.now();
  // Before anything runs, and before any request: the folder must be an Astro project.
  const project = await readAstroProject(params.projectDir ?? process.cwd(), params.dockerfile ? { dockerfile: params.dockerfile } : {});
  const deploymentId = params.deploymentId ?? project.config.deployment;
  if (!deploymentId) {
    throw new AstroConfigError(
      ErrorCodes.CONFIG_INVALID_OPTION,
      `No deploymentId given and ${project.dir}/.astro/config.yaml names no project.deployment: pass deploymentId.`,
    );
  }
  pathSegment('deploymentId', deploymentId);
  const mode = params.tests ?? 'parse';
  suitesOf(mode);
  const emit = emitterFor<DeployProjectEvent>(params.onEvent, ctx.logger);
  const finalizeContext = finalizeContextOf(ctx, params.finalizeCheckTimeoutMs);

  return serialised(`${ctx.organizationId}/${deploymentId}`, () => emit({ type: 'deploy:queued', deploymentId }), () =>
    runInScope(params.signal, async (scope) => {
      const signal = scope.signal;
      const requestOptions: RequestOptions = { ...params.request, signal };
      const timings: Partial<DeployProjectTimings> = {};
      const timed = async <T>(phase: keyof DeployProjectTimings, fn: () => Promise<T>): Promise<T> => {
        const t = Date.now();
        try {
          return await fn();
        } finally {
          timings[phase] = Date.now() - t;
        }
      };

      throwIfAborted(signal);
      const gitFields = await deployGitFields(params, project.dir, signal, emit);
      // Two reads, at once: one round trip instead of two before the build can start.
      const [deployment, options] = await Promise.all([ctx.deployments.get(deploymentId, requestOptions), ctx.deploymentOptions.get(requestOptions)]);
      checkCicd(deployment, ctx.claims);
      const runtimeVersion = deployment.astroRuntimeVersion ?? deployment.runtimeVersion;
      const remote = deployment.remoteExecution?.enabled === true;
      // As the CLI: with DAG deploys (or Remote Execution) on, the image is built without dags/,
      // and with DAG deploys on, dags/ ships as a bundle.
      const excludeDags = deployment.isDagDeployEnabled || remote;
      const dagsDir = join(project.dir, 'dags');
      const hasDagsDir = await isDir(dagsDir);
      checkProjectDags(dagsDir, hasDagsDir, deployment, params.allowEmpty);
      const shipDags = deployment.isDagDeployEnabled && !remote && hasDagsDir;
      const deployType: DeployType = 'IMAGE_AND_DAG';
      const syntax = params.syntax ?? ignoreSyntaxForRuntime(runtimeVersion);
      emit({ type: 'deploy:checked', deploymentId, syntax, ...(runtimeVersion ? { runtimeVersion } : {}) });

      // The bundle first: an invalid .airflowignore or an empty dags/ fails in a second, not after the build.
      let bundle: BundleResult | undefined;
      // Build and test containers are deleted while the deploy goes on (create, push), and awaited at the end.
      const removals: Array<Promise<void>> = [];
      if (shipDags) bundle = await timed('bundle', () => bundleDags(dagsDir, params, syntax, signal, emit));
      try {
        const docker = params.docker ? { docker: params.docker } : {};
        const build = await timed('build', () =>
          buildProjectImage(project.dir, {
            ...projectBuildOptions(params, { project, deployment, deploymentId, excludeDags, signal, emit, logger: ctx.logger }),
            // The daemon deletes the build's intermediate containers while the deploy goes on.
            onContainerRemoval: (removal) => removals.push(removal),
          }),
        );

        const image = await timed('validate', () =>
          validateImage(
            { imageName: build.imageId },
            {
              ...(runtimeVersion ? { deploymentRuntimeVersion: runtimeVersion } : {}),
              allowedRuntimeVersions: options.runtimeReleases.map((r) => r.version),
              ...(params.allowAirflow3Upgrade ? { allowAirflow3Upgrade: true } : {}),
              ...docker,
              signal,
            },
          ),
        );
        emit({
          type: 'deploy:image-validated',
          reference: build.tag,
          platform: `${image.os}/${image.architecture}`,
          ...(image.runtimeVersion ? { runtimeVersion: image.runtimeVersion } : {}),
        });

        let tests: ProjectTestsResult;
        if (params.force) {
          tests = skippedTests(mode, 'force');
          for (const suite of suitesOf(mode)) emit({ type: 'tests:suite', suite, status: 'skipped', reason: 'force' });
          timings.tests = 0;
        } else {
          tests = await timed('tests', () =>
            runProjectTests(build.imageId, project.dir, {
              tests: mode,
              ...(params.testFile !== undefined ? { testFile: params.testFile } : {}),
              ...(params.envFile !== undefined ? { envFile: params.envFile } : {}),
              ...(image.runtimeVersion ? { runtimeVersion: image.runtimeVersion } : {}),
              ...docker,
              signal,
              onEvent: emit,
              logger: ctx.logger,
              onContainerRemoval: (removal) => removals.push(removal),
            }),
          );
        }

        // What ships, by content: the image's config digest (and the bundle's fingerprint).
        const ours = { image: image.configDigest, ...(bundle ? { dags: bundle.manifest.fingerprint } : {}) };
        if (params.skipUnchanged) {
          const check = compareWithRunning(ours, await runningCode(ctx.deploys, deployment, requestOptions), deployment);
          if (check.unchanged) return skippedResult(deploymentId, ours, check);
        }
        emit({ type: 'deploy:impact', deploymentId, impact: impactOf(deployType) });
        throwIfAborted(signal);
        const description = describeDeploy(gitFields.description, ours, params.recordFingerprint !== false);
        const deploy = await timed('create', () =>
          ctx.deploys.create(deploymentId, { type: deployType, description, ...(gitFields.git ? { git: gitFields.git } : {}) }, requestOptions),
        );
        emit({ type: 'deploy:created', deploymentId, deployId: deploy.id, deployType, imageRepository: deploy.imageRepository, imageTag: deploy.imageTag });
        // Whether the deploy was finalized before a failure (error.deployFinalized).
        let live = false;
        try {
          // Checked before either transfer starts: nothing is pushed or uploaded for a deploy with no tag.
          const target = imageTargetOf(deploy, deploymentId);
          // The image push and the DAG bundle upload go to different places (the registry, the
          // deploy's blob URL) and need nothing from each other: they run at once, and the first
          // to fail cancels the other (the scope's signal) and is the error.
          const failFast = <T>(work: Promise<T>): Promise<T> =>
            work.catch((err: unknown) => {
              scope.fail(err);
              throw err;
            });
          const pushing = failFast(
            timed('push', () =>
              pushImage(
                { imageName: build.imageId },
                target,
                {
                  ...(ctx.dispatcher ? { dispatcher: ctx.dispatcher } : {}),
                  logger: ctx.logger,
                  // On an ephemeral runner (an empty layer cache) the layers the deployment's
                  // current image shares with this one are known to be in the registry.
                  ...(deployment.imageTag && deployment.imageRepository === deploy.imageRepository ? { seedTag: deployment.imageTag } : {}),
                  ...params.push,
                  method: params.push?.method ?? 'auto',
                  // On Astro the registry user is `cli` and the password the API token.
                  auth: { username: 'cli', password: ctx.token },
                  ...docker,
                  signal,
                  onEvent: emit,
                },
              ),
            ),
          );
          const b = bundle;
          const uploading = b ? failFast(timed('upload', () => uploadBundle(ctx, deploy, b, params.upload, signal, emit))) : Promise.resolve(undefined);
          // Both settle before the flow goes on or fails: nothing of the deploy runs behind the caller's back.
          const [pushed, uploaded] = await Promise.allSettled([pushing, uploading]);
          if (pushed.status === 'rejected' || uploaded.status === 'rejected') {
            throw scope.exitError(pushed.status === 'rejected' ? pushed.reason : (uploaded as PromiseRejectedResult).reason);
          }
          const push: PushResult = pushed.value;
          const upload: UploadBlockBlobResult | undefined = uploaded.value;

          // The finalize body the CLI sends: the DAG version when DAG deploys are on ('' when this
          // deploy carries no DAGs), nothing when they are off.
          const body: FinalizeDeployParams = deployment.isDagDeployEnabled ? { dagTarballVersion: upload?.versionId ?? '' } : {};
          throwIfAborted(signal);
          const finalized = await timed('finalize', () => finalizeOnce(finalizeContext, deploymentId, deploy, body, requestOptions, emit));
          live = true;
          emit({ type: 'deploy:finalized', deployId: deploy.id, imageTag: deploy.imageTag, ...(upload ? { dagTarballVersion: upload.versionId } : {}) });

          const result: DeployProjectResult = {
            deployId: deploy.id,
            deployType,
            // The upload SAS grants write access to the DAG blob: never hand it back (issue #15).
            deploy: redactDeploySas(finalized),
            imageTag: deploy.imageTag,
            reference: `${deploy.imageRepository}:${deploy.imageTag}`,
            imageId: build.imageId,
            digest: push.digest,
            build,
            image,
            push,
            tests,
            timings: timings as DeployProjectTimings,
          };
          if (upload && bundle) {
            result.dagTarballVersion = upload.versionId;
            result.upload = upload;
            result.bundle = { bytes: bundle.bytes, sha256: bundle.sha256, fingerprint: bundle.manifest.fingerprint, files: bundle.manifest.totals.files };
          }
          if (params.wait) {
            const rollout = await timed('wait', () =>
              waitIfAsked(
                ctx,
                { wait: params.wait, signal, request: params.request },
                { deploymentId, deployId: deploy.id, expect: { imageTag: deploy.imageTag, ...(upload ? { dagTarballVersion: upload.versionId } : {}) } },
                emit,
                bundle?.manifest.files.map((f) => f.path),
              ),
            );
            if (rollout) result.rollout = rollout;
          }
          result.timings.total = Date.now() - started;
          return result;
        } catch (error) {
          // Every error after create names the deploy left behind (issue #15).
          throw withDeployId(error, deploy.id, live);
        }
      } finally {
        await Promise.all([bundle?.cleanup(), ...removals]);
      }
    }),
    params.signal,
  );
}
