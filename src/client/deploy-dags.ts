/**
 * deployDags: bundle a dags folder, upload it to the deploy's SAS URL, finalize, optionally wait.
 *
 * Differences from `astro deploy --dags`, each on purpose:
 * - the deployment is read and checked (DAG deploys enabled, CI/CD enforcement) and the bundle is
 *   built BEFORE a deploy is created, so a refusal or an empty folder leaves no dangling deploy;
 * - `.airflowignore` is applied when bundling, in the syntax of the deployment's Airflow;
 * - the upload is resumable and adapts to slow links (see `astro-deploy-sdk/upload`);
 * - finalize is sent once and, when its answer is lost, the deploy record is read back to learn
 *   whether it took before anything is re-sent: a deploy is finalized exactly once;
 * - two deploys to one deployment from this process run one after the other, because concurrent
 *   block lists on the deployment's single blob fail in the real service.
 */
import { ignoreSyntaxForRuntime, type BundleEvent, type BundleManifest, type BundleResult } from '../bundle/index.js';
import type { UploadBlockBlobOptions, UploadBlockBlobResult, UploadEvent } from '../upload/index.js';
import { throwIfAborted } from '../core/abort.js';
import { emitterFor } from '../core/emitter.js';
import { AstroDeployError, ErrorCodes } from '../core/errors.js';
import {
  checkCicd,
  finalizeContextOf,
  finalizeOnce,
  serialised,
  uploadBundle,
  withDeployId,
  waitIfAsked,
  type FlowWait,
  type DeployBundleOptions,
  type DeployContext,
  type DeployPhaseEvent,
} from './deploy-common.js';
import type { ClientEvent } from './events.js';
import type { DeployGitMetadata } from './resources.js';
import type { RolloutResult } from './rollout.js';
import { redactDeploySas } from './redact-results.js';
import type { Deploy, Deployment } from './schemas.js';
import type { AstroTokenClaims } from './token.js';
import type { RequestOptions } from './transport.js';
import { deployGitFields } from './git.js';
import { checkDagsSource, dagsBundle } from './bundle-source.js';
import { checkFlowOptions } from './flow-options.js';
import { planDeployDags, type DeployDryRun } from './dry-run.js';
import { enableDagDeployForDeploy, noteDagDeployEnabled } from './enable-dag-deploy.js';
import { impactOf } from './impact.js';
import { compareWithRunning, describeDeploy, runningCode, skippedResult, type DeployPlanningOptions, type DeploySkipped } from './skip-unchanged.js';

/** Bundle options that deployDags passes through to `createBundle`. */
export type DeployDagsBundleOptions = DeployBundleOptions;

