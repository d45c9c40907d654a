/**
 * deployImage: validate an image, push it to the deploy's repository, ship the DAGs alongside
 * when asked, finalize, optionally wait.
 *
 * Everything that can refuse the deploy runs before a deploy is created: the deployment checks,
 * the image checks (linux/amd64, Astro Runtime label, runtime version rules against the
 * organization's deployment options), the DAG bundle and the optional tests gate (the same gate
 * as deployProject: `runProjectTests`). The CLI creates the deploy first and discovers most of
 * these afterwards.
 */
import { dirname } from 'node:path';
import { ignoreSyntaxForRuntime, type BundleEvent, type BundleResult } from '../bundle/index.js';
import {
  classifyImageSource,
  compareRuntimeVersions,
  openImageArchive,
  pushImage,
  runProjectTests,
  skippedTests,
  suitesOf,
  validateImage,
  PARSE_MIN_RUNTIME,
  type ImageArchive,
  type ImageEvent,
  type ImageInfo,
  type ImageSource,
  type ProjectTestsEvent,
  type ProjectTestsMode,
  type ProjectTestsResult,
  type PushImageOptions,
  type PushResult,
} from '../image/index.js';
import type { UploadBlockBlobResult, UploadEvent } from '../upload/index.js';
import { throwIfAborted } from '../core/abort.js';
import { emitterFor } from '../core/emitter.js';
import { AstroDeployError, ErrorCodes } from '../core/errors.js';
import {
  checkCicd,
  finalizeContextOf,
  finalizeOnce,
  imageTargetOf,
  serialised,
  uploadBundle,
  withDeployId,
  waitIfAsked,
  type DeployContext,
  type DeployPhaseEvent,
} from './deploy-common.js';
import type { DeployDagsBundleOptions, DeployDagsParams } from './deploy-dags.js';
import { checkDagsSource, dagsBundle } from './bundle-source.js';
import { checkFlowOptions } from './flow-options.js';
import type { ClientEvent } from './events.js';
import type { DeployGitMetadata, FinalizeDeployParams } from './resources.js';
import type { RolloutResult } from './rollout.js';
import { redactDeploySas } from './redact-results.js';
import type { Deploy, DeployType } from './schemas.js';
import type { RequestOptions } from './transport.js';
import { planDeployImage, type DeployDryRun } from './dry-run.js';
import { impactOf } from './impact.js';
import { compareWithRunning, describeDeploy, runningCode, skippedResult, type DeployPlanningOptions, type DeploySkipped } from './skip-unchanged.js';
import { deployGitFields } from './git.js';
import type { DockerLike } from '../image/docker-like.js';
import { checkPushMethod } from '../image/push-method.js';

