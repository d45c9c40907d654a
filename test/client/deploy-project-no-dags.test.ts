/**
 * deployProject of a project without a dags/ folder, on a deployment with DAG deploys on: it would
 * finalize with an empty DAG version, which removes the deployment's DAGs (the CLI asks first: "No
 * DAGs found. This will delete any existing DAGs"). Refused before any Docker work or request that
 * creates anything, unless `allowEmpty: true`. No Docker needed: the Docker client given fails every
 * use, and must not be used before the refusal.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFake } from '../helpers/fake.js';
import { unusableDocker } from './fixtures/unusable-docker.js';

/** An Astro project with a Dockerfile and no dags/ folder. */
function projectWithoutDags(): string {
  const dir = mkdtempSync(join(tmpdir(), 'no-dags-project-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'Dockerfile'), 'FROM quay.io/astronomer/astro-runtime:3.1-3\n');
  return dir;
}

describe('deployProject without a dags/ folder', () => {
  it('DAG deploys on: ASTRO_BUNDLE_DIR_NOT_FOUND naming the folder and allowEmpty, before any Docker work, nothing created', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: true }] });
    const projectDir = projectWithoutDags();
    const touched: string[] = [];
    const err = await client.deployProject({ projectDir, deploymentId: 'cldep1', docker: unusableDocker(touched) }).catch((e) => e);
    expect(err.code, err.message).toBe('ASTRO_BUNDLE_DIR_NOT_FOUND');
    expect(err.path).toBe(join(projectDir, 'dags'));
    expect(err.message).toMatch(/allowEmpty: true/);
    expect(err.message).toMatch(/removes the DAGs/);
    expect(touched).toEqual([]);
    expect(astro.deploys('cldep1')).toEqual([]);
  });

  it('a dry run lists the same refusal', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: true }] });
    const touched: string[] = [];
    const { plan } = await client.deployProject({ projectDir: projectWithoutDags(), deploymentId: 'cldep1', docker: unusableDocker(touched), dryRun: true });
    expect(plan.refusals.map((r) => r.code)).toContain('ASTRO_BUNDLE_DIR_NOT_FOUND');
    expect(plan.wouldDeploy).toBe(false);
    expect(astro.deploys('cldep1')).toEqual([]);
  });

  it('allowEmpty: true goes on to the build (the deploy then removes the DAGs, as after the CLI prompt)', async () => {
    const { client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: true }] });
    const touched: string[] = [];
    const err = await client.deployProject({ projectDir: projectWithoutDags(), deploymentId: 'cldep1', docker: unusableDocker(touched), allowEmpty: true }).catch((e) => e);
    expect(err.code).not.toBe('ASTRO_BUNDLE_DIR_NOT_FOUND');
    expect(touched.length).toBeGreaterThan(0);
  });

  it('DAG deploys off: the image carries dags/ (none here), nothing is refused for it', async () => {
    const { client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] });
    const touched: string[] = [];
    const err = await client.deployProject({ projectDir: projectWithoutDags(), deploymentId: 'cldep1', docker: unusableDocker(touched) }).catch((e) => e);
    expect(err.code).not.toBe('ASTRO_BUNDLE_DIR_NOT_FOUND');
    expect(touched.length).toBeGreaterThan(0);
  });
});