/** Parameters of `deployDags`. */
export interface DeployDagsParams extends DeployDagsBundleOptions, DeployPlanningOptions {
  deploymentId: string;
  /** The dags folder to ship, bundled by the flow (or pass `bundle`). */
  dagsDir?: string;
  /**
   * A bundle made once with `createBundle` (written to a file, the default), shipped as it is
   * instead of bundling `dagsDir`, e.g. the same bundle to several deployments. It is left in place
   * (call its `cleanup()` when done). Its `.airflowignore` syntax (`bundle.manifest.syntax`) must be
   * the deployment's (`syntax` if given, else the one of its runtime), or the deploy is refused with
   * `ASTRO_BUNDLE_SYNTAX_MISMATCH` before anything is created; the options that shape a bundle
   * (`prefix`, `exclude`, ...) cannot be given with it. A bundle file that is gone or changed is
   * `ASTRO_BUNDLE_IO`.
   */
  bundle?: BundleResult;
  /** Shown in the Astro UI; at most 500 characters. @default '' */
  description?: string;
  /**
   * Git metadata shown with the deploy: an object sent as it is, or `'auto'` to read what
   * `astro deploy` sends from the repository holding `dagsDir` (the bundle's folder with `bundle`):
   * commit sha, branch, author, the folder's path, and the `origin` remote (`GITHUB` with account,
   * repository and commit URL on github.com, `GENERIC` with the remote URL elsewhere); without a
   * `description`, the commit message's first line (72 characters at most) becomes it. Nothing is
   * sent without a repository, a commit or a remote, or with uncommitted changes (as the CLI; a
   * `deploy:git` event says why). @default none
   */
  git?: DeployGitMetadata | 'auto';
  /**
   * Refuse to deploy when the dags folder has uncommitted changes, untracked files included
   * (`ASTRO_GIT_UNCOMMITTED_CHANGES`), before anything is bundled or created. A folder in no git
   * repository passes. The CLI refuses too but exits 0 (astro-cli#1721). @default false
   */
  requireClean?: boolean;
  /**
   * When DAG deploys are off, turn them on (as `setDagDeploy` does: its warnings, its re-read)
   * after the checks and the bundle, and deploy the bundle right away: a freshly enabled
   * deployment has no DAGs and schedules no new tasks until its first DAG deploy. If that deploy
   * fails, its error says DAG deploys are now on and what to run (`dagDeployEnabled: true`).
   * @default false (refused with `ASTRO_DAG_DEPLOY_DISABLED`)
   */
  enableDagDeploy?: boolean;
  /**
   * Wait until the deployment runs this DAG version (see `waitForRollout`). `true` uses the
   * default wait options; `{ verifyDags: true }` then asks the deployment's Airflow for import
   * errors in the shipped files. @default false
   */
  wait?: FlowWait;
  /**
   * Options of the upload (block size, concurrency, journal, `retry`, ...). The client's
   * `dispatcher` and `logger` are used unless given here; the client's `retry` is for API calls
   * and does not apply to the upload (its own defaults do). Checked before anything is created,
   * as `wait` is: an invalid value is `ASTRO_CONFIG_INVALID_OPTION`, with no deploy left behind.
   */
  upload?: Omit<UploadBlockBlobOptions, 'signal' | 'onEvent'>;
  /** Cancels the deploy; an abort after finalize leaves the deploy in place. */
  signal?: AbortSignal;
  /** Typed events for every phase (bundle, upload, API retries, rollout). Exceptions thrown here are ignored. */
  onEvent?: (event: DeployDagsEvent) => void;
  /** Per-call options of every API request of the flow, rollout polls included (`timeoutMs`, `retry`, `onRetry`). */
  request?: Omit<RequestOptions, 'signal'>;
  /**
   * When a finalize's answer is lost, the deploy is read back to learn whether it took; this
   * bounds how long, in milliseconds. When it passes, the flow fails with
   * `ASTRO_FINALIZE_UNKNOWN` (the deploy may be finalized: check it before deploying again).
   * @default 60000
   */
  finalizeCheckTimeoutMs?: number;
}

/** Every event deployDags emits. */
export type DeployDagsEvent = DeployPhaseEvent | BundleEvent | UploadEvent | ClientEvent;
export type { DeployPhaseEvent };

/** What deployDags resolves with. */
export interface DeployDagsResult {
  deployId: string;
  /** The finalized deploy record; its `dagsUploadUrl` has the SAS signature redacted (`sig=[REDACTED]`). */
  deploy: Deploy;
  /** The `x-ms-version-id` of the uploaded bundle, sent as `dagTarballVersion`. */
  dagTarballVersion: string;
  bundle: { bytes: number; sha256: string; fingerprint: string; files: number; excluded: number; manifest: BundleManifest };
  upload: UploadBlockBlobResult;
  /** Present when `wait` was set. */
  rollout?: RolloutResult;
}

/** The refusals of a DAG deploy: DAG deploys off, Remote Execution, CI/CD enforcement with a user token. */
export function checkDagDeployable(deployment: Deployment, claims: AstroTokenClaims): void {
  if (!deployment.isDagDeployEnabled) {
    throw new AstroDeployError(
      ErrorCodes.DAG_DEPLOY_DISABLED,
      `DAG deploys are disabled for deployment ${deployment.id}: enable them with client.setDagDeploy('${deployment.id}', true) (or \`astro deployment update ${deployment.id} --dag-deploy enable\`), or ship the DAGs in an image with deployImage.`,
    );
  }
  if (deployment.remoteExecution?.enabled) {
    throw new AstroDeployError(
      ErrorCodes.DEPLOY_REFUSED,
      `Deployment ${deployment.id} uses Remote Execution, whose DAGs are not deployed through Astro's DAG deploys. Ship them to your remote workers instead.`,
    );
  }
  checkCicd(deployment, claims);
}

/** What deployDags resolves with: the deploy, the plan of a dry run, or a skip of unchanged DAGs. */
export type DeployDagsOutcome = DeployDagsResult | DeployDryRun | DeploySkipped;

