/** client.rollback against the fake Astro over real HTTP: target choice, the rollback call, lost answers, the wait. */
import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AstroRollbackError, type ClientEvent, type DeployDagsResult } from '../../src/index.js';
import { startFake } from '../helpers/fake.js';

function dagsWith(content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'rb-dags-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'dag.py'), `from airflow import DAG\n# ${content}\n`);
  return dir;
}

const fast = { initialDelayMs: 1, maxDelayMs: 5 };
const DAY = 24 * 3600 * 1000;

async function withTwoDagDeploys() {
  const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 30 });
  const deploy = (content: string) =>
    client.deployDags({ deploymentId: 'cldep1', dagsDir: dagsWith(content), upload: { journalDir: false }, wait: { pollIntervalMs: 20 } }) as Promise<DeployDagsResult>;
  const first = await deploy('one');
  const second = await deploy('two');
  return { astro, client, first, second };
}

describe('rollback', () => {
  it("'previous' rolls back to the last successful deploy before the running one and waits until the deployment runs it", async () => {
    const { astro, client, first, second } = await withTwoDagDeploys();
    expect(astro.deployment('cldep1').dagTarballVersion).toBe(second.dagTarballVersion);
    const events: ClientEvent[] = [];
    const result = await client.rollback({ deploymentId: 'cldep1', to: 'previous', wait: { pollIntervalMs: 20 }, onEvent: (e) => events.push(e) });
    expect(result.target.id).toBe(first.deployId);
    expect(result.previous?.id).toBe(second.deployId);
    expect(result.recovered).toBe(false);
    expect(result.rollout?.deployment.dagTarballVersion).toBe(first.dagTarballVersion);
    expect(astro.deployment('cldep1').dagTarballVersion).toBe(first.dagTarballVersion);
    // One rollback call on the target, with the description and the target's fingerprint marker.
    const calls = astro.requestsFor('deploys.rollback');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.path).toMatch(new RegExp(`/deploys/${first.deployId}/rollback$`));
    expect(calls[0]!.body).toEqual({ description: `Rollback to deploy ${first.deployId} [astro-deploy-sdk dags:sha256:${first.bundle.fingerprint.slice(0, 32)}]` });
    const made = astro.deploys('cldep1').at(-1)!;
    expect(made).toMatchObject({ id: result.deployId, rollbackFromId: first.deployId, status: 'DEPLOYED', dagTarballVersion: first.dagTarballVersion });
    const types = events.map((e) => e.type);
    expect(types.slice(0, 2)).toEqual(['rollback:target', 'rollback:started']);
    expect(types.at(-1)).toBe('rollout:complete');
  });

  it('rolls back to a deploy given by id, with the caller\'s description, image tag and DAG version of the target', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 30 });
    const old = astro.addDeploy('cldep1', { type: 'IMAGE_AND_DAG', imageTag: 'deploy-old', dagTarballVersion: 'v-old', createdAt: new Date(Date.now() - 3 * DAY).toISOString() });
    astro.addDeploy('cldep1', { type: 'IMAGE_AND_DAG', imageTag: 'deploy-new', dagTarballVersion: 'v-new' });
    Object.assign(astro.deployment('cldep1'), { imageTag: 'deploy-new', dagTarballVersion: 'v-new', desiredDagTarballVersion: 'v-new' });
    const result = await client.rollback({ deploymentId: 'cldep1', to: old.id, description: 'bad release', wait: { pollIntervalMs: 20 } });
    expect(result.target.id).toBe(old.id);
    expect(astro.requestsFor('deploys.rollback')[0]!.body).toEqual({ description: 'bad release' });
    expect(result.rollout?.deployment).toMatchObject({ imageTag: 'deploy-old', dagTarballVersion: 'v-old' });
  });

  it("'previous' skips failed deploys, deploys of the code that runs now (an earlier rollback), and deploys older than 90 days", async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 30 });
    const at = (daysAgo: number) => new Date(Date.now() - daysAgo * DAY).toISOString();
    astro.addDeploy('cldep1', { imageTag: 'deploy-a', dagTarballVersion: 'v-a', createdAt: at(100) });
    const b = astro.addDeploy('cldep1', { imageTag: 'deploy-b', dagTarballVersion: 'v-b', createdAt: at(50) });
    astro.addDeploy('cldep1', { imageTag: 'deploy-c', dagTarballVersion: 'v-c', createdAt: at(40), status: 'FAILED' });
    astro.addDeploy('cldep1', { imageTag: 'deploy-d', dagTarballVersion: 'v-d', createdAt: at(30) });
    const current = astro.addDeploy('cldep1', { imageTag: 'deploy-d', dagTarballVersion: 'v-d', createdAt: at(1) });
    Object.assign(astro.deployment('cldep1'), { imageTag: 'deploy-d', dagTarballVersion: 'v-d', desiredDagTarballVersion: 'v-d' });
    const result = await client.rollback({ deploymentId: 'cldep1', to: 'previous' });
    expect(result.previous?.id).toBe(current.id);
    expect(result.target.id).toBe(b.id);
  });

  it('nothing to roll back to is ASTRO_ROLLBACK_NO_TARGET, before any rollback call', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const only = astro.addDeploy('cldep1', { imageTag: 'deploy-a', dagTarballVersion: 'v-a' });
    const pending = astro.addDeploy('cldep1', { imageTag: 'deploy-b', status: 'INITIALIZED' });
    const ancient = astro.addDeploy('cldep1', { imageTag: 'deploy-z', createdAt: new Date(Date.now() - 91 * DAY).toISOString() });
    Object.assign(astro.deployment('cldep1'), { imageTag: 'deploy-a', dagTarballVersion: 'v-a' });
    const cases: Array<[string, RegExp]> = [
      ['previous', /no successful deploy before/],
      [pending.id, /never deployed/],
      [ancient.id, /older than 90 days/],
      [only.id, /already runs/],
      ['clnosuchdeploy', /no deploy clnosuchdeploy/],
    ];
    for (const [to, message] of cases) {
      const err = await client.rollback({ deploymentId: 'cldep1', to }).catch((e) => e);
      expect(err).toBeInstanceOf(AstroRollbackError);
      expect(err.code).toBe('ASTRO_ROLLBACK_NO_TARGET');
      expect(err.message).toMatch(message);
      expect(err.deploymentId).toBe('cldep1');
    }
    expect(astro.requestsFor('deploys.rollback')).toHaveLength(0);
  });

  it('a refusal by Astro is ASTRO_ROLLBACK_REFUSED with its status, sent once', async () => {
    const { astro, client } = await withTwoDagDeploys();
    astro.fail({ route: 'deploys.rollback', action: { kind: 'status', status: 400, body: { message: 'Rollbacks are disabled for this deployment', statusCode: 400, requestId: 'r1' } } });
    const err = await client.rollback({ deploymentId: 'cldep1', to: 'previous', request: { retry: fast } }).catch((e) => e);
    expect(err).toBeInstanceOf(AstroRollbackError);
    expect(err.code).toBe('ASTRO_ROLLBACK_REFUSED');
    expect(err.status).toBe(400);
    expect(err.message).toContain('Rollbacks are disabled');
    expect(astro.requestsFor('deploys.rollback')).toHaveLength(1);
  });

  it('a lost answer is resolved by reading the deploy list: the rollback Astro made is found, nothing is sent twice', async () => {
    const { astro, client, first } = await withTwoDagDeploys();
    astro.fail({ route: 'deploys.rollback', action: { kind: 'dropResponse' } });
    const events: ClientEvent[] = [];
    const result = await client.rollback({ deploymentId: 'cldep1', to: 'previous', request: { retry: fast }, onEvent: (e) => events.push(e) });
    expect(result.recovered).toBe(true);
    expect(astro.requestsFor('deploys.rollback')).toHaveLength(1);
    expect(astro.deploys('cldep1').filter((d) => d.rollbackFromId === first.deployId)).toHaveLength(1);
    expect(events.find((e) => e.type === 'rollback:started')).toMatchObject({ recovered: true, deployId: result.deployId });
  });

  it('a 503 that Astro did not act on is sent again only after the deploy list shows no rollback', async () => {
    const { astro, client, first } = await withTwoDagDeploys();
    astro.fail({ route: 'deploys.rollback', action: { kind: 'status', status: 503 } });
    const result = await client.rollback({ deploymentId: 'cldep1', to: 'previous', request: { retry: fast } });
    expect(result.recovered).toBe(false);
    const routes = astro.requests.map((r) => r.route).filter((r) => r === 'deploys.rollback' || r === 'deploys.list');
    // list (choose the target), rollback 503, list (read back: nothing), rollback again.
    expect(routes).toEqual(['deploys.list', 'deploys.rollback', 'deploys.list', 'deploys.rollback']);
    expect(astro.deploys('cldep1').filter((d) => d.rollbackFromId === first.deployId)).toHaveLength(1);
  });

  it('Astro makes the rollback after the per-try timeout: the deploy list is read until its record shows up, and it is never sent twice', async () => {
    const { astro, client, first } = await withTwoDagDeploys();
    // The rollback is acted on 700 ms after it arrived: after the client's 400 ms timeout and after
    // the first read of the list (at once), which shows nothing yet. The next read (after 600-1200
    // ms of backoff) finds it.
    astro.fail({ route: 'deploys.rollback', action: { kind: 'actLate', ms: 700 } });
    const result = await client.rollback({ deploymentId: 'cldep1', to: 'previous', request: { timeoutMs: 400, retry: { initialDelayMs: 1200, maxDelayMs: 1200 } } });
    expect(result.recovered).toBe(true);
    expect(astro.requestsFor('deploys.rollback')).toHaveLength(1);
    const made = astro.deploys('cldep1').filter((d) => d.rollbackFromId === first.deployId);
    expect(made.map((d) => d.id)).toEqual([result.deployId]);
    const routes = astro.requests.map((r) => r.route).filter((r) => r === 'deploys.rollback' || r === 'deploys.list');
    expect(routes).toEqual(['deploys.list', 'deploys.rollback', 'deploys.list', 'deploys.list']);
  });

  it("a gateway's 504 whose service makes the rollback later: the list is read until the record shows up, and it is never sent twice", async () => {
    const { astro, client, first } = await withTwoDagDeploys();
    // The gateway answers 504 at once; the service behind it makes the rollback 300 ms later, after
    // the first read of the list (at once), which shows nothing yet.
    astro.fail({ route: 'deploys.rollback', action: { kind: 'actLate', ms: 300, answer: 504 } });
    const result = await client.rollback({ deploymentId: 'cldep1', to: 'previous', request: { retry: { initialDelayMs: 150, maxDelayMs: 300 } } });
    expect(result.recovered).toBe(true);
    expect(astro.requestsFor('deploys.rollback')).toHaveLength(1);
    expect(astro.requestsFor('deploys.rollback')[0]!.status).toBe(504);
    const made = astro.deploys('cldep1').filter((d) => d.rollbackFromId === first.deployId);
    expect(made.map((d) => d.id)).toEqual([result.deployId]);
  });

  it('a timeout whose rollback never shows up within rollbackCheckTimeoutMs is ASTRO_ROLLBACK_UNKNOWN naming the target, and it is not sent again', async () => {
    const { astro, client, first } = await withTwoDagDeploys();
    // Never answered, never acted on: the client cannot tell that from a late rollback.
    astro.fail({ route: 'deploys.rollback', action: { kind: 'stall' } });
    const started = performance.now();
    const err = await client
      .rollback({ deploymentId: 'cldep1', to: 'previous', rollbackCheckTimeoutMs: 300, request: { timeoutMs: 200, retry: { initialDelayMs: 20, maxDelayMs: 50 } } })
      .catch((e) => e);
    expect(err).toBeInstanceOf(AstroRollbackError);
    expect(err.code).toBe('ASTRO_ROLLBACK_UNKNOWN');
    expect(err.targetDeployId).toBe(first.deployId);
    expect(err.deploymentId).toBe('cldep1');
    expect(err.message).toContain(first.deployId);
    expect(err.message).toMatch(/not sent again/);
    // Read until the bound, more than once.
    expect(astro.requestsFor('deploys.list').length).toBeGreaterThan(2);
    expect(performance.now() - started).toBeGreaterThanOrEqual(450);
    expect(astro.requestsFor('deploys.rollback')).toHaveLength(1);
    expect(astro.deploys('cldep1').filter((d) => d.rollbackFromId === first.deployId)).toHaveLength(0);
  });

  it('refuses a rollbackCheckTimeoutMs that is not a number of milliseconds before any request', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const err = await client.rollback({ deploymentId: 'cldep1', to: 'previous', rollbackCheckTimeoutMs: -1 }).catch((e) => e);
    expect(err.code).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(astro.requests).toHaveLength(0);
  });

  it('refuses a missing `to` before any request', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const err = await client.rollback({ deploymentId: 'cldep1', to: '' }).catch((e) => e);
    expect(err.code).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(astro.requests).toHaveLength(0);
  });
});
