/**
 * Pieces shared by the deploy flows (deployDags, deployImage): per-deployment serialisation,
 * exactly-once finalize, the CI/CD enforcement check and the phase events.
 */
import { createBundle, type BundleEvent, type BundleResult, type CreateBundleOptions, type IgnoreSyntax } from '../bundle/index.js';
import { toAbortError } from '../core/abort.js';
import type { DispatcherLike } from '../core/dispatcher.js';
import { uploadBlockBlob, type UploadBlockBlobOptions, type UploadBlockBlobResult, type UploadEvent } from '../upload/index.js';
import { AstroDeployError, AstroFinalizeUnknownError, AstroSchemaError, BundleError, ErrorCodes, isAstroError, UploadError } from '../core/errors.js';
import { failureOf } from '../core/failure.js';
import type { Logger } from '../core/logger.js';
import { retryPolicy, withRetries, type RetryOptions } from '../core/retry.js';
import { validateRetryOptions } from './options.js';
import { checkTimeoutOf, outcomeOf, readBack } from './read-back.js';
import type { DeploymentOptionsResource, DeploymentsResource, DeploysResource, FinalizeDeployParams } from './resources.js';
import type { Deploy, Deployment } from './schemas.js';
import type { AstroProject, BuildProjectImageOptions } from '../image/index.js';
import type { DeployProjectParams } from './deploy-project.js';
import type { AstroTokenClaims } from './token.js';
import type { RequestOptions } from './transport.js';
import type { ClientEvent } from './events.js';
import { redactRolloutSas } from './redact-results.js';
import { waitForRollout, type RolloutResult, type WaitForRolloutParams } from './rollout.js';
import type { DeployGitEvent } from './git.js';
import type { ImageSource, PushImageOptions, PushResult, PushTarget } from '../image/index.js';
import type { DeployImpactEvent } from './impact.js';

/**
 * What the deploy flows need from the client.
 * @internal Not a stable API: call the deploy methods of {@link AstroClient}.
 */
export interface DeployContext {
  deployments: DeploymentsResource;
  deploys: DeploysResource;
  deploymentOptions: DeploymentOptionsResource;
  claims: AstroTokenClaims;
  organizationId: string;
  /** The API token (the registry password on Astro). */
  token: string;
  /** The client's dispatcher, handed to the flow's uploads and pushes (the flow's own options win). */
  dispatcher: DispatcherLike | undefined;
  /** The client's logger: where ignored listener errors and retries are noted. */
  logger: Logger;
  /** The client's API retry settings (a flow's `request.retry` is merged over them). */
  retry: RetryOptions;
  /**
   * The push the image flows use (`pushImage` when absent). deployImageToMany passes one that
   * pushes the image fully once and lets the other deployments mount its layers.
   */
  pushImage?: (source: ImageSource, target: PushTarget, options: PushImageOptions) => Promise<PushResult>;
}

/** Phase events shared by the deploy flows (module events are forwarded as they are). */
export type DeployPhaseEvent =
  | { type: 'deploy:queued'; deploymentId: string }
  | { type: 'deploy:checked'; deploymentId: string; syntax?: 'regexp' | 'glob'; runtimeVersion?: string }
  | { type: 'deploy:created'; deploymentId: string; deployId: string; deployType: string; imageRepository: string; imageTag: string }
  | { type: 'deploy:uploaded'; deployId: string; versionId: string; bytes: number; retries: number; resumed: boolean }
  | { type: 'deploy:finalized'; deployId: string; dagTarballVersion?: string; imageTag?: string }
  | DeployGitEvent
  | { type: 'deploy:finalize-recovered'; deployId: string; reason: string }
  | DeployImpactEvent;

/**
 * `error` with the `deployId` of the deploy record the flow created (issue #15: every error raised
 * after create names it, so the caller can look the record up), and `deployFinalized`: whether the
 * flow had finalized it, unless the error is that finalize's outcome is unknown. Kept when already
 * set.
 */
export function withDeployId<E>(error: E, deployId: string, finalized = false): E {
  if (error && typeof error === 'object' && !Object.isFrozen(error) && (error as { deployId?: unknown }).deployId === undefined) {
    Object.defineProperty(error, 'deployId', { value: deployId, enumerable: true, configurable: true });
    if (!isAstroError(error, ErrorCodes.FINALIZE_UNKNOWN)) Object.defineProperty(error, 'deployFinalized', { value: finalized, enumerable: true, configurable: true });
  }
  return error;
}