/** Parameters of `deployImage`. */
export interface DeployImageParams extends DeployDagsBundleOptions, DeployPlanningOptions {
  deploymentId: string;
  /**
   * A local image name or ID in the Docker daemon, or a path to a `docker save` / OCI-layout
   * archive (or an `{ archive }` from `openImageArchive`, left open). An archive path is opened
   * once for the checks and the push (a `.tar.gz` gunzipped once) and its temp copy removed
   * when the push ends or the deploy fails.
   */
  image: ImageSource;
  /**
   * The dags folder. With DAG deploys enabled it is bundled and uploaded with the image (an
   * `IMAGE_AND_DAG` deploy); with DAG deploys disabled the DAGs must already be in the image, and
   * the folder is only used by the tests.
   */
  dagsDir?: string;
  /**
   * A DAG bundle made once with `createBundle`, shipped instead of bundling `dagsDir` (as
   * `deployDags`' `bundle`: left in place, refused with `ASTRO_BUNDLE_SYNTAX_MISMATCH` when its
   * `.airflowignore` syntax is not the deployment's). Its folder stands for `dagsDir` in the tests.
   */
  bundle?: BundleResult;
  /** Shown in the Astro UI; at most 500 characters. @default '' (with `git: 'auto'`, the commit message's first line) */
  description?: string;
  /**
   * Git metadata shown with the deploy: an object sent as it is, or `'auto'` to read it from the
   * repository holding `projectDir` (else the parent of `dagsDir`, else the current folder), as
   * `deployDags` does. @default none
   */
  git?: DeployGitMetadata | 'auto';
  /**
   * Refuse to deploy when that folder has uncommitted changes (`ASTRO_GIT_UNCOMMITTED_CHANGES`),
   * before anything is validated, built or created. @default false
   */
  requireClean?: boolean;
  /**
   * The tests gate run in a container of the image before anything is created at Astro, the same
   * gate as `deployProject` (`runProjectTests`): `'parse'` (the DAG integrity test,
   * `.astro/test_dag_integrity_default.py`, as `astro deploy --parse`), `'pytest'` (the project's
   * `tests/`, or `testFile`), `'parse+pytest'`, `'none'`. Needs an image in the Docker daemon and
   * the project (`projectDir`, or `dagsDir` inside it). A failure stops the deploy with
   * `ProjectTestsError` (`ASTRO_IMAGE_PARSE_FAILED`, `ASTRO_PROJECT_TESTS_FAILED`) carrying the
   * container's output. Replaces `parseCheck`, which is refused (`ASTRO_CONFIG_INVALID_OPTION`).
   * @default 'none' (the image is prebuilt; `deployProject` defaults to 'parse', as `astro deploy`)
   */
  tests?: ProjectTestsMode;
  /**
   * The Astro project whose `tests`, `plugins`, `include` and `.astro` folders the tests copy into
   * the container. @default the parent folder of `dagsDir`
   */
  projectDir?: string;
  /** What pytest runs instead of `tests/` (the CLI's `--test`), relative to `projectDir`. */
  testFile?: string;
  /** A `.env`-style file for the test container (the CLI's `--env`). @default the project's `.env` when there is one */
  envFile?: string;
  /** Skip the tests even when `tests` is set (the CLI's `--force`). @default false */
  force?: boolean;
  /** Allow moving an Airflow 2 deployment to an Airflow 3 image. @default false */
  allowAirflow3Upgrade?: boolean;
  /** Engine API client for daemon images and the tests. @default one for DOCKER_HOST */
  docker?: DockerLike;
  /**
   * Push options (method `native` or `daemon`, chunk size, concurrency, `retry`, ...). The client's
   * `dispatcher` carries the registry traffic and its `logger` notes what the push ignores, unless
   * given here; the client's `retry` is for API calls (pushes keep their own defaults). Checked
   * before anything is created: an invalid `retry`, or `method: 'daemon'` with an archive, is
   * `ASTRO_CONFIG_INVALID_OPTION`.
   */
  push?: Omit<PushImageOptions, 'auth' | 'signal' | 'onEvent' | 'docker'>;
  /** Options of the DAG bundle upload (the client's `dispatcher` and `logger` unless given here). */
  upload?: DeployDagsParams['upload'];
  /** Wait until the deployment runs this image (and DAG version). @default false */
  wait?: DeployDagsParams['wait'];
  signal?: AbortSignal;
  /** Typed events for every phase. Exceptions thrown here are ignored. */
  onEvent?: (event: DeployImageEvent) => void;
  /** Per-call options of every API request of the flow, rollout polls included (`timeoutMs`, `retry`, `onRetry`). */
  request?: Omit<RequestOptions, 'signal'>;
  /** See {@link DeployDagsParams.finalizeCheckTimeoutMs}. @default 60000 */
  finalizeCheckTimeoutMs?: number;
}

/** Every event deployImage emits. */
export type DeployImageEvent =
  | DeployPhaseEvent
  | { type: 'deploy:image-validated'; reference: string; platform: string; runtimeVersion?: string }
  | ProjectTestsEvent
  | ImageEvent
  | BundleEvent
  | UploadEvent
  | ClientEvent;

