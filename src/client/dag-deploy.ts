/**
 * setDagDeploy: the SDK form of `astro deployment update --dag-deploy enable|disable`.
 *
 * Read-modify-write: the update endpoint takes the deployment's whole configuration, so the body
 * is rebuilt from a fresh GET with only `isDagDeployEnabled` changed, then the deployment is read
 * again to confirm the change took.
 */
import { emitterFor } from '../core/emitter.js';
import { AstroDeployError, ErrorCodes, isAstroError, type AstroError } from '../core/errors.js';
import { failureOf } from '../core/failure.js';
import type { Logger } from '../core/logger.js';
import { retryPolicy, withRetries, type RetryOptions } from '../core/retry.js';
import type { ClientEvent, DagDeployEvent } from './events.js';
import { checkTimeoutOf, outcomeOf, readBack } from './read-back.js';
import type { DeploymentsResource } from './resources.js';
import type { Deployment } from './schemas.js';
import type { AstroTokenClaims } from './token.js';
import type { RequestOptions } from './transport.js';
import { buildUpdateBody } from './update-body.js';

/** Options of `setDagDeploy`. */
export interface SetDagDeployOptions extends RequestOptions {
  /**
   * Go ahead where the CLI would ask for confirmation and refuse without it: changing a
   * CI/CD-enforced deployment with a non-API (user) token. @default false
   */
  force?: boolean;
  /** Warnings, the outcome and API retries. Exceptions thrown here are ignored. */
  onEvent?: (event: ClientEvent) => void;
  /**
   * When the update's answer is lost (a reset, a timeout), the deployment is read until it shows
   * the change; this bounds how long, in milliseconds. When it passes, `ASTRO_DAG_DEPLOY_UNKNOWN`:
   * the update is not sent again, since it may still apply and each update may restart every pod.
   * @default 60000
   */
  updateCheckTimeoutMs?: number;
}

/** What setDagDeploy did. */
export interface SetDagDeployResult {
  /** False when the deployment was already in the wanted state (no update was sent). */
  changed: boolean;
  /** The deployment as re-read after the change (or as read, when unchanged). */
  deployment: Deployment;
}

function warningsFor(deployment: Deployment, enabled: boolean, claims: AstroTokenClaims): DagDeployEvent[] {
  const events: DagDeployEvent[] = [];
  const deploymentId = deployment.id;
  if (deployment.isCicdEnforced && !claims.isApiToken) {
    events.push({
      type: 'dag-deploy:warning',
      code: 'CICD_ENFORCED',
      deploymentId,
      message:
        'CI/CD enforcement is on for this deployment: after this change, DAGs can only be deployed with an API token (CI/CD), and new tasks will not start until DAGs are deployed that way.',
    });
  }
  events.push(
    enabled
      ? {
          type: 'dag-deploy:warning',
          code: 'DAG_DEPLOY_ENABLE_REMOVES_IMAGE_DAGS',
          deploymentId,
          message:
            'Enabling DAG deploys removes the DAGs baked into the image. Running tasks continue, but new tasks are not scheduled until the first DAG deploy (deployDags).',
        }
      : {
          type: 'dag-deploy:warning',
          code: 'DAG_DEPLOY_DISABLE_REMOVES_DAGS',
          deploymentId,
          message:
            'Disabling DAG deploys removes the DAGs deployed with DAG deploys. Running tasks continue, but new tasks are not scheduled until the next image deploy restores DAGs from the image.',
        },
  );
  return events;
}

/**
 * Send the update, and send it again only when it certainly did not apply. The body is the whole
 * desired state, but re-sending it is not harmless: an update may restart every pod of the
 * deployment (astro-cli#879). So after a failure the deployment is read first, and a change found
 * applied is success:
 * - after a 5xx or 408 (Astro answered without acting; not a gateway's 502 or 504, after which it
 *   may still act), a refused connection or a 429, one read tells: a change found missing is sent
 *   again (within the retry settings); a deployment that cannot be read ends with the update's
 *   own error;
 * - after a lost answer, a timeout, a 502 or a 504, Astro may apply it late: the deployment is
 *   read, with backoff, until it shows the change or `checkTimeoutMs` passes, and the update is
 *   never sent again (`ASTRO_DAG_DEPLOY_UNKNOWN`).
 */
