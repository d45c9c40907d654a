/**
 * setDagDeploy: the SDK form of `astro deployment update --dag-deploy enable|disable`.
 *
 * Read-modify-write: the update endpoint takes the deployment's whole configuration, so the body
 * is rebuilt from a fresh GET with only `isDagDeployEnabled` changed, then the deployment is read
 * again to confirm the change took.
 */
import { emitterFor } from '../core/emitter.js';
import { AstroDeployError, ErrorCodes } from '../core/errors.js';
import { failureOf } from '../core/failure.js';
import type { Logger } from '../core/logger.js';
import { retryPolicy, withRetries, type RetryOptions } from '../core/retry.js';
import type { ClientEvent, DagDeployEvent } from './events.js';
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
 * Send the update, and send it again only after the deployment was read back without the change.
 * The body is the whole desired state, but re-sending it is not harmless: an update may restart
 * every pod of the deployment (astro-cli#879). So after an answer that was lost or failed (reset,
 * timeout, 408, 5xx) the deployment is read first; a change found applied is success, a change
 * found missing is sent again (within the retry settings), and a deployment that cannot be read
 * ends with the update's own error.
 */
async function updateOnce(
  ctx: { deployments: DeploymentsResource; retry?: RetryOptions | undefined },
  deploymentId: string,
  body: Record<string, unknown>,
  enabled: boolean,
  requestOptions: RequestOptions,
): Promise<void> {
  let readAsNotApplied = false;
  await withRetries(
    async () => {
      readAsNotApplied = false;
      try {
        await ctx.deployments.update(deploymentId, body, requestOptions);
      } catch (error) {
        const failure = failureOf(error);
        const refused = failure?.kind === 'status' && failure.status! < 500 && failure.status !== 408 && failure.status !== 429;
        if (!failure || refused) throw error;
        const now = await ctx.deployments.get(deploymentId, requestOptions).catch(() => undefined);
        if (now?.isDagDeployEnabled === enabled) return;
        readAsNotApplied = now !== undefined;
        throw error;
      }
    },
    {
      policy: retryPolicy({ ...ctx.retry, ...requestOptions.retry }),
      signal: requestOptions.signal,
      // Only an update positively read as not applied is sent again.
      classify: (error) => (readAsNotApplied ? failureOf(error) : undefined),
    },
  );
}

/** Implementation of `AstroClient.setDagDeploy`; see there. */
export async function setDagDeploy(
  ctx: { deployments: DeploymentsResource; claims: AstroTokenClaims; logger?: Logger | undefined; retry?: RetryOptions | undefined },
  deploymentId: string,
  enabled: boolean,
  options: SetDagDeployOptions,
): Promise<SetDagDeployResult> {
  const { onEvent, force, ...requestOptions } = options;
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

  await updateOnce(ctx, deploymentId, buildUpdateBody(current, { isDagDeployEnabled: enabled }), enabled, requestOptions);
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
