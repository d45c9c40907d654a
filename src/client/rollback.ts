/**
 * client.rollback: run an earlier deploy's image and DAGs again, through Astro's
 * `POST .../deploys/{deployId}/rollback` (the CLI has no rollback command).
 *
 * `to: 'previous'` is read from the deploy list: the deploy the deployment runs now is the newest
 * `DEPLOYED` one whose image tag and DAG version it reports; the target is the newest `DEPLOYED`
 * deploy before it that runs different code and is within the 90 days Astro keeps images and
 * DAGs. The rollback is sent once: a second one would make a second deploy record, and Astro does
 * not refuse it (as it refuses a second finalize). When Astro answered 5xx or 408 without acting,
 * one read of the deploy list tells, and it is sent again only when the list shows no record of
 * it. Any other lost answer (a reset, a timeout, a gateway's 502 or 504) may be acted on late:
 * the list is read, with backoff, until the record shows up or `rollbackCheckTimeoutMs` passes,
 * and the rollback is never sent again (`ASTRO_ROLLBACK_UNKNOWN`).
 */
import { emitterFor } from '../core/emitter.js';
import { AstroConfigError, AstroRollbackError, ErrorCodes, isAstroError, type AstroError } from '../core/errors.js';
import { failureOf } from '../core/failure.js';
import { retryPolicy, withRetries } from '../core/retry.js';
import { throwIfAborted } from '../core/abort.js';
import { serialised, waitIfAsked, type DeployContext, type FlowWait } from './deploy-common.js';
import type { ClientEvent } from './events.js';
import { pathSegment } from './path.js';
import { redactDeploySas } from './redact-results.js';
import type { RolloutResult } from './rollout.js';
import type { Deploy, Deployment } from './schemas.js';
import { describeDeploy, parseMarker } from './skip-unchanged.js';
import type { RequestOptions } from './transport.js';
import { validateRetryOptions } from './options.js';
import { checkTimeoutOf, outcomeOf, readBack } from './read-back.js';

/** How long Astro keeps a deploy's image and DAGs for rollbacks, in milliseconds (90 days). */
export const ROLLBACK_WINDOW_MS = 90 * 24 * 3600 * 1000;

/** Parameters of `client.rollback`. */
export interface RollbackParams {
  /** The deployment to roll back. */
  deploymentId: string;
  /**
   * The deploy to run again: its id, or `'previous'`, the last successful deploy before the one
   * running now (skipping deploys that run the same code, and any older than 90 days).
   */
  to: string;
  /**
   * Shown in the Astro UI; at most 500 characters. The target's fingerprint marker is appended,
   * so `skipUnchanged` recognises the code it restores.
   * @default 'Rollback to deploy <id>'
   */
  description?: string;
  /**
   * Wait until the deployment runs the target's image tag and DAG version (see
   * `waitForRollout`; `verifyDags` works here too). @default false
   */
  wait?: FlowWait;
  /** Cancels the rollback (before it is sent) or the wait; a rollback Astro accepted stays. */
  signal?: AbortSignal;
  /** `rollback:target`, `rollback:started`, then the rollout's events. Exceptions thrown here are ignored. */
  onEvent?: (event: ClientEvent) => void;
  /** Per-call options of every API request (`timeoutMs`, `retry`, `onRetry`). */
  request?: Omit<RequestOptions, 'signal'>;
  /**
   * When the rollback's answer is lost (a reset, a timeout), the deploy list is read until the
   * record it made shows up; this bounds how long, in milliseconds. When it passes, the rollback
   * fails with `ASTRO_ROLLBACK_UNKNOWN` and is not sent again: Astro may still make it, so check
   * the deploy list before rolling back again. @default 60000
   */
  rollbackCheckTimeoutMs?: number;
}

/** What `client.rollback` resolves with. */
export interface RollbackResult {
  /** The deploy record the rollback created. */
  deployId: string;
  /** That record, as Astro answered it (upload SAS redacted). */
  deploy: Deploy;
  /** The deploy rolled back to. */
  target: Deploy;
  /** The deploy that ran before the rollback, when it was identified. */
  previous?: Deploy;
  /** True when the answer was lost and the rollback was found applied by reading the deploy list. */
  recovered: boolean;
  /** Present when `wait` was set. */
  rollout?: RolloutResult;
}

const isImageDeploy = (d: Deploy) => d.type === 'IMAGE_ONLY' || d.type === 'IMAGE_AND_DAG';