/** What deployImage resolves with. */
export interface DeployImageResult {
  deployId: string;
  deployType: DeployType;
  /** The finalized deploy record; its `dagsUploadUrl` has the SAS signature redacted (`sig=[REDACTED]`). */
  deploy: Deploy;
  image: ImageInfo;
  push: PushResult;
  /** `repository:tag` that was pushed. */
  reference: string;
  /** Set when a DAG bundle was uploaded with the image. */
  dagTarballVersion?: string;
  bundle?: { bytes: number; sha256: string; fingerprint: string; files: number };
  upload?: UploadBlockBlobResult;
  /** What the tests gate ran, when `tests` was set (suites skipped with reason `force` under `force`). */
  tests?: ProjectTestsResult;
  rollout?: RolloutResult;
}

/** What deployImage resolves with: the deploy, the plan of a dry run, or a skip of an unchanged image. */
export type DeployImageOutcome = DeployImageResult | DeployDryRun | DeploySkipped;

/** Implementation of `AstroClient.deployImage`; see there. */
export async function deployImage(ctx: DeployContext, params: DeployImageParams & { dryRun: true }): Promise<DeployDryRun>;
export async function deployImage(ctx: DeployContext, params: DeployImageParams & { dryRun?: false; skipUnchanged?: false }): Promise<DeployImageResult>;
export async function deployImage(ctx: DeployContext, params: DeployImageParams): Promise<DeployImageOutcome>;
export async function deployImage(ctx: DeployContext, params: DeployImageParams): Promise<DeployImageOutcome> {
  checkDagsSource(params, false);
  checkFlowOptions(params);
  if (params.dryRun) return planDeployImage(ctx, params);
  const { deploymentId, signal } = params;
  const emit = emitterFor<DeployImageEvent>(params.onEvent, ctx.logger);
  const finalizeContext = finalizeContextOf(ctx, params.finalizeCheckTimeoutMs);
  const requestOptions: RequestOptions = { ...params.request, ...(signal ? { signal } : {}) };

  return serialised(`${ctx.organizationId}/${deploymentId}`, () => emit({ type: 'deploy:queued', deploymentId }), async () => {
    throwIfAborted(signal);
    const gitFields = await deployGitFields(params, projectDirOf(params), signal, emit);
    const deployment = await ctx.deployments.get(deploymentId, requestOptions);
    checkCicd(deployment, ctx.claims);
    const runtimeVersion = deployment.astroRuntimeVersion ?? deployment.runtimeVersion;
    const shipDags = dagsDirOf(params) !== undefined && deployment.isDagDeployEnabled && !deployment.remoteExecution?.enabled;
    // As the CLI: IMAGE_ONLY only when DAG deploys carry the DAGs; otherwise the image does.
    const deployType: DeployType = shipDags || !deployment.isDagDeployEnabled ? 'IMAGE_AND_DAG' : 'IMAGE_ONLY';
    const syntax = params.syntax ?? ignoreSyntaxForRuntime(runtimeVersion);
    emit({ type: 'deploy:checked', deploymentId, syntax, ...(runtimeVersion ? { runtimeVersion } : {}) });

    const options = await ctx.deploymentOptions.get(requestOptions);

    // An archive is opened (indexed; a .tar.gz gunzipped into a temp file) once, for the checks
    // and the push, and closed whatever happens; a caller's `{ archive }` stays the caller's.
    const where = await classifyImageSource(params.image);
    checkPushMethod(params.push?.method, where);
    let opened: ImageArchive | undefined;
    if (where.kind === 'archive' && !where.archive) {
      opened = await openImageArchive(where.path, {
        ...(signal ? { signal } : {}),
        ...(params.push?.tempDir ? { tempDir: params.push.tempDir } : {}),
      });
    }
    const source: ImageSource = opened ? { archive: opened, ...(where.kind === 'archive' && where.archiveImage ? { archiveImage: where.archiveImage } : {}) } : params.image;
    try {
      const image = await validateImage(source, {
        ...(runtimeVersion ? { deploymentRuntimeVersion: runtimeVersion } : {}),
        allowedRuntimeVersions: options.runtimeReleases.map((r) => r.version),
        ...(params.allowAirflow3Upgrade ? { allowAirflow3Upgrade: true } : {}),
        ...(params.docker ? { docker: params.docker } : {}),
        ...(signal ? { signal } : {}),
      });
      emit({
        type: 'deploy:image-validated',
        reference: image.reference,
        platform: `${image.os}/${image.architecture}`,
        ...(image.runtimeVersion ? { runtimeVersion: image.runtimeVersion } : {}),
      });

      const tests = await imageTestsGate(params, image, signal, emit, ctx.logger);
      const checked = pinnedSource(source, image);

      let bundle: BundleResult | undefined;
      let ownedBundle = false;
      if (shipDags) {
        ({ bundle, owned: ownedBundle } = await dagsBundle(params, { deploymentId, syntax, runtimeVersion }, signal, emit));
      }
      try {
        // What ships, by content: the image's config digest (and the bundle's fingerprint).
        const ours = { image: image.configDigest, ...(bundle ? { dags: bundle.manifest.fingerprint } : {}) };
        if (params.skipUnchanged) {
          const check = compareWithRunning(ours, await runningCode(ctx.deploys, deployment, requestOptions), deployment);
          if (check.unchanged) return skippedResult(deploymentId, ours, check);
        }
        emit({ type: 'deploy:impact', deploymentId, impact: impactOf(deployType) });
        throwIfAborted(signal);
        const deploy = await ctx.deploys.create(
          deploymentId,
          { type: deployType, description: describeDeploy(gitFields.description, ours, params.recordFingerprint !== false), ...(gitFields.git ? { git: gitFields.git } : {}) },
          requestOptions,
        );
        emit({ type: 'deploy:created', deploymentId, deployId: deploy.id, deployType, imageRepository: deploy.imageRepository, imageTag: deploy.imageTag });
        // Whether the deploy was finalized before a failure (error.deployFinalized).
        let live = false;
        try {
          const push = await (ctx.pushImage ?? pushImage)(
            checked,
            imageTargetOf(deploy, deploymentId),
            {
              // The client's dispatcher and logger, unless the flow's push options name their own.
              ...(ctx.dispatcher ? { dispatcher: ctx.dispatcher } : {}),
              logger: ctx.logger,
              ...params.push,
              // On Astro the registry user is `cli` and the password the API token.
              auth: { username: 'cli', password: ctx.token },
              ...(params.docker ? { docker: params.docker } : {}),
              ...(signal ? { signal } : {}),
              onEvent: emit,
            },
          );
          // The image is read: remove the archive's temp copy now, not after the rollout wait.
          await opened?.close();

          let upload: UploadBlockBlobResult | undefined;
          if (bundle) {
            upload = await uploadBundle(ctx, deploy, bundle, params.upload, signal, emit);
          }

          // The finalize body the CLI sends: the DAG version when DAG deploys are on ('' when this
          // deploy carries no DAGs), nothing when they are off.
          const body: FinalizeDeployParams = deployment.isDagDeployEnabled ? { dagTarballVersion: upload?.versionId ?? '' } : {};
          throwIfAborted(signal);
          const finalized = await finalizeOnce(finalizeContext, deploymentId, deploy, body, requestOptions, emit);
          live = true;
          emit({ type: 'deploy:finalized', deployId: deploy.id, imageTag: deploy.imageTag, ...(upload ? { dagTarballVersion: upload.versionId } : {}) });

          const result: DeployImageResult = {
            deployId: deploy.id,
            deployType,
            // The upload SAS grants write access to the DAG blob: never hand it back (issue #15).
            deploy: redactDeploySas(finalized),
            image,
            push,
            reference: `${deploy.imageRepository}:${deploy.imageTag}`,
            ...(tests ? { tests } : {}),
          };
          if (upload && bundle) {
            result.dagTarballVersion = upload.versionId;
            result.upload = upload;
            result.bundle = { bytes: bundle.bytes, sha256: bundle.sha256, fingerprint: bundle.manifest.fingerprint, files: bundle.manifest.totals.files };
          }
          const rollout = await waitIfAsked(
            ctx,
            params,
            { deploymentId, deployId: deploy.id, expect: { imageTag: deploy.imageTag, ...(upload ? { dagTarballVersion: upload.versionId } : {}) } },
            emit,
            bundle?.manifest.files.map((f) => f.path),
          );
          if (rollout) result.rollout = rollout;
          return result;
        } catch (error) {
          // Every error after create names the deploy left behind (issue #15).
          throw withDeployId(error, deploy.id, live);
        }
      } finally {
        if (ownedBundle) await bundle?.cleanup();
      }
    } finally {
      await opened?.close();
    }
  }, signal);
}

