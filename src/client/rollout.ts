/**
 * waitForRollout: poll until THIS deploy is applied and the deployment is healthy.
 *
 * The CLI sleeps 90 s (30 s for DAG deploys) and then accepts any HEALTHY status, which can end
 * the wait on a deployment that is still running the previous version, and wastes the sleep when
 * the rollout is fast. Here polling starts at once and the wait only ends when the deployment
 * reports the version we finalized (and the deploy record says DEPLOYED, where it says anything).
 */
import { sleep, throwIfAborted } from '../core/abort.js';
import { emitterFor } from '../core/emitter.js';
import { AstroConfigError, AstroRolloutError, ErrorCodes, isAstroError, type RolloutSnapshot } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { backoffDelay } from '../core/retry.js';
import { isTimerMs, TIMER_MS_RULE } from '../core/timer-ms.js';
import type { ClientEvent, RolloutEvent } from './events.js';
import type { DeploymentsResource, DeploysResource } from './resources.js';
import type { Deploy, Deployment } from './schemas.js';
import type { RequestOptions } from './transport.js';
import { validateVerifyDagsOptions, verifyDags, type DagVerification, type VerifyContext, type VerifyDagsOptions } from './verify-dags.js';

/** What must be true of the deployment for the rollout to count as applied. */
export interface RolloutExpectation {
  /** The `dagTarballVersion` that was finalized. */
  dagTarballVersion?: string;
  /** The image tag that was pushed. */
  imageTag?: string;
}

/** Parameters of `waitForRollout`. */
export interface WaitForRolloutParams {
  deploymentId: string;
  /**
   * The deploy to wait for. Its record is polled too: `FAILED` ends the wait at once, and when
   * `expect` is not given, the versions to wait for are read from it.
   */
  deployId?: string;
  /** Versions the deployment must report. @default taken from the deploy record */
  expect?: RolloutExpectation;
  /**
   * Give up after this long, in milliseconds. This and the poll intervals must be more than 0 and
   * at most 2^31-1 (what a timer keeps): anything else, NaN or negative included, is
   * `ASTRO_CONFIG_INVALID_OPTION` before the first poll. @default 600000 (10 minutes)
   */
  timeoutMs?: number;
  /**
   * First delay between polls, in milliseconds; later delays double up to `maxPollIntervalMs`.
   * Each delay is jittered by the SDK's backoff (between half and all of it). @default 2000
   */
  pollIntervalMs?: number;
  /** Longest delay between polls, in milliseconds. @default 15000 */
  maxPollIntervalMs?: number;
  signal?: AbortSignal;
  /** Typed events of the wait (polls, changes, poll errors, API retries). Exceptions thrown here are ignored. */
  onEvent?: (event: ClientEvent) => void;
  /** Per-call options of the polls (`timeoutMs`, `retry`, `onRetry`); `signal` above cancels them. */
  request?: Omit<RequestOptions, 'signal'>;
  /**
   * Once the deployment runs this version, ask its own Airflow REST API (`webServerAirflowApiUrl`,
   * with the client's token; `/api/v1` on Airflow 2, `/api/v2` on Airflow 3) for import errors and
   * report those in the shipped files as `verification` (see {@link VerifyDagsOptions}). `true`
   * takes the defaults: report, do not throw. @default false
   */
  verifyDags?: boolean | VerifyDagsOptions;
}

/** What waitForRollout resolves with. */
export interface RolloutResult {
  deployment: Deployment;
  deploy?: Deploy;
  snapshot: RolloutSnapshot;
  /** What the DAG verification found, when `verifyDags` was set. */
  verification?: DagVerification;
}

const HEALTHY = new Set(['HEALTHY', 'HIBERNATING']);

function snapshotOf(deployment: Deployment, deploy: Deploy | undefined, polls: number, elapsedMs: number): RolloutSnapshot {
  const s: RolloutSnapshot = { deploymentStatus: deployment.status, polls, elapsedMs };
  if (deployment.statusReason) s.deploymentStatusReason = deployment.statusReason;
  if (deploy?.status) s.deployStatus = deploy.status;
  if (deployment.dagTarballVersion !== undefined) s.dagTarballVersion = deployment.dagTarballVersion;
  if (deployment.desiredDagTarballVersion !== undefined) s.desiredDagTarballVersion = deployment.desiredDagTarballVersion;
  if (deployment.imageTag !== undefined) s.imageTag = deployment.imageTag;
  return s;
}

const WATCHED: Array<keyof RolloutSnapshot> = [
  'deploymentStatus',
  'deploymentStatusReason',
  'deployStatus',
  'dagTarballVersion',
  'desiredDagTarballVersion',
  'imageTag',
];

function isApplied(snapshot: RolloutSnapshot, expect: RolloutExpectation, deployTracked: boolean): boolean {
  if (deployTracked && snapshot.deployStatus !== undefined && snapshot.deployStatus !== 'DEPLOYED') return false;
  if (expect.dagTarballVersion !== undefined) {
    if (snapshot.dagTarballVersion !== expect.dagTarballVersion) return false;
    if (snapshot.desiredDagTarballVersion !== undefined && snapshot.desiredDagTarballVersion !== expect.dagTarballVersion) return false;
  }
  if (expect.imageTag !== undefined && snapshot.imageTag !== expect.imageTag) return false;
  return snapshot.deploymentStatus !== undefined && HEALTHY.has(snapshot.deploymentStatus);
}

