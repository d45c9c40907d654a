/** dryRun on deployDags (the image flows are in deploy-image-plan.test.ts): reads only, a full plan. */
import { describe, expect, it, onTestFinished } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AstroClient, type DeployDagsEvent, type DeployDagsResult } from '../../src/index.js';
import { startFake } from '../helpers/fake.js';

function makeDags(): string {
  const dir = mkdtempSync(join(tmpdir(), 'plan-dags-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'etl.py'), 'from airflow import DAG\nimport helpers\n');
  writeFileSync(join(dir, 'helpers.py'), 'X = 1\n');
  mkdirSync(join(dir, 'scratch'));
  writeFileSync(join(dir, 'scratch', 'notes.txt'), 'ignore me');
  writeFileSync(join(dir, '.airflowignore'), 'scratch/\nhelpers.py\n');
  return dir;
}

const upload = { journalDir: false as const };

describe('deployDags dryRun', () => {
  it('sends nothing but reads and resolves with the plan: type, bundle, impact, description, not yet running', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', name: 'etl-prod' }] });
    const result = await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload, dryRun: true, description: 'ci' });
    expect(result.dryRun).toBe(true);
    const { plan } = result;
    expect(plan).toMatchObject({
      deploymentId: 'cldep1',
      deployType: 'DAG_ONLY',
      wouldDeploy: true,
      refusals: [],
      deployment: { name: 'etl-prod', isDagDeployEnabled: true, isCicdEnforced: false, remoteExecution: false },
      dagDeploy: { enabled: true, wouldEnable: false },
      cicd: { enforced: false, apiToken: true },
      unchanged: { unchanged: false, dags: false },
      impact: { deployType: 'DAG_ONLY', restartsComponents: false },
    });
    expect(plan.bundle).toMatchObject({ syntax: 'glob', files: 3, paths: ['.airflowignore', 'etl.py', 'helpers.py'] });
    expect(plan.bundle!.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(plan.bundle!.excluded.map((e) => e.path)).toEqual(['scratch']);
    expect(plan.bundle!.kept).toEqual([expect.objectContaining({ path: 'helpers.py', reason: 'hidden-import' })]);
    expect(plan.description).toBe(`ci [astro-deploy-sdk dags:sha256:${plan.bundle!.fingerprint.slice(0, 32)}]`);
    expect(plan.impact.summary).toMatch(/nothing restarts/);
    // Reads only: no deploy, no blob request.
    expect(new Set(astro.requests.map((r) => r.method))).toEqual(new Set(['GET']));
    expect(astro.requests.map((r) => r.route).filter((r) => r.startsWith('blob.'))).toEqual([]);
    expect(astro.deploys('cldep1')).toHaveLength(0);
  });

  it('says whether the bundle equals what the deployment runs', async () => {
    const { client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 30 });
    const dagsDir = makeDags();
    const deployed = (await client.deployDags({ deploymentId: 'cldep1', dagsDir, upload, wait: { pollIntervalMs: 20 } })) as DeployDagsResult;
    const { plan } = await client.deployDags({ deploymentId: 'cldep1', dagsDir, upload, dryRun: true, skipUnchanged: true });
    expect(plan.unchanged).toMatchObject({ unchanged: true, dags: true, running: { dags: { deployId: deployed.deployId, dagTarballVersion: deployed.dagTarballVersion } } });
    expect(plan.wouldSkip).toBe(true);
    expect(plan.wouldDeploy).toBe(false);
  });

  it('collects every refusal the real run would hit instead of throwing the first', async () => {
    const { astro } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false, isCicdEnforced: true }] });
    const user = new AstroClient({ baseUrl: astro.baseUrl, token: astro.mintToken({ permissions: [] }), organizationId: astro.organizationId });
    const empty = mkdtempSync(join(tmpdir(), 'plan-empty-'));
    onTestFinished(() => rmSync(empty, { recursive: true, force: true }));
    const { plan } = await user.deployDags({ deploymentId: 'cldep1', dagsDir: empty, upload, dryRun: true });
    expect(plan.refusals.map((r) => r.code)).toEqual(['ASTRO_DAG_DEPLOY_DISABLED', 'ASTRO_CICD_ENFORCED', 'ASTRO_BUNDLE_EMPTY']);
    expect(plan.wouldDeploy).toBe(false);
    expect(plan.cicd).toEqual({ enforced: true, apiToken: false });
    expect(plan.bundle).toBeUndefined();
    // The real run throws the first of them.
    const err = await user.deployDags({ deploymentId: 'cldep1', dagsDir: empty, upload }).catch((e) => e);
    expect(err.code).toBe('ASTRO_DAG_DEPLOY_DISABLED');
  });

  it('requireClean on a dirty repository is a refusal of the plan too, listed first as the real run checks it first', async () => {
    const { client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const dagsDir = makeDags();
    const git = (...args: string[]) => execFileSync('git', ['-c', 'user.email=t@example.com', '-c', 'user.name=t', ...args], { cwd: dagsDir, stdio: 'pipe' });
    git('init', '-q');
    git('add', '.');
    git('commit', '-q', '-m', 'dags');
    writeFileSync(join(dagsDir, 'etl.py'), 'from airflow import DAG  # edited\n');
    const { plan } = await client.deployDags({ deploymentId: 'cldep1', dagsDir, upload, dryRun: true, requireClean: true, git: 'auto' });
    expect(plan.refusals.map((r) => r.code)).toEqual(['ASTRO_GIT_UNCOMMITTED_CHANGES']);
    expect(plan.wouldDeploy).toBe(false);
  });

  it('with enableDagDeploy, plans to turn DAG deploys on instead of refusing', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] });
    const { plan } = await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload, dryRun: true, enableDagDeploy: true });
    expect(plan.dagDeploy).toEqual({ enabled: false, wouldEnable: true });
    expect(plan.refusals).toEqual([]);
    expect(astro.requestsFor('deployments.update')).toHaveLength(0);
  });

  it('the real run emits deploy:impact before deploy:created', async () => {
    const { client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const events: DeployDagsEvent[] = [];
    await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload, onEvent: (e) => events.push(e) });
    const types = events.map((e) => e.type);
    expect(types.indexOf('deploy:impact')).toBeGreaterThan(-1);
    expect(types.indexOf('deploy:impact')).toBeLessThan(types.indexOf('deploy:created'));
    expect(events.find((e) => e.type === 'deploy:impact')).toMatchObject({ deploymentId: 'cldep1', impact: { restartsComponents: false } });
  });
});
