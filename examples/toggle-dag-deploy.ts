/**
 * Turn DAG deploys on for a deployment and wait until it is healthy, against the embedded fake
 * Astro. Against the real Astro, drop the fake and set ASTRO_API_TOKEN instead.
 *
 *   npx tsx examples/toggle-dag-deploy.ts
 */
import { AstroClient, isAstroError } from 'astro-deploy-sdk';
import { createFakeAstro } from 'astro-deploy-sdk/testing';

const astro = await createFakeAstro({
  deployments: [{ id: 'clexampledeployment000001', name: 'analytics', isDagDeployEnabled: false }],
});
try {
  const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
  const result = await client.setDagDeploy('clexampledeployment000001', true, {
    onEvent: (event) => {
      if (event.type === 'dag-deploy:warning') console.log(`warning [${event.code}]: ${event.message}`);
      else console.log(`event: ${event.type}`);
    },
  });
  console.log(`DAG deploys enabled: ${result.deployment.isDagDeployEnabled} (changed: ${result.changed})`);
  const rollout = await client.waitForRollout({ deploymentId: 'clexampledeployment000001', timeoutMs: 30_000 });
  console.log(`deployment is ${rollout.snapshot.deploymentStatus} after ${rollout.snapshot.polls} poll(s)`);
} catch (error) {
  console.error(isAstroError(error) ? `${error.code}: ${error.message}` : error);
  process.exitCode = 1;
} finally {
  await astro.close();
}