/** Derive what to wait for from the deploy record, when the caller did not say. */
function expectationFromDeploy(deploy: Deploy): RolloutExpectation {
  const expect: RolloutExpectation = {};
  if (deploy.dagTarballVersion) expect.dagTarballVersion = deploy.dagTarballVersion;
  if (deploy.type === 'IMAGE_ONLY' || deploy.type === 'IMAGE_AND_DAG') expect.imageTag = deploy.imageTag;
  return expect;
}

/**
 * Check the options of a wait before it starts (`ASTRO_CONFIG_INVALID_OPTION`): `waitForRollout`
 * checks its own, and the deploy flows check their `wait` before they create anything.
 */
export function validateWaitOptions(params: Pick<WaitForRolloutParams, 'timeoutMs' | 'pollIntervalMs' | 'maxPollIntervalMs' | 'verifyDags'>): void {
  // NaN or a negative number would poll without a deadline or without a pause.
  for (const name of ['timeoutMs', 'pollIntervalMs', 'maxPollIntervalMs'] as const) {
    const value = params[name];
    if (value !== undefined && !isTimerMs(value)) {
      throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `Option ${name} of the rollout wait must be ${TIMER_MS_RULE}; got ${String(value)}.`);
    }
  }
  if (params.verifyDags && typeof params.verifyDags === 'object') validateVerifyDagsOptions(params.verifyDags);
}

/** Implementation of `AstroClient.waitForRollout`; see there. */
export async function waitForRollout(
  api: { deployments: DeploymentsResource; deploys: DeploysResource; logger?: Logger | undefined } & VerifyContext,
  params: WaitForRolloutParams,
): Promise<RolloutResult> {
  validateWaitOptions(params);
  const timeoutMs = params.timeoutMs ?? 600_000;
  // The delays between polls: the kernel's backoff (doubling, equal jitter) over these bounds.
  const pollBackoff = { initialDelayMs: params.pollIntervalMs ?? 2_000, maxDelayMs: params.maxPollIntervalMs ?? 15_000 };
  const started = performance.now();
  const emit = emitterFor<RolloutEvent>(params.onEvent, api.logger);
  const { signal } = params;
  const requestOptions: RequestOptions = { ...params.request, ...(signal ? { signal } : {}) };
  let expect = params.expect;
  let last: RolloutSnapshot = { polls: 0, elapsedMs: 0 };
  let polls = 0;
  let waits = 0;

  for (;;) {
    throwIfAborted(signal);
    const elapsed = () => Math.round(performance.now() - started);
    try {
      const deploy = params.deployId ? await api.deploys.get(params.deploymentId, params.deployId, requestOptions) : undefined;
      const deployment = await api.deployments.get(params.deploymentId, requestOptions);
      polls += 1;
      if (!expect) expect = deploy ? expectationFromDeploy(deploy) : {};
      const snapshot = snapshotOf(deployment, deploy, polls, elapsed());
      emit({ type: 'rollout:poll', snapshot });
      const changed = WATCHED.filter((k) => snapshot[k] !== last[k]);
      if (changed.length > 0) emit({ type: 'rollout:change', changed, snapshot });
      last = snapshot;

      if (deploy?.status === 'FAILED') {
        throw new AstroRolloutError(
          ErrorCodes.ROLLOUT_FAILED,
          `Deploy ${deploy.id} failed on Astro${deployment.statusReason ? `: ${deployment.statusReason}` : ''}. Check the deploy history in the Astro UI, fix the cause and deploy again.`,
          snapshot,
        );
      }
      if (isApplied(snapshot, expect, deploy !== undefined)) {
        emit({ type: 'rollout:complete', snapshot });
        const result: RolloutResult = { deployment, ...(deploy ? { deploy } : {}), snapshot };
        if (params.verifyDags) {
          const options = typeof params.verifyDags === 'object' ? params.verifyDags : {};
          result.verification = await verifyDags(api, deployment, options, requestOptions, emit);
        }
        return result;
      }
    } catch (error) {
      // A poll that fails for a passing reason (5xx, reset, timeout) must not end a long wait.
      if (!isAstroError(error) || !error.retryable) throw error;
      emit({ type: 'rollout:poll-error', errorCode: error.code, errorMessage: error.message });
    }

    const remaining = timeoutMs - (performance.now() - started);
    if (remaining <= 0) {
      const waitedFor = [
        expect?.dagTarballVersion ? `DAG version ${expect.dagTarballVersion}` : '',
        expect?.imageTag ? `image tag ${expect.imageTag}` : '',
      ]
        .filter(Boolean)
        .join(' and ');
      throw new AstroRolloutError(
        ErrorCodes.ROLLOUT_TIMEOUT,
        `Timed out after ${timeoutMs} ms waiting for deployment ${params.deploymentId} to become healthy${waitedFor ? ` with ${waitedFor}` : ''}; last status ${last.deploymentStatus ?? 'unknown'}. The deploy may still complete: raise timeoutMs or check the Astro UI.`,
        { ...last, elapsedMs: Math.round(performance.now() - started) },
      );
    }
    // Clipped to what is left of the deadline.
    await sleep(Math.min(backoffDelay(++waits, pollBackoff), remaining), signal);
  }
}
