/**
 * skipUnchanged on deployDags: the fingerprint written into the deploy's description and read back
 * from Astro's deploy list, so a second machine (a fresh client, no local state) skips too.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AstroClient, type DeployDagsEvent, type DeployDagsResult } from '../../src/index.js';
import { describeDeploy, parseMarker } from '../../src/client/skip-unchanged.js';
import { startFake } from '../helpers/fake.js';

function makeDags(): string {
  const dir = mkdtempSync(join(tmpdir(), 'skip-dags-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'etl.py'), 'from airflow import DAG\n');
  writeFileSync(join(dir, 'report.py'), 'from airflow import DAG\n');
  return dir;
}

const upload = { journalDir: false as const };

async function setup() {
  const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 30 });
  const dagsDir = makeDags();
  const first = (await client.deployDags({ deploymentId: 'cldep1', dagsDir, upload, description: 'first', wait: { pollIntervalMs: 20 } })) as DeployDagsResult;
  return { astro, client, dagsDir, first };
}

describe('skipUnchanged (deployDags)', () => {
  it('skips when the deployment runs a bundle with our fingerprint: no deploy created, no byte sent', async () => {
    const { astro, client, dagsDir, first } = await setup();
    const before = astro.requests.length;
    const events: DeployDagsEvent[] = [];
    const result = await client.deployDags({ deploymentId: 'cldep1', dagsDir, upload, skipUnchanged: true, onEvent: (e) => events.push(e) });
    expect(result).toMatchObject({
      skipped: 'unchanged',
      deploymentId: 'cldep1',
      runningDeployId: first.deployId,
      dagTarballVersion: first.dagTarballVersion,
      fingerprint: first.bundle.fingerprint,
    });
    const after = astro.requests.slice(before).map((r) => r.route);
    expect(after).not.toContain('deploys.create');
    expect(after.filter((r) => r.startsWith('blob.'))).toEqual([]);
    expect(after).toContain('deploys.list');
    expect(events.map((e) => e.type)).not.toContain('deploy:created');
    expect(astro.deploys('cldep1')).toHaveLength(1);
  });

  it('works from another machine: a fresh client with no local state reads the fingerprint from Astro', async () => {
    const { astro, dagsDir, first } = await setup();
    // A new client (another CI runner) with another token; only Astro's records are shared.
    const other = new AstroClient({ baseUrl: astro.baseUrl, token: astro.mintToken() });
    // mtimes change on a fresh checkout; the fingerprint ignores them.
    utimesSync(join(dagsDir, 'etl.py'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    const result = await other.deployDags({ deploymentId: 'cldep1', dagsDir, upload, skipUnchanged: true });
    expect(result).toMatchObject({ skipped: 'unchanged', fingerprint: first.bundle.fingerprint });
    expect(astro.requestsFor('deploys.create')).toHaveLength(1);
  });

  it('deploys when a file changed, and records the new fingerprint', async () => {
    const { astro, client, dagsDir, first } = await setup();
    writeFileSync(join(dagsDir, 'report.py'), 'from airflow import DAG  # changed\n');
    const result = (await client.deployDags({ deploymentId: 'cldep1', dagsDir, upload, skipUnchanged: true })) as DeployDagsResult;
    expect(result.deployId).toBeDefined();
    expect(result.bundle.fingerprint).not.toBe(first.bundle.fingerprint);
    expect(parseMarker(astro.deploys('cldep1').at(-1)!.description)).toEqual({ dags: result.bundle.fingerprint.slice(0, 32) });
  });

  it('compares with what the deployment runs, not with the last deploy made: after a rollback the old bundle is the running one', async () => {
    const { astro, client, dagsDir, first } = await setup();
    const changed = makeDags();
    writeFileSync(join(changed, 'new.py'), 'from airflow import DAG\n');
    await client.deployDags({ deploymentId: 'cldep1', dagsDir: changed, upload, wait: { pollIntervalMs: 20 } });
    // The running one is the changed bundle: deploying the first again is not skipped (checked by a dry run, nothing sent).
    const plan = await client.deployDags({ deploymentId: 'cldep1', dagsDir, upload, skipUnchanged: true, dryRun: true });
    expect(plan.plan.wouldSkip).toBe(false);
    await client.rollback({ deploymentId: 'cldep1', to: first.deployId, wait: { pollIntervalMs: 20 } });
    // The rollback deploy carries the first bundle's marker: skipped.
    const result = await client.deployDags({ deploymentId: 'cldep1', dagsDir, upload, skipUnchanged: true });
    expect(result).toMatchObject({ skipped: 'unchanged', dagTarballVersion: first.dagTarballVersion });
    expect(astro.requestsFor('deploys.create')).toHaveLength(2);
  });

  it('a rollout in flight counts as what will run: its desired DAG version decides', async () => {
    const { astro, client, dagsDir } = await setup();
    const changed = makeDags();
    writeFileSync(join(changed, 'new.py'), 'from airflow import DAG\n');
    astro.setRollout('cldep1', { outcome: 'stuck' });
    await client.deployDags({ deploymentId: 'cldep1', dagsDir: changed, upload });
    // The deployment still runs the first bundle but is moving to the changed one: not skipped.
    const result = (await client.deployDags({ deploymentId: 'cldep1', dagsDir, upload, skipUnchanged: true })) as DeployDagsResult;
    expect(result.deployId).toBeDefined();
    expect(astro.requestsFor('deploys.create')).toHaveLength(3);
  });

  it('without a marker (recordFingerprint: false, or a deploy made by the CLI) nothing is skipped', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 30 });
    const dagsDir = makeDags();
    await client.deployDags({ deploymentId: 'cldep1', dagsDir, upload, description: 'plain', recordFingerprint: false, wait: { pollIntervalMs: 20 } });
    expect(astro.deploys('cldep1')[0]!.description).toBe('plain');
    const result = (await client.deployDags({ deploymentId: 'cldep1', dagsDir, upload, skipUnchanged: true })) as DeployDagsResult;
    expect(result.deployId).toBeDefined();
  });

  it('the marker is short and documented, and the caller\'s description is cut, never the marker, to fit 500 characters', () => {
    const fp = 'ab'.repeat(32);
    expect(describeDeploy('nightly', { dags: fp })).toBe(`nightly [astro-deploy-sdk dags:sha256:${fp.slice(0, 32)}]`);
    expect(describeDeploy(undefined, { image: `sha256:${'cd'.repeat(32)}`, dags: fp })).toBe(`[astro-deploy-sdk image:sha256:${'cd'.repeat(16)} dags:sha256:${fp.slice(0, 32)}]`);
    const long = describeDeploy('x'.repeat(600), { dags: fp });
    expect(long.length).toBeLessThanOrEqual(500);
    expect(parseMarker(long)).toEqual({ dags: fp.slice(0, 32) });
    expect(describeDeploy('plain', { dags: fp }, false)).toBe('plain');
  });
});