/** The folder of the DAGs: `dagsDir`, or the folder `bundle` was made from. */
function dagsDirOf(params: Pick<DeployImageParams, 'dagsDir' | 'bundle'>): string | undefined {
  return params.dagsDir ?? params.bundle?.root;
}

/** The project around the DAGs: `projectDir`, else the parent of the dags folder. */
function projectDirOf(params: Pick<DeployImageParams, 'projectDir' | 'dagsDir' | 'bundle'>): string | undefined {
  const dags = dagsDirOf(params);
  return params.projectDir ?? (dags !== undefined ? dirname(dags) : undefined);
}

/**
 * The source the tests and the push read: a daemon image pinned to the ID it was validated as, so
 * that a name retagged meanwhile (a concurrent build) cannot ship another image than the one
 * checked and tested. An archive is already fixed. @internal Shared with deployImageToMany.
 */
export function pinnedSource(source: ImageSource, image: ImageInfo): ImageSource {
  return image.source === 'daemon' ? { imageName: image.configDigest } : source;
}

/**
 * The tests gate of deployImage (`tests`, default `'none'`), run in a container of the validated
 * `image`: skipped under `force`, and for a parse below runtime 4.1.0 (as the CLI); refused for an
 * archive (no container to run) and without a project folder. Shared with deployImageToMany, which
 * runs it once for every deployment.
 * @internal
 */
