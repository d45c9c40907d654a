/** deployDags({ enableDagDeploy: true }): enable DAG deploys and deploy the bundle right away. */
import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AstroClient, type DeployDagsEvent, type DeployDagsResult } from '../../src/index.js';
import { startFake } from '../helpers/fake.js';

function makeDags(): string {
  const dir = mkdtempSync(join(tmpdir(), 'enable-dags-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'dag.py'), 'from airflow import DAG\n');
  return dir;
}

const upload = { journalDir: false as const };

describe('deployDags enableDagDeploy', () => {
  it('turns DAG deploys on (setDagDeploy: warnings, update, re-read) after the bundle, then deploys at once and waits', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }], rolloutDelayMs: 30 });
    const events: DeployDagsEvent[] = [];
    const result = (await client.deployDags({
      deploymentId: 'cldep1',
      dagsDir: makeDags(),
      upload,
      enableDagDeploy: true,
      wait: { pollIntervalMs: 20, verifyDags: true },
      onEvent: (e) => events.push(e),
    })) as DeployDagsResult;
    expect(astro.deployment('cldep1').isDagDeployEnabled).toBe(true);
    expect(astro.deployment('cldep1').dagTarballVersion).toBe(result.dagTarballVersion);
    expect(result.rollout?.verification?.checked).toBe(true);
    const types = events.map((e) => e.type);
    // Bundle first (a bad folder leaves the setting alone), then the setting, then the deploy.
    expect(types.indexOf('bundle:complete')).toBeLessThan(types.indexOf('dag-deploy:warning'));
    expect(types.indexOf('dag-deploy:updated')).toBeLessThan(types.indexOf('deploy:created'));
    expect(events.find((e) => e.type === 'dag-deploy:warning')).toMatchObject({ code: 'DAG_DEPLOY_ENABLE_REMOVES_IMAGE_DAGS' });
    const routes = astro.requests.map((r) => r.route).filter((r) => r.startsWith('deploy'));
    expect(routes.slice(0, 5)).toEqual(['deployments.get', 'deployments.get', 'deployments.update', 'deployments.get', 'deploys.create']);
  });

  it('already on: nothing is updated', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 30 });
    await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload, enableDagDeploy: true });
    expect(astro.requestsFor('deployments.update')).toHaveLength(0);
  });

  it('a deploy that fails after enabling says DAG deploys are now on and what to run', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] });
    astro.fail({ route: 'deploys.create', action: { kind: 'status', status: 400 } });
    const dagsDir = makeDags();
    const err = await client.deployDags({ deploymentId: 'cldep1', dagsDir, upload, enableDagDeploy: true }).catch((e) => e);
    expect(err.code).toBe('ASTRO_API_BAD_REQUEST');
    expect(err.dagDeployEnabled).toBe(true);
    expect(err.message).toMatch(/DAG deploys are now enabled on deployment cldep1/);
    expect(err.message).toContain(`client.deployDags({ deploymentId: 'cldep1', dagsDir: '${dagsDir}' })`);
    expect(err.message).toMatch(/no DAGs and schedules no new tasks/);
    expect(astro.deployment('cldep1').isDagDeployEnabled).toBe(true);
  });

  it('a refusal that would stop the deploy is found before the setting is touched', async () => {
    const { astro } = await startFake({ deployments: [{ id: 'clremote', isDagDeployEnabled: false, remoteExecution: true }, { id: 'clcicd', isDagDeployEnabled: false, isCicdEnforced: true }] });
    const user = new AstroClient({ baseUrl: astro.baseUrl, token: astro.mintToken({ permissions: [] }), organizationId: astro.organizationId });
    const remote = await user.deployDags({ deploymentId: 'clremote', dagsDir: makeDags(), upload, enableDagDeploy: true }).catch((e) => e);
    expect(remote.code).toBe('ASTRO_DEPLOY_REFUSED');
    const cicd = await user.deployDags({ deploymentId: 'clcicd', dagsDir: makeDags(), upload, enableDagDeploy: true }).catch((e) => e);
    expect(cicd.code).toBe('ASTRO_CICD_ENFORCED');
    expect(astro.requestsFor('deployments.update')).toHaveLength(0);
  });

  it('an empty dags folder is refused before the setting is touched', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] });
    const empty = mkdtempSync(join(tmpdir(), 'enable-empty-'));
    onTestFinished(() => rmSync(empty, { recursive: true, force: true }));
    const err = await client.deployDags({ deploymentId: 'cldep1', dagsDir: empty, upload, enableDagDeploy: true }).catch((e) => e);
    expect(err.code).toBe('ASTRO_BUNDLE_EMPTY');
    expect(astro.deployment('cldep1').isDagDeployEnabled).toBe(false);
  });
});
