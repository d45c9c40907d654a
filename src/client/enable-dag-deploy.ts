/**
 * `deployDags({ enableDagDeploy: true })`: turn DAG deploys on and deploy the bundle right away.
 *
 * Enabling DAG deploys removes the DAGs baked into the image, and "if you don't trigger a deploy
 * after enabling the feature, your Deployment cannot schedule new tasks". The flow closes that
 * window: it checks and bundles first (so a bad folder leaves the setting alone), then enables
 * (setDagDeploy, with its warnings and re-read), then creates, uploads and finalizes at once. When
 * the deploy fails after the setting changed, its error says so and what to run.
 */
import { setDagDeploy } from './dag-deploy.js';
import type { DeployContext } from './deploy-common.js';
import type { ClientEvent } from './events.js';
import type { Deployment } from './schemas.js';
import type { RequestOptions } from './transport.js';

/** Enable DAG deploys on `deploymentId` (setDagDeploy's read-modify-write and re-read); resolves with the deployment as re-read. */
export async function enableDagDeployForDeploy(
  ctx: DeployContext,
  deploymentId: string,
  requestOptions: RequestOptions,
  emit: (e: ClientEvent) => void,
): Promise<Deployment> {
  const { deployment } = await setDagDeploy(
    { deployments: ctx.deployments, claims: ctx.claims, logger: ctx.logger, retry: ctx.retry },
    deploymentId,
    true,
    { ...requestOptions, onEvent: emit },
  );
  return deployment;
}

/**
 * `error` (a failure of the deploy that followed enabling) with a message that says DAG deploys
 * are now on, the deployment runs no DAGs until a DAG deploy succeeds, and what to run; also
 * marked `dagDeployEnabled: true`. The error keeps its code and class.
 */
export function noteDagDeployEnabled<E>(error: E, deploymentId: string, dagsDir: string): E {
  if (!(error instanceof Error) || Object.isFrozen(error) || (error as { dagDeployEnabled?: unknown }).dagDeployEnabled) return error;
  const note =
    `DAG deploys are now enabled on deployment ${deploymentId} (this call enabled them), but the DAG deploy that followed failed, ` +
    `so the deployment has no DAGs and schedules no new tasks until a DAG deploy succeeds. ` +
    `Run client.deployDags({ deploymentId: '${deploymentId}', dagsDir: '${dagsDir}' }) again (or \`astro deploy ${deploymentId} --dags\`), ` +
    `or turn DAG deploys off with client.setDagDeploy('${deploymentId}', false) to run the DAGs of the image again.`;
  Object.defineProperty(error, 'message', { value: `${note} Cause: ${error.message}`, enumerable: false, configurable: true, writable: true });
  Object.defineProperty(error, 'dagDeployEnabled', { value: true, enumerable: true, configurable: true });
  return error;
}