export async function imageTestsGate(
  params: Pick<DeployImageParams, 'image' | 'tests' | 'force' | 'projectDir' | 'dagsDir' | 'bundle' | 'testFile' | 'envFile' | 'docker'>,
  image: ImageInfo,
  signal: AbortSignal | undefined,
  emit: (e: ProjectTestsEvent) => void,
  logger: DeployContext['logger'],
): Promise<ProjectTestsResult | undefined> {
  const mode = params.tests ?? 'none';
  const suites = suitesOf(mode);
  let tests: ProjectTestsResult | undefined;
  if (suites.length && params.force) {
    tests = skippedTests(mode, 'force');
    for (const suite of suites) emit({ type: 'tests:suite', suite, status: 'skipped', reason: 'force' });
  } else if (mode === 'parse' && image.runtimeVersion && compareRuntimeVersions(image.runtimeVersion, PARSE_MIN_RUNTIME) < 0) {
    // As the CLI: runtimes before 4.1.0 skip the parse (no container is needed to know it).
    tests = skippedTests(mode, 'runtime-too-old');
    emit({ type: 'tests:suite', suite: 'parse', status: 'skipped', reason: 'runtime-too-old' });
  } else if (suites.length) {
    const projectDir = projectDirOf(params);
    if (projectDir === undefined) {
      throw new AstroDeployError(ErrorCodes.DEPLOY_REFUSED, 'tests need projectDir (or dagsDir inside the project): the folders the tests run on.');
    }
    // Whatever form named it (an `{ archivePath }` or a plain path to a .tar), an archive has no container to run.
    if (image.source === 'archive') {
      throw new AstroDeployError(ErrorCodes.DEPLOY_REFUSED, 'The tests run a container, so they need an image in the Docker daemon, not an archive. Load it with `docker load` first, or pass force: true.');
    }
    // The image validated, by its ID: a name retagged meanwhile cannot swap in an untested image.
    tests = await runProjectTests(image.configDigest, projectDir, {
      tests: mode,
      ...(dagsDirOf(params) !== undefined ? { dagsDir: dagsDirOf(params)! } : {}),
      ...(params.testFile !== undefined ? { testFile: params.testFile } : {}),
      ...(params.envFile !== undefined ? { envFile: params.envFile } : {}),
      ...(image.runtimeVersion ? { runtimeVersion: image.runtimeVersion } : {}),
      ...(params.docker ? { docker: params.docker } : {}),
      ...(signal ? { signal } : {}),
      onEvent: emit,
      logger,
    });
  }
  return tests;
}