/** Whether the deployment runs what `d` shipped: its image tag (image deploys) and DAG version (when it has one). */
function runsNow(d: Deploy, deployment: Deployment): boolean {
  if (isImageDeploy(d) && d.imageTag !== (deployment.imageTag ?? '')) return false;
  if (d.dagTarballVersion && d.dagTarballVersion !== deployment.dagTarballVersion) return false;
  return true;
}

/** Whether two deploys run the same code (same image tag, same DAG version). */
function sameCode(a: Deploy, b: Deploy): boolean {
  return a.imageTag === b.imageTag && (a.dagTarballVersion || '') === (b.dagTarballVersion || '');
}

const tooOld = (d: Deploy, now: number) => d.createdAt !== undefined && now - Date.parse(d.createdAt) > ROLLBACK_WINDOW_MS;

/** Choose the current deploy and the target among `all` (newest first). */
export function chooseRollback(all: Deploy[], deployment: Deployment, to: string, now = Date.now()): { target: Deploy; current?: Deploy } {
  const deployed = all.filter((d) => d.status === 'DEPLOYED');
  const current = deployed.find((d) => runsNow(d, deployment)) ?? deployed[0];
  const noTarget = (message: string, targetDeployId?: string) =>
    new AstroRollbackError(ErrorCodes.ROLLBACK_NO_TARGET, message, { deploymentId: deployment.id, ...(targetDeployId ? { targetDeployId } : {}) });
  if (to === 'previous') {
    const before = current ? all.slice(all.indexOf(current) + 1) : [];
    const target = before.find((d) => d.status === 'DEPLOYED' && !sameCode(d, current!) && !tooOld(d, now));
    if (!target) {
      throw noTarget(
        current
          ? `Deployment ${deployment.id} has no successful deploy before ${current.id} (the one it runs) that runs other code and is within the 90 days Astro keeps: nothing to roll back to.`
          : `Deployment ${deployment.id} has no successful deploy: nothing to roll back to.`,
      );
    }
    return { target, ...(current ? { current } : {}) };
  }
  const target = all.find((d) => d.id === to);
  if (!target) throw noTarget(`Deployment ${deployment.id} has no deploy ${to} in its deploy history: nothing to roll back to. List them with client.deploys.list('${deployment.id}').`, to);
  if (target.status !== 'DEPLOYED') throw noTarget(`Deploy ${to} never deployed (status ${target.status ?? 'unknown'}): only a successful deploy can be rolled back to.`, to);
  if (tooOld(target, now)) throw noTarget(`Deploy ${to} is older than 90 days: Astro no longer keeps its image and DAGs.`, to);
  if (current && (target.id === current.id || (sameCode(target, current) && runsNow(target, deployment)))) {
    throw noTarget(`Deployment ${deployment.id} already runs the code of deploy ${to}: nothing to roll back.`, to);
  }
  return { target, ...(current ? { current } : {}) };
}


/** The rollback was sent, its answer lost, and no record of it was read within the bound. */
function rollbackUnknown(deploymentId: string, targetDeployId: string, error: AstroError, checkTimeoutMs: number, readError?: unknown): AstroRollbackError {
  const reads = readError === undefined ? 'the deploy list showed no record of it' : `the deploy list could not be read (${isAstroError(readError) ? readError.code : String(readError)})`;
  return new AstroRollbackError(
    ErrorCodes.ROLLBACK_UNKNOWN,
    `The rollback of deployment ${deploymentId} to deploy ${targetDeployId} was sent and its answer was lost (${error.code}); within ${checkTimeoutMs} ms ${reads}. Astro may still make it, so it was not sent again: a second rollback would make a second deploy. Look for a deploy with rollbackFromId ${targetDeployId} in client.deploys.list('${deploymentId}') or the Astro UI before rolling back again.`,
    { deploymentId, targetDeployId },
    { cause: error },
  );
}