/**
 * Where an image deploy pushes: the created deploy's `imageRepository:imageTag`. The contract marks
 * `imageTag` "appears only if specified", and the schema reads its absence as `''`; for an image
 * deploy that would push to a tag no rollout names, so it is refused, naming the deploy, before a
 * byte is pushed. The record stays INITIALIZED, which Astro never rolls out.
 */
export function imageTargetOf(deploy: Deploy, deploymentId: string): { repository: string; tag: string } {
  const missing = [...(deploy.imageRepository ? [] : ['imageRepository']), ...(deploy.imageTag ? [] : ['imageTag'])];
  if (missing.length) {
    throw withDeployId(
      new AstroSchemaError(
        `Astro created image deploy ${deploy.id} for deployment ${deploymentId} without ${missing.join(' or ')}, so there is nowhere to push the image; nothing was pushed and the deploy stays INITIALIZED (never rolled out). Deploy again; if it recurs, report deploy ${deploy.id} to Astronomer support.`,
        `/deployments/${deploymentId}/deploys`,
        missing,
      ),
      deploy.id,
    );
  }
  return { repository: deploy.imageRepository, tag: deploy.imageTag };
}

/**
 * The options of the project's build, one place for the real run and its dry run, so the plan
 * builds exactly the image the deploy would: the project's Dockerfile, the local tag the CLI uses
 * (`<namespace>/airflow:latest`, so rebuilds reuse the cache) unless `tag` names one, and `dags/`
 * left out when the DAGs ship as a bundle (`excludeDags`).
 */
export function projectBuildOptions(
  params: DeployProjectParams,
  run: { project: AstroProject; deployment: Deployment; deploymentId: string; excludeDags: boolean; signal: AbortSignal; emit: (event: never) => void; logger: Logger | undefined },
): BuildProjectImageOptions {
  return {
    ...params.build,
    ...(params.docker ? { docker: params.docker } : {}),
    dockerfile: run.project.dockerfile,
    tag: params.tag ?? `${(run.deployment.namespace ?? run.deploymentId).toLowerCase()}/airflow:latest`,
    ...(params.buildArgs ? { buildArgs: params.buildArgs } : {}),
    ...(params.buildSecrets ? { buildSecrets: params.buildSecrets } : {}),
    ...(params.pull !== undefined ? { pull: params.pull } : {}),
    ...(params.labels ? { labels: params.labels } : {}),
    excludeDags: run.excludeDags,
    signal: run.signal,
    onEvent: run.emit as BuildProjectImageOptions['onEvent'],
    ...(run.logger ? { logger: run.logger } : {}),
  };
}

/**
 * With DAG deploys on (and no Remote Execution), deployProject ships `dags/` as a bundle and
 * finalizes with its version. A project without `dags/` would be finalized with an empty version,
 * which removes the DAGs the deployment runs; the CLI asks first ("No DAGs found. This will delete
 * any existing DAGs"), and an empty `dags/` is refused (`ASTRO_BUNDLE_EMPTY`). So it is refused,
 * before anything is built or created, unless `allowEmpty`. One rule for the run and its dry run.
 */
export function checkProjectDags(dagsDir: string, hasDagsDir: boolean, deployment: Deployment, allowEmpty: boolean | undefined): void {
  if (hasDagsDir || allowEmpty === true || !deployment.isDagDeployEnabled || deployment.remoteExecution?.enabled) return;
  throw new BundleError(
    ErrorCodes.BUNDLE_DIR_NOT_FOUND,
    `The project has no dags/ folder (${dagsDir}), and deployment ${deployment.id} has DAG deploys on: the deploy would be finalized without a DAG version, which removes the DAGs the deployment runs. Add the dags/ folder, or pass allowEmpty: true to deploy the image and remove the deployment's DAGs (the CLI asks first: "No DAGs found. This will delete any existing DAGs").`,
    dagsDir,
  );
}

/**
 * Deploys to one deployment run one after another within a process: the deployment has a single
 * DAG blob, and concurrent block lists on it fail in the real service (astro-cli#1586).
 */
const queues = new Map<string, Promise<unknown>>();

/**
 * Run `run` after every earlier deploy with the same key has settled. An abort of `signal` while
 * waiting rejects at once with `AstroAbortError` (a queued deploy is not held until the one ahead
 * ends); the deploys queued after it still wait for every deploy ahead of it.
 */
