import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AstroRolloutError, type ClientEvent } from '../../src/index.js';
import { putBlob, startFake } from '../helpers/fake.js';
import type { AstroClient, WaitForRolloutParams } from '../../src/index.js';
import type { FakeAstro } from '../../src/testing/index.js';

/** Create + upload + finalize a DAG deploy through the raw API; returns ids and version. */
async function finalizedDagDeploy(astro: FakeAstro, client: AstroClient, deploymentId: string) {
  const deploy = await client.deploys.create(deploymentId, { type: 'DAG_ONLY' });
  const version = await putBlob(deploy.dagsUploadUrl!, Buffer.from(`bundle ${Math.random()}`));
  await client.deploys.finalize(deploymentId, deploy.id, { dagTarballVersion: version });
  return { deployId: deploy.id, version };
}

describe('waitForRollout', () => {
  it('ends when this deploy is applied, polling from the start (no head-start sleep)', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 600 });
    const { deployId, version } = await finalizedDagDeploy(astro, client, 'cldep1');
    const events: ClientEvent[] = [];
    const started = Date.now();
    const result = await client.waitForRollout({ deploymentId: 'cldep1', deployId, pollIntervalMs: 100, maxPollIntervalMs: 100, onEvent: (e) => events.push(e) });
    const elapsed = Date.now() - started;
    expect(result.deployment.dagTarballVersion).toBe(version);
    expect(result.deploy?.status).toBe('DEPLOYED');
    expect(result.snapshot.deploymentStatus).toBe('HEALTHY');
    expect(elapsed).toBeGreaterThanOrEqual(400);
    expect(elapsed).toBeLessThan(5000);
    const first = events.find((e) => e.type === 'rollout:poll');
    expect(first && first.type === 'rollout:poll' && first.snapshot.deploymentStatus).toBe('DEPLOYING');
    const changes = events.filter((e) => e.type === 'rollout:change');
    expect(changes.length).toBeGreaterThanOrEqual(2);
    expect(events.at(-1)?.type).toBe('rollout:complete');
  });

  it('does not end on a stale HEALTHY deployment still running the old version', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', dagTarballVersion: '2026-01-01T00:00:00.0000000Z' }] });
    // The deployment reports HEALTHY on the old version while the new one has not rolled out.
    astro.setRollout('cldep1', { outcome: 'stuck' });
    const { deployId, version } = await finalizedDagDeploy(astro, client, 'cldep1');
    const d = astro.deployment('cldep1');
    d.status = 'HEALTHY';
    d.desiredDagTarballVersion = version;
    const err = await client.waitForRollout({ deploymentId: 'cldep1', deployId, timeoutMs: 300, pollIntervalMs: 20 }).catch((e) => e);
    expect(err).toBeInstanceOf(AstroRolloutError);
    expect(err.code).toBe('ASTRO_ROLLOUT_TIMEOUT');
    expect(err.lastState).toMatchObject({ deploymentStatus: 'HEALTHY', dagTarballVersion: '2026-01-01T00:00:00.0000000Z', desiredDagTarballVersion: version, deployStatus: 'INITIALIZED' });
    expect(err.lastState.polls).toBeGreaterThanOrEqual(3);
    expect(err.message).toContain(version);
  });

  it('also refuses to end on HEALTHY + new current version while desired differs', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    astro.setRollout('cldep1', { outcome: 'stuck' });
    const { version } = await finalizedDagDeploy(astro, client, 'cldep1');
    const d = astro.deployment('cldep1');
    d.status = 'HEALTHY';
    d.dagTarballVersion = version;
    d.desiredDagTarballVersion = 'a-newer-one';
    const err = await client.waitForRollout({ deploymentId: 'cldep1', expect: { dagTarballVersion: version }, timeoutMs: 200, pollIntervalMs: 20 }).catch((e) => e);
    expect(err.code).toBe('ASTRO_ROLLOUT_TIMEOUT');
  });

  it('fails fast when the deploy FAILED', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    astro.setRollout('cldep1', { outcome: 'failed', delayMs: 100, statusReason: 'scheduler crashed' });
    const { deployId } = await finalizedDagDeploy(astro, client, 'cldep1');
    const started = Date.now();
    const err = await client.waitForRollout({ deploymentId: 'cldep1', deployId, timeoutMs: 60_000, pollIntervalMs: 20 }).catch((e) => e);
    expect(err.code).toBe('ASTRO_ROLLOUT_FAILED');
    expect(err.message).toContain('scheduler crashed');
    expect(err.lastState.deployStatus).toBe('FAILED');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('waits for the image tag of an image deploy', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }], rolloutDelayMs: 100 });
    const deploy = await client.deploys.create('cldep1', { type: 'IMAGE_ONLY' });
    await client.deploys.finalize('cldep1', deploy.id, {});
    const result = await client.waitForRollout({ deploymentId: 'cldep1', deployId: deploy.id, pollIntervalMs: 20 });
    expect(result.deployment.imageTag).toBe(deploy.imageTag);
    expect(astro.deployment('cldep1').imageTag).toBe(deploy.imageTag);
  });

  it('keeps polling through passing API errors', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 100 }, { retry: { maxRetries: 0 } });
    const { deployId } = await finalizedDagDeploy(astro, client, 'cldep1');
    astro.fail({ route: 'deployments.get', nth: 1, times: 2, action: { kind: 'status', status: 503 } });
    const events: ClientEvent[] = [];
    const result = await client.waitForRollout({ deploymentId: 'cldep1', deployId, pollIntervalMs: 20, onEvent: (e) => events.push(e) });
    expect(result.snapshot.deploymentStatus).toBe('HEALTHY');
    expect(events.filter((e) => e.type === 'rollout:poll-error')).toHaveLength(2);
  });

  const badTiming: Array<[string, Omit<WaitForRolloutParams, 'deploymentId'>]> = [
    ['timeoutMs NaN', { timeoutMs: Number.NaN }],
    ['timeoutMs -1', { timeoutMs: -1 }],
    ['pollIntervalMs NaN', { pollIntervalMs: Number.NaN }],
    ['pollIntervalMs -5', { pollIntervalMs: -5 }],
    ['maxPollIntervalMs Infinity', { maxPollIntervalMs: Number.POSITIVE_INFINITY }],
    ['maxPollIntervalMs past what a timer keeps', { maxPollIntervalMs: 2 ** 31 }],
    ['verifyDags.settleMs past what a timer keeps', { verifyDags: { settleMs: 2 ** 31 } }],
  ];
  for (const [label, timing] of badTiming) {
    it(`refuses ${label} with ASTRO_CONFIG_INVALID_OPTION before the first poll`, async () => {
      const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
      // A version that never rolls out: without the check the wait would poll on (stopped here after 1 s).
      const err = await client
        .waitForRollout({ deploymentId: 'cldep1', expect: { dagTarballVersion: 'never' }, signal: AbortSignal.timeout(1000), ...timing })
        .catch((e) => e);
      expect(err.code).toBe('ASTRO_CONFIG_INVALID_OPTION');
      expect(err.message).toContain(Object.keys(timing)[0]);
      expect(astro.requests).toEqual([]);
    });
  }

  it('refuses the same timing in a deploy flow\'s wait before the deploy is created', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const dagsDir = mkdtempSync(join(tmpdir(), 'rollout-dags-'));
    onTestFinished(() => rmSync(dagsDir, { recursive: true, force: true }));
    writeFileSync(join(dagsDir, 'dag.py'), 'from airflow import DAG\n');
    const err = await client
      .deployDags({ deploymentId: 'cldep1', dagsDir, upload: { journalDir: false }, wait: { timeoutMs: Number.NaN }, signal: AbortSignal.timeout(1000) })
      .catch((e) => e);
    expect(err.code).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(astro.deploys('cldep1')).toEqual([]);
  });

  it('aborts promptly', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    astro.setRollout('cldep1', { outcome: 'stuck' });
    const { deployId } = await finalizedDagDeploy(astro, client, 'cldep1');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 150);
    const started = Date.now();
    const err = await client.waitForRollout({ deploymentId: 'cldep1', deployId, pollIntervalMs: 10_000, signal: controller.signal }).catch((e) => e);
    expect(err.code).toBe('ASTRO_ABORTED');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('with no deploy and no expectation, behaves like the CLI (healthy is enough)', async () => {
    const { client } = await startFake({ deployments: [{ id: 'cldep1', status: 'HIBERNATING' }] });
    const result = await client.waitForRollout({ deploymentId: 'cldep1' });
    expect(result.snapshot.polls).toBe(1);
  });
});