/** Implementation of `AstroClient.deployDags`; see there. */
export async function deployDags(ctx: DeployContext, params: DeployDagsParams & { dryRun: true }): Promise<DeployDryRun>;
export async function deployDags(ctx: DeployContext, params: DeployDagsParams & { dryRun?: false; skipUnchanged?: false }): Promise<DeployDagsResult>;
export async function deployDags(ctx: DeployContext, params: DeployDagsParams): Promise<DeployDagsOutcome>;
export async function deployDags(ctx: DeployContext, params: DeployDagsParams): Promise<DeployDagsOutcome> {
  checkDagsSource(params, true);
  checkFlowOptions(params);
  if (params.dryRun) return planDeployDags(ctx, params);
  const { deploymentId, signal } = params;
  const emit = emitterFor<DeployDagsEvent>(params.onEvent, ctx.logger);
  const finalizeContext = finalizeContextOf(ctx, params.finalizeCheckTimeoutMs);
  const requestOptions: RequestOptions = { ...params.request, ...(signal ? { signal } : {}) };
  const key = `${ctx.organizationId}/${deploymentId}`;

  return serialised(key, () => emit({ type: 'deploy:queued', deploymentId }), async () => {
    throwIfAborted(signal);
    const gitFields = await deployGitFields(params, params.dagsDir ?? params.bundle?.root, signal, emit);
    let deployment = await ctx.deployments.get(deploymentId, requestOptions);
    // With enableDagDeploy, every other refusal is checked before the setting is touched.
    const enabling = params.enableDagDeploy === true && !deployment.isDagDeployEnabled;
    checkDagDeployable(enabling ? { ...deployment, isDagDeployEnabled: true } : deployment, ctx.claims);
    const runtimeVersion = deployment.astroRuntimeVersion ?? deployment.runtimeVersion;
    const syntax = params.syntax ?? ignoreSyntaxForRuntime(runtimeVersion);
    emit({ type: 'deploy:checked', deploymentId, syntax, ...(runtimeVersion ? { runtimeVersion } : {}) });

    const { bundle, owned } = await dagsBundle(params, { deploymentId, syntax, runtimeVersion }, signal, emit);
    let enabled = false;
    try {
      if (enabling) {
        throwIfAborted(signal);
        deployment = await enableDagDeployForDeploy(ctx, deploymentId, requestOptions, emit);
        enabled = true;
      }
      const ours = { dags: bundle.manifest.fingerprint };
      // A deployment that just had DAG deploys turned on runs no DAGs, whatever its records say.
      if (params.skipUnchanged && !enabled) {
        const check = compareWithRunning(ours, await runningCode(ctx.deploys, deployment, requestOptions), deployment);
        if (check.unchanged) return skippedResult(deploymentId, ours, check);
      }
      emit({ type: 'deploy:impact', deploymentId, impact: impactOf('DAG_ONLY') });
      throwIfAborted(signal);
      const deploy = await ctx.deploys.create(
        deploymentId,
        { type: 'DAG_ONLY', description: describeDeploy(gitFields.description, ours, params.recordFingerprint !== false), ...(gitFields.git ? { git: gitFields.git } : {}) },
        requestOptions,
      );
      emit({ type: 'deploy:created', deploymentId, deployId: deploy.id, deployType: 'DAG_ONLY', imageRepository: deploy.imageRepository, imageTag: deploy.imageTag });
      // Whether the deploy was finalized before a failure (error.deployFinalized).
      let live = false;
      try {
        const upload = await uploadBundle(ctx, deploy, bundle, params.upload, signal, emit);

        throwIfAborted(signal);
        const finalized = await finalizeOnce(finalizeContext, deploymentId, deploy, { dagTarballVersion: upload.versionId }, requestOptions, emit);
        live = true;
        emit({ type: 'deploy:finalized', deployId: deploy.id, dagTarballVersion: upload.versionId });

        const result: DeployDagsResult = {
          deployId: deploy.id,
          // The upload SAS grants write access to the DAG blob: never hand it back (issue #15).
          deploy: redactDeploySas(finalized),
          dagTarballVersion: upload.versionId,
          bundle: {
            bytes: bundle.bytes,
            sha256: bundle.sha256,
            fingerprint: bundle.manifest.fingerprint,
            files: bundle.manifest.totals.files,
            excluded: bundle.manifest.totals.excluded,
            manifest: bundle.manifest,
          },
          upload,
        };
        const rollout = await waitIfAsked(
          ctx,
          params,
          { deploymentId, deployId: deploy.id, expect: { dagTarballVersion: upload.versionId } },
          emit,
          bundle.manifest.files.map((f) => f.path),
        );
        if (rollout) result.rollout = rollout;
        return result;
      } catch (error) {
        // Every error after create names the deploy left behind (issue #15).
        throw withDeployId(error, deploy.id, live);
      }
    } catch (error) {
      throw enabled ? noteDagDeployEnabled(error, deploymentId, params.dagsDir ?? bundle.root) : error;
    } finally {
      if (owned) await bundle.cleanup();
    }
  }, signal);
}
