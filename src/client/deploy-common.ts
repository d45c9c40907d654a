/**
 * Pieces shared by the deploy flows (deployDags, deployImage): per-deployment serialisation,
 * exactly-once finalize, the CI/CD enforcement check and the phase events.
 */
import { createBundle, type BundleEvent, type BundleResult, type CreateBundleOptions, type IgnoreSyntax } from '../bundle/index.js';
import { uploadBlockBlob, type UploadBlockBlobOptions, type UploadBlockBlobResult, type UploadEvent } from '../upload/index.js';
import { sleep } from '../core/abort.js';
import { AstroDeployError, ErrorCodes, isAstroError, UploadError } from '../core/errors.js';
import { backoffDelay } from '../core/retry.js';
import type { DeploymentOptionsResource, DeploymentsResource, DeploysResource, FinalizeDeployParams } from './resources.js';
import type { Deploy, Deployment } from './schemas.js';
import type { AstroTokenClaims } from './token.js';
import type { RequestOptions } from './transport.js';

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
}

/** Phase events shared by the deploy flows (module events are forwarded as they are). */
export type DeployPhaseEvent =
  | { type: 'deploy:queued'; deploymentId: string }
  | { type: 'deploy:checked'; deploymentId: string; syntax?: 'regexp' | 'glob'; runtimeVersion?: string }
  | { type: 'deploy:created'; deploymentId: string; deployId: string; deployType: string; imageRepository: string; imageTag: string }
  | { type: 'deploy:uploaded'; deployId: string; versionId: string; bytes: number; retries: number; resumed: boolean }
  | { type: 'deploy:finalized'; deployId: string; dagTarballVersion?: string; imageTag?: string }
  | { type: 'deploy:finalize-recovered'; deployId: string; reason: string };

/** Wrap a listener so an exception thrown by caller code cannot break a deploy half-way. */
export function safeEmitter<E>(onEvent: ((event: E) => void) | undefined): (event: E) => void {
  return (event) => {
    try {
      onEvent?.(event);
    } catch {
      // Ignored on purpose: listeners are observers.
    }
  };
}

/**
 * Deploys to one deployment run one after another within a process: the deployment has a single
 * DAG blob, and concurrent block lists on it fail in the real service (astro-cli#1586).
 */
const queues = new Map<string, Promise<unknown>>();

/** Run `run` after every earlier deploy with the same key has settled. */
export async function serialised<T>(key: string, onQueued: () => void, run: () => Promise<T>): Promise<T> {
  const previous = queues.get(key);
  if (previous) onQueued();
  const mine = (previous ?? Promise.resolve()).catch(() => undefined).then(run);
  const tail = mine.catch(() => undefined);
  queues.set(key, tail);
  try {
    return await mine;
  } finally {
    if (queues.get(key) === tail) queues.delete(key);
  }
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

/**
 * Whether the deploy record shows a finalize: a terminal status, our DAG version, or (for image
 * deploys, whose record carries no version) any change since the record was created.
 */
function finalizeTook(record: Deploy, created: Deploy, body: FinalizeDeployParams): boolean {
  if (record.status === 'DEPLOYED' || record.status === 'FAILED') return true;
  if (body.dagTarballVersion) return record.dagTarballVersion === body.dagTarballVersion;
  return record.updatedAt !== undefined && record.updatedAt !== created.updatedAt;
}

/**
 * Finalize exactly once. An error that proves the call was refused (a 4xx) is final. One whose
 * outcome is unknown (reset, timeout, 5xx from a gateway) is resolved by reading the deploy
 * record: if it shows the finalize took, that is the answer; otherwise the call is sent again.
 * Fakes and real servers refuse a second finalize, so "sent again" only happens when the first
 * one provably did not land.
 */
export async function finalizeOnce(
  deploys: DeploysResource,
  deploymentId: string,
  created: Deploy,
  body: FinalizeDeployParams,
  options: RequestOptions,
  emit: (e: DeployPhaseEvent) => void,
): Promise<Deploy> {
  const deployId = created.id;
  const maxAttempts = 4;
  for (let attempt = 1; ; attempt++) {
    try {
      return await deploys.finalize(deploymentId, deployId, body, options);
    } catch (error) {
      if (!isAstroError(error) || !error.retryable || attempt >= maxAttempts) throw error;
      let record: Deploy | undefined;
      try {
        record = await deploys.get(deploymentId, deployId, options);
      } catch (readError) {
        if (!isAstroError(readError) || !readError.retryable) throw readError;
      }
      if (record && finalizeTook(record, created, body)) {
        emit({ type: 'deploy:finalize-recovered', deployId, reason: error.code });
        return record;
      }
      await sleep(backoffDelay(attempt), options.signal);
    }
  }
}

/** Bundle options the deploy flows pass through to `createBundle`. */
export type DeployBundleOptions = Pick<
  CreateBundleOptions,
  'syntax' | 'prefix' | 'defaultExcludes' | 'exclude' | 'hiddenImports' | 'allowEmpty' | 'compressionLevel'
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
  const upload = await uploadBlockBlob(deploy.dagsUploadUrl, bundle.path!, { ...options, ...(signal ? { signal } : {}), onEvent: emit });
  if (upload.bytes !== bundle.bytes || !upload.versionId) {
    throw new UploadError(
      ErrorCodes.UPLOAD_FAILED,
      `The upload committed ${upload.bytes} bytes but the bundle has ${bundle.bytes}; deploy ${deploy.id} was not finalized. Run the deploy again.`,
    );
  }
  emit({ type: 'deploy:uploaded', deployId: deploy.id, versionId: upload.versionId, bytes: upload.bytes, retries: upload.retries, resumed: upload.resumed });
  return upload;
}