/** Implementation of `AstroClient.rollback`; see there. */
export async function rollback(ctx: DeployContext, params: RollbackParams): Promise<RollbackResult> {
  const { deploymentId, to, signal } = params ?? ({} as RollbackParams);
  pathSegment('deploymentId', deploymentId);
  if (typeof to !== 'string' || to === '') {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, "rollback needs `to`: a deploy id, or 'previous'.");
  }
  if (to !== 'previous') pathSegment('deployId', to);
  if (params.description !== undefined && typeof params.description !== 'string') {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, 'rollback: description must be a string.');
  }
  const checkTimeoutMs = checkTimeoutOf('rollbackCheckTimeoutMs', params.rollbackCheckTimeoutMs);
  const emit = emitterFor<ClientEvent>(params.onEvent, ctx.logger);
  const requestOptions: RequestOptions = { ...params.request, ...(signal ? { signal } : {}) };

  return serialised(`${ctx.organizationId}/${deploymentId}`, () => undefined, async () => {
    throwIfAborted(signal);
    const deployment = await ctx.deployments.get(deploymentId, requestOptions);
    const before = await ctx.deploys.listAll(deploymentId, {}, requestOptions);
    const { target, current } = chooseRollback(before, deployment, to);
    emit({
      type: 'rollback:target',
      deploymentId,
      targetDeployId: target.id,
      ...(current ? { currentDeployId: current.id } : {}),
      ...(target.imageTag ? { imageTag: target.imageTag } : {}),
      ...(target.dagTarballVersion ? { dagTarballVersion: target.dagTarballVersion } : {}),
    });
    const description = describeDeploy(params.description ?? `Rollback to deploy ${target.id}`, parseMarker(target.description) ?? {});
    const known = new Set(before.map((d) => d.id));
    const madeIn = (list: Deploy[]) => list.find((d) => !known.has(d.id) && (d.rollbackFromId === target.id || d.description === description));

    // Sent again only after Astro answered without acting and the deploy list shows no record of it.
    const callRetry = validateRetryOptions('request.retry', params.request?.retry);
    const policy = retryPolicy(callRetry, { defaults: ctx.retry, idempotent: true });
    const resendable = new WeakSet<object>();
    let recovered = false;
    let deploy: Deploy;
    try {
      deploy = await withRetries(
        async () => {
          try {
            return await ctx.deploys.rollback(deploymentId, target.id, { description }, requestOptions);
          } catch (error) {
            if (!isAstroError(error) || error.code === ErrorCodes.ABORTED || signal?.aborted) throw error;
            const outcome = outcomeOf(error);
            if (outcome === 'refused' || outcome === 'not-acted') throw error;
            // The rollback may have been made (or, after a lost answer, may still be): look for its record.
            const answered = outcome === 'answered';
            let after: Deploy[];
            try {
              after = await readBack(() => ctx.deploys.listAll(deploymentId, {}, { ...requestOptions, retry: callRetry }), {
                checkTimeoutMs,
                retry: callRetry,
                defaults: ctx.retry,
                signal,
                logger: ctx.logger,
                ...(answered ? {} : { until: (list: Deploy[]) => madeIn(list) !== undefined }),
              });
            } catch (readError) {
              if (isAstroError(readError, ErrorCodes.ABORTED)) throw readError;
              // Astro said it did not act: its own error stands. Otherwise nothing can be told.
              throw answered ? error : rollbackUnknown(deploymentId, target.id, error, checkTimeoutMs, readError);
            }
            const made = madeIn(after);
            if (made) {
              recovered = true;
              return made;
            }
            if (!answered) throw rollbackUnknown(deploymentId, target.id, error, checkTimeoutMs);
            resendable.add(error);
            throw error;
          }
        },
        {
          policy,
          signal,
          logger: ctx.logger,
          classify: (error) => (error && typeof error === 'object' && (resendable.has(error) || outcomeOf(error) === 'not-acted') ? failureOf(error) : undefined),
        },
      );
    } catch (error) {
      if (isAstroError(error) && outcomeOf(error) === 'refused') {
        const status = failureOf(error)?.status;
        throw new AstroRollbackError(
          ErrorCodes.ROLLBACK_REFUSED,
          `Astro refused the rollback of deployment ${deploymentId} to deploy ${target.id}${status ? ` (HTTP ${status})` : ''}: ${error.message}`,
          { deploymentId, targetDeployId: target.id, ...(status ? { status } : {}) },
          { cause: error },
        );
      }
      throw error;
    }
    emit({ type: 'rollback:started', deploymentId, deployId: deploy.id, targetDeployId: target.id, recovered });

    const result: RollbackResult = {
      deployId: deploy.id,
      deploy: redactDeploySas(deploy),
      target: redactDeploySas(target),
      ...(current ? { previous: redactDeploySas(current) } : {}),
      recovered,
    };
    const rollout = await waitIfAsked(
      ctx,
      params,
      {
        deploymentId,
        deployId: deploy.id,
        expect: { ...(target.imageTag ? { imageTag: target.imageTag } : {}), ...(target.dagTarballVersion ? { dagTarballVersion: target.dagTarballVersion } : {}) },
      },
      emit,
    );
    if (rollout) result.rollout = rollout;
    return result;
  }, signal);
}