async function updateOnce(
  ctx: { deployments: DeploymentsResource; retry?: RetryOptions | undefined; logger?: Logger | undefined },
  deploymentId: string,
  body: Record<string, unknown>,
  enabled: boolean,
  requestOptions: RequestOptions,
  checkTimeoutMs: number,
): Promise<void> {
  const applied = (d: Deployment) => d.isDagDeployEnabled === enabled;
  /** Errors after which the deployment was read without the change: the only ones sent again. */
  const resendable = new WeakSet<object>();
  await withRetries(
    async () => {
      try {
        await ctx.deployments.update(deploymentId, body, requestOptions);
      } catch (error) {
        const outcome = outcomeOf(error);
        if (!isAstroError(error) || error.code === ErrorCodes.ABORTED || requestOptions.signal?.aborted || outcome === 'refused') throw error;
        const known = outcome !== 'unknown';
        let now: Deployment;
        try {
          now = await readBack(() => ctx.deployments.get(deploymentId, requestOptions), {
            checkTimeoutMs,
            retry: requestOptions.retry,
            defaults: ctx.retry ?? {},
            signal: requestOptions.signal,
            logger: ctx.logger,
            ...(known ? {} : { until: applied }),
          });
        } catch (readError) {
          if (isAstroError(readError, ErrorCodes.ABORTED)) throw readError;
          throw known ? error : updateUnknown(deploymentId, enabled, error, checkTimeoutMs, readError);
        }
        if (applied(now)) return;
        if (!known) throw updateUnknown(deploymentId, enabled, error, checkTimeoutMs);
        resendable.add(error);
        throw error;
      }
    },
    {
      policy: retryPolicy({ ...ctx.retry, ...requestOptions.retry }),
      signal: requestOptions.signal,
      classify: (error) => (error && typeof error === 'object' && resendable.has(error) ? failureOf(error) : undefined),
    },
  );
}

/** The update was sent, its answer lost, and the change was not read within the bound. */
function updateUnknown(deploymentId: string, enabled: boolean, error: AstroError, checkTimeoutMs: number, readError?: unknown): AstroDeployError {
  const reads = readError === undefined ? 'the deployment was not read with the change' : `the deployment could not be read (${isAstroError(readError) ? readError.code : String(readError)})`;
  return new AstroDeployError(
    ErrorCodes.DAG_DEPLOY_UNKNOWN,
    `The update of deployment ${deploymentId} to DAG deploys ${enabled ? 'enabled' : 'disabled'} was sent and its answer was lost (${error.code}); within ${checkTimeoutMs} ms ${reads}. It may still apply, so it was not sent again: each update may restart every pod. Check the deployment (client.deployments.get('${deploymentId}') or the Astro UI) before calling setDagDeploy again.`,
    { cause: error },
  );
}

/** Implementation of `AstroClient.setDagDeploy`; see there. */
export async function setDagDeploy(
  ctx: { deployments: DeploymentsResource; claims: AstroTokenClaims; logger?: Logger | undefined; retry?: RetryOptions | undefined },
  deploymentId: string,
  enabled: boolean,
  options: SetDagDeployOptions,
): Promise<SetDagDeployResult> {
  const { onEvent, force, updateCheckTimeoutMs, ...requestOptions } = options;
  const checkTimeoutMs = checkTimeoutOf('updateCheckTimeoutMs', updateCheckTimeoutMs);
  const emit = emitterFor<DagDeployEvent>(onEvent, ctx.logger);
  const current = await ctx.deployments.get(deploymentId, requestOptions);
  if (current.isDagDeployEnabled === enabled) {
    emit({ type: 'dag-deploy:unchanged', deploymentId, enabled });
    return { changed: false, deployment: current };
  }
  if (current.isCicdEnforced && !ctx.claims.isApiToken && !force) {
    throw new AstroDeployError(
      ErrorCodes.CICD_ENFORCED,
      `Deployment ${deploymentId} enforces CI/CD and this is not an API token: after the change its DAGs could only be deployed with an API token. Use an API token, or pass { force: true } to proceed.`,
    );
  }
  for (const event of warningsFor(current, enabled, ctx.claims)) emit(event);

  await updateOnce(ctx, deploymentId, buildUpdateBody(current, { isDagDeployEnabled: enabled }), enabled, requestOptions, checkTimeoutMs);
  const after = await ctx.deployments.get(deploymentId, requestOptions);
  if (after.isDagDeployEnabled !== enabled) {
    throw new AstroDeployError(
      ErrorCodes.DAG_DEPLOY_NOT_APPLIED,
      `Astro accepted the update of deployment ${deploymentId}, but it still reports DAG deploys ${after.isDagDeployEnabled ? 'enabled' : 'disabled'}. Retry later or check the deployment in the Astro UI.`,
    );
  }
  emit({ type: 'dag-deploy:updated', deploymentId, enabled });
  return { changed: true, deployment: after };
}