export async function serialised<T>(key: string, onQueued: () => void, run: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const previous = queues.get(key);
  if (previous) onQueued();
  const turn = (previous ?? Promise.resolve()).catch(() => undefined);
  const mine = turnOrAbort(turn, signal).then(run);
  // The next in line waits for the turn ahead of ours too: our abort must not let it overtake.
  const tail = Promise.allSettled([turn, mine]);
  queues.set(key, tail);
  try {
    return await mine;
  } finally {
    if (queues.get(key) === tail) queues.delete(key);
  }
}

/** Resolves when `turn` does, or rejects with `AstroAbortError` as soon as `signal` fires. */
function turnOrAbort(turn: Promise<unknown>, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(toAbortError(signal));
    const onAbort = () => reject(toAbortError(signal!));
    signal?.addEventListener('abort', onAbort, { once: true });
    void turn.then(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

/** The CLI only deploys to a CI/CD-enforced deployment with an API token; so do we. */
export function checkCicd(deployment: Deployment, claims: AstroTokenClaims): void {
  if (deployment.isCicdEnforced && !claims.isApiToken) {
    throw new AstroDeployError(
      ErrorCodes.CICD_ENFORCED,
      `Deployment ${deployment.id} enforces CI/CD: deploy with an Organization, Workspace or Deployment API token, not a user token.`,
    );
  }
}

/** What a deploy record read back says of our finalize. */
type FinalizeState = 'ours' | 'not-finalized' | 'other';

/**
 * Read a deploy record: finalized with our DAG version (`ours`), still waiting for a finalize
 * (`not-finalized`), or finalized with another version (`other`). Image deploys carry no version:
 * any sign of a finalize since the record was created (a status past `INITIALIZED`, a newer
 * `updatedAt`) is ours, as nothing else finalizes a deploy this flow created.
 */
function finalizeState(record: Deploy, created: Deploy, body: FinalizeDeployParams): FinalizeState {
  const version = body.dagTarballVersion || undefined;
  const recordVersion = record.dagTarballVersion || undefined;
  const terminal = record.status === 'DEPLOYED' || record.status === 'FAILED';
  if (version !== undefined) {
    if (recordVersion === version) return 'ours';
    if (recordVersion !== undefined && recordVersion !== (created.dagTarballVersion || undefined)) return 'other';
    return terminal ? 'ours' : 'not-finalized';
  }
  if (record.status !== undefined && record.status !== 'INITIALIZED') return 'ours';
  return record.updatedAt !== undefined && record.updatedAt !== created.updatedAt ? 'ours' : 'not-finalized';
}

/** The finalize context of a flow; `checkTimeoutMs` is the flow's `finalizeCheckTimeoutMs`, validated. */
export function finalizeContextOf(ctx: DeployContext, checkTimeoutMs: number | undefined): FinalizeContext {
  return { deploys: ctx.deploys, retry: ctx.retry, logger: ctx.logger, checkTimeoutMs: checkTimeoutOf('finalizeCheckTimeoutMs', checkTimeoutMs) };
}

/** What {@link finalizeOnce} needs besides the deploy. */
export interface FinalizeContext {
  deploys: DeploysResource;
  /** The client's API retry settings. */
  retry: RetryOptions;
  logger: Logger | undefined;
  /** Bound on reading the deploy back, in milliseconds. */
  checkTimeoutMs: number;
}

/**
 * Finalize exactly once, and never report a finalized deploy as failed.
 *
 * - An answer is final: success, or a refusal (4xx) of the first finalize sent.
 * - When the outcome is unknown (reset, lost answer, timeout, 5xx or 408 from a gateway, a 2xx
 *   whose body does not validate), the deploy is read back, with the kernel's backoff, until it
 *   is read or `checkTimeoutMs` passes; a deploy finalized with our version is success.
 * - Finalize is sent again only after the deploy was positively read as NOT finalized (within the
 *   retry budget of the flow's `request.retry` over the client's `retry`).
 * - A refusal of a finalize sent after one whose outcome was unknown is read back too: Astro
 *   refuses a second finalize when the first one landed late; found finalized with our version,
 *   it is success.
 * - When the deploy cannot be read within the bound, {@link AstroFinalizeUnknownError}
 *   (`ASTRO_FINALIZE_UNKNOWN`) names the deploy and version, so the caller checks it instead of
 *   deploying again.
 */
export async function finalizeOnce(
  ctx: FinalizeContext,
  deploymentId: string,
  created: Deploy,
  body: FinalizeDeployParams,
  options: RequestOptions,
  emit: (e: DeployPhaseEvent) => void,
): Promise<Deploy> {
  const deployId = created.id;
  const callRetry = validateRetryOptions('request.retry', options.retry);
  // Re-sends are safe (each follows a read showing the deploy not finalized), so "idempotent".
  const policy = retryPolicy(callRetry, { defaults: ctx.retry, idempotent: true });
  /** Errors after which the deploy was read as not finalized: the only ones worth a re-send. */
  const resendable = new WeakSet<object>();
  /** Whether a finalize already sent may have been acted on without us seeing the answer. */
  let unknownBefore = false;

  return withRetries(
    async () => {
      try {
        return await ctx.deploys.finalize(deploymentId, deployId, body, options);
      } catch (error) {
        if (!isAstroError(error) || error.code === ErrorCodes.ABORTED || options.signal?.aborted) throw error;
        const outcome = outcomeOf(error);
        const refused = outcome === 'refused';
        // It provably never reached Astro, or Astro turned it away before acting (429).
        const notActedOn = outcome === 'not-acted';
        // Astro's answer, and no earlier finalize in doubt: it stands.
        if ((refused || notActedOn) && !unknownBefore) throw error;
        if (!refused && !notActedOn) unknownBefore = true;
        const record = await readBackDeploy(ctx, deploymentId, created, body, { ...options, retry: callRetry });
        const state = finalizeState(record, created, body);
        if (state === 'ours') {
          emit({ type: 'deploy:finalize-recovered', deployId, reason: error.code });
          return record;
        }
        // A real refusal, or a finalize that is not ours: nothing to recover.
        if (state === 'other' || refused) throw error;
        resendable.add(error);
        throw error;
      }
    },
    {
      policy,
      signal: options.signal,
      logger: ctx.logger,
      classify: (error) => (error && typeof error === 'object' && resendable.has(error) ? (failureOf(error) ?? { kind: 'reset', mayHaveReachedServer: true }) : undefined),
      onRetry: (info) => ctx.logger?.warn(`deploy ${deployId} is not finalized after a finalize of unknown outcome; sending finalize again in ${info.delayMs} ms`),
    },
  );
}

/**
 * Read the deploy record, retrying every transient failure with the kernel's backoff until
 * `ctx.checkTimeoutMs` has passed; then (or on a failure that will not pass, such as a 401)
 * {@link AstroFinalizeUnknownError}.
 */
async function readBackDeploy(ctx: FinalizeContext, deploymentId: string, created: Deploy, body: FinalizeDeployParams, options: RequestOptions): Promise<Deploy> {
  try {
    return await readBack(() => ctx.deploys.get(deploymentId, created.id, options), {
      checkTimeoutMs: ctx.checkTimeoutMs,
      retry: options.retry,
      defaults: ctx.retry,
      signal: options.signal,
      logger: ctx.logger,
    });
  } catch (error) {
    if (isAstroError(error, ErrorCodes.ABORTED)) throw error;
    const version = body.dagTarballVersion || undefined;
    const isImage = created.type === 'IMAGE_ONLY' || created.type === 'IMAGE_AND_DAG';
    throw new AstroFinalizeUnknownError(
      `Finalize of deploy ${created.id} (deployment ${deploymentId}${version ? `, DAG version ${version}` : ''}${isImage ? `, image tag ${created.imageTag}` : ''}) was sent, its answer was lost, and the deploy could not be read back within ${ctx.checkTimeoutMs} ms: it may or may not be finalized. Check it with client.deploys.get('${deploymentId}', '${created.id}') or in the Astro UI before deploying again.`,
      { deploymentId, deployId: created.id, ...(version ? { dagTarballVersion: version } : {}), ...(isImage ? { imageTag: created.imageTag } : {}) },
      { cause: error },
    );
  }
}

/** Bundle options the deploy flows pass through to `createBundle`. */
export type DeployBundleOptions = Pick<
  CreateBundleOptions,
  'syntax' | 'prefix' | 'defaultExcludes' | 'exclude' | 'hiddenImports' | 'ignoredNonPython' | 'allowEmpty' | 'compressionLevel'
>;

/** Bundle `dagsDir` into a temporary file with the caller's options and the resolved syntax. */
export function bundleDags(
  dagsDir: string,
  options: DeployBundleOptions,
  syntax: IgnoreSyntax,
  signal: AbortSignal | undefined,
  emit: (e: BundleEvent) => void,
): Promise<BundleResult> {
  const passed = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as DeployBundleOptions;
  return createBundle(dagsDir, { ...passed, syntax, output: { type: 'file' }, ...(signal ? { signal } : {}), onEvent: emit });
}

/**
 * Upload a bundle to the deploy's `dagsUploadUrl` and check that what was committed is the bundle:
 * an upload that does not match is never finalized.
 */
export async function uploadBundle(
  ctx: Pick<DeployContext, 'dispatcher' | 'logger'>,
  deploy: Deploy,
  bundle: BundleResult,
  options: Omit<UploadBlockBlobOptions, 'signal' | 'onEvent'> | undefined,
  signal: AbortSignal | undefined,
  emit: (e: UploadEvent | DeployPhaseEvent) => void,
): Promise<UploadBlockBlobResult & { versionId: string }> {
  if (!deploy.dagsUploadUrl) {
    throw new AstroDeployError(
      ErrorCodes.DAG_DEPLOY_DISABLED,
      `Astro created deploy ${deploy.id} without a dagsUploadUrl, so DAG deploys are not available for deployment ${deploy.deploymentId}; it was not finalized. Check the deployment's DAG deploy setting.`,
    );
  }
  // The client's dispatcher and logger, unless the flow's upload options name their own.
  const upload = await uploadBlockBlob(deploy.dagsUploadUrl, bundle.path!, {
    ...(ctx.dispatcher ? { dispatcher: ctx.dispatcher } : {}),
    logger: ctx.logger,
    ...options,
    ...(signal ? { signal } : {}),
    onEvent: emit,
  });
  // Possible only with upload.requireVersionId: false; finalize needs the version all the same.
  if (!upload.versionId) {
    throw new UploadError(
      ErrorCodes.UPLOAD_NO_VERSION_ID,
      `The bundle was committed, but the storage answered without an x-ms-version-id, so there is no version to finalize deploy ${deploy.id} with; it was not finalized. The storage account must have blob versioning enabled (Astro's does; emulators such as Azurite do not): deploy to a deployment on Astro, or to a fake that versions its blobs.`,
    );
  }
  if (upload.bytes !== bundle.bytes) {
    throw new UploadError(
      ErrorCodes.UPLOAD_FAILED,
      `The upload committed ${upload.bytes} bytes but the bundle has ${bundle.bytes}; deploy ${deploy.id} was not finalized. Run the deploy again.`,
    );
  }
  emit({ type: 'deploy:uploaded', deployId: deploy.id, versionId: upload.versionId, bytes: upload.bytes, retries: upload.retries, resumed: upload.resumed });
  return upload;
}

/** A flow's `wait` option: `true`, or `waitForRollout`'s settings without what the flow decides. */
export type FlowWait = boolean | Omit<WaitForRolloutParams, 'deploymentId' | 'deployId' | 'expect' | 'signal' | 'onEvent' | 'request'>;

/**
 * When the flow asked to `wait`, wait until the deployment runs what the flow finalized. The
 * flow's signal, `request` options (timeoutMs, retry, onRetry) and emitter apply to the polls,
 * and the result carries no usable SAS. `shippedFiles` (the bundle's paths) are what
 * `wait.verifyDags` reports on, unless it names its own `files`.
 */
export async function waitIfAsked(
  ctx: Parameters<typeof waitForRollout>[0],
  flow: { wait?: FlowWait | undefined; signal?: AbortSignal | undefined; request?: Omit<RequestOptions, 'signal'> | undefined },
  target: Pick<WaitForRolloutParams, 'deploymentId' | 'deployId' | 'expect'>,
  emit: (e: ClientEvent) => void,
  shippedFiles?: string[],
): Promise<RolloutResult | undefined> {
  if (!flow.wait) return undefined;
  const wait = typeof flow.wait === 'object' ? flow.wait : {};
  const verify = wait.verifyDags ? { ...(typeof wait.verifyDags === 'object' ? wait.verifyDags : {}) } : undefined;
  if (verify && verify.files === undefined && shippedFiles) verify.files = shippedFiles;
  return redactRolloutSas(
    await waitForRollout(ctx, {
      ...wait,
      ...(verify ? { verifyDags: verify } : {}),
      ...target,
      ...(flow.signal ? { signal: flow.signal } : {}),
      ...(flow.request ? { request: flow.request } : {}),
      onEvent: emit,
    }),
  );
}
