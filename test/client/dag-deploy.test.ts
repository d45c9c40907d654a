import { describe, expect, it } from 'vitest';
import { AstroClient, type ClientEvent } from '../../src/index.js';
import type { FakeDeploymentInit } from '../../src/testing/index.js';
import { startFake } from '../helpers/fake.js';

const cases: Array<[string, FakeDeploymentInit]> = [
  ['STANDARD (Celery)', { type: 'STANDARD', executor: 'CELERY' }],
  ['STANDARD (Astro executor)', { type: 'STANDARD', executor: 'ASTRO' }],
  ['DEDICATED (Kubernetes)', { type: 'DEDICATED', executor: 'KUBERNETES' }],
  ['HYBRID (Celery)', { type: 'HYBRID', executor: 'CELERY' }],
  ['HYBRID (Kubernetes)', { type: 'HYBRID', executor: 'KUBERNETES' }],
];

describe('setDagDeploy', () => {
  for (const [label, init] of cases) {
    it(`disables then enables DAG deploys on ${label}, keeping secrets and settings`, async () => {
      const { astro, client } = await startFake({
        deployments: [
          {
            id: 'cldep1',
            ...init,
            isDagDeployEnabled: true,
            environmentVariables: [
              { key: 'PLAIN', value: 'visible' },
              { key: 'DB_PASSWORD', value: 's3cr3t-value', isSecret: true },
            ],
            spec: { contactEmails: ['ops@example.com'] },
          },
        ],
      });
      const before = structuredClone(astro.deployment('cldep1'));
      const events: ClientEvent[] = [];
      const off = await client.setDagDeploy('cldep1', false, { onEvent: (e) => events.push(e) });
      expect(off.changed).toBe(true);
      expect(off.deployment.isDagDeployEnabled).toBe(false);
      expect(events.map((e) => e.type)).toEqual(['dag-deploy:warning', 'dag-deploy:updated']);
      expect(events[0]).toMatchObject({ code: 'DAG_DEPLOY_DISABLE_REMOVES_DAGS' });

      const on = await client.setDagDeploy('cldep1', true, { onEvent: (e) => events.push(e) });
      expect(on.deployment.isDagDeployEnabled).toBe(true);
      expect(events.some((e) => e.type === 'dag-deploy:warning' && e.code === 'DAG_DEPLOY_ENABLE_REMOVES_IMAGE_DAGS')).toBe(true);

      const after = astro.deployment('cldep1');
      // The secret survived two round trips although GET never returned its value.
      expect(after.environmentVariables).toEqual(before.environmentVariables);
      expect(after.spec).toEqual(before.spec);
      expect(after.executor).toBe(before.executor);
      // Read, update, re-read for each change.
      expect(astro.requests.map((r) => r.route)).toEqual([
        'deployments.get', 'deployments.update', 'deployments.get',
        'deployments.get', 'deployments.update', 'deployments.get',
      ]);
      const body = astro.requestsFor('deployments.update')[0]!.body as Record<string, unknown>;
      expect(body.type).toBe(init.type);
      expect(body.environmentVariables).toEqual([
        { key: 'PLAIN', isSecret: false, value: 'visible' },
        { key: 'DB_PASSWORD', isSecret: true },
      ]);
    });
  }

  it('sends nothing when already in the wanted state', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: true }] });
    const events: ClientEvent[] = [];
    const res = await client.setDagDeploy('cldep1', true, { onEvent: (e) => events.push(e) });
    expect(res.changed).toBe(false);
    expect(astro.requests.map((r) => r.route)).toEqual(['deployments.get']);
    expect(events).toEqual([{ type: 'dag-deploy:unchanged', deploymentId: 'cldep1', enabled: true }]);
  });

  it('refuses a CI/CD-enforced deployment with a user token unless forced', async () => {
    const { astro } = await startFake({ deployments: [{ id: 'cldep1', isCicdEnforced: true, isDagDeployEnabled: false }] });
    const apiClient = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
    // An API token (has permissions) is allowed without force.
    await expect(apiClient.setDagDeploy('cldep1', true)).resolves.toMatchObject({ changed: true });

    const { astro: astro2 } = await startFake({ deployments: [{ id: 'cldep2', isCicdEnforced: true, isDagDeployEnabled: false }] });
    // A token without `permissions` is a user session token, as `astro login` would hold.
    const sessionLike = astro2.mintToken({ permissions: [] });
    const userClient = new AstroClient({ baseUrl: astro2.baseUrl, token: sessionLike, organizationId: astro2.organizationId });
    const err = await userClient.setDagDeploy('cldep2', true).catch((e) => e);
    expect(err.code).toBe('ASTRO_CICD_ENFORCED');
    expect(astro2.requestsFor('deployments.update')).toHaveLength(0);
  });

  it('fails with ASTRO_DAG_DEPLOY_NOT_APPLIED when the re-read does not confirm', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: true }] });
    const view = await client.deployments.get('cldep1');
    astro.fail({ route: 'deployments.get', nth: 2, action: { kind: 'status', status: 200, body: { ...view } } });
    const err = await client.setDagDeploy('cldep1', false).catch((e) => e);
    expect(err.code).toBe('ASTRO_DAG_DEPLOY_NOT_APPLIED');
  });

  it('rejects the update body the fake would reject (validation is real)', async () => {
    const { client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const err = await client.deployments.update('cldep1', { type: 'STANDARD', name: 'x' }).catch((e) => e);
    expect(err.code).toBe('ASTRO_API_BAD_REQUEST');
    expect(err.fieldErrors.map((f: { field: string }) => f.field)).toEqual(
      expect.arrayContaining(['workspaceId', 'executor', 'isCicdEnforced', 'isDagDeployEnabled', 'schedulerSize', 'environmentVariables']),
    );
  });
});

describe('setDagDeploy after a lost or failed update answer (astro-cli#879: an update may restart every pod)', () => {
  const fast = { initialDelayMs: 1, maxDelayMs: 5 };

  it('reads the deployment back before sending the update again, and does not re-send one that took', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] }, { retry: { maxRetries: 3, ...fast } });
    astro.fail({ route: 'deployments.update', action: { kind: 'dropResponse' } });
    const result = await client.setDagDeploy('cldep1', true);
    expect(result).toMatchObject({ changed: true, deployment: { isDagDeployEnabled: true } });
    expect(astro.requestsFor('deployments.update')).toHaveLength(1);
    expect(astro.deployment('cldep1').isDagDeployEnabled).toBe(true);
  });

  it('sends the update again only after reading that it did not take', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] }, { retry: { maxRetries: 3, ...fast } });
    astro.fail({ route: 'deployments.update', action: { kind: 'status', status: 503 } });
    const result = await client.setDagDeploy('cldep1', true);
    expect(result.changed).toBe(true);
    const routes = astro.requests.map((r) => r.route);
    expect(routes).toEqual(['deployments.get', 'deployments.update', 'deployments.get', 'deployments.update', 'deployments.get']);
  });

  it('a lost answer and a deployment that cannot be read back within the bound: ASTRO_DAG_DEPLOY_UNKNOWN, without a second update', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] }, { retry: { maxRetries: 1, ...fast } });
    astro.fail({ route: 'deployments.update', action: { kind: 'dropResponse' } });
    astro.fail({ route: 'deployments.get', nth: 2, times: Infinity, action: { kind: 'status', status: 503 } });
    const err = await client.setDagDeploy('cldep1', true, { updateCheckTimeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_DAG_DEPLOY_UNKNOWN' });
    expect((err as Error).message).toMatch(/cldep1/);
    expect((err as { cause?: { code?: string } }).cause).toMatchObject({ code: 'ASTRO_CONNECTION' });
    expect(astro.requestsFor('deployments.update')).toHaveLength(1);
  });

  it('gives up with the update error when a 503 was answered and the deployment cannot be read back, without a second update', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] }, { retry: { maxRetries: 1, ...fast } });
    astro.fail({ route: 'deployments.update', action: { kind: 'status', status: 503 } });
    astro.fail({ route: 'deployments.get', nth: 2, times: Infinity, action: { kind: 'status', status: 503 } });
    const err = await client.setDagDeploy('cldep1', true, { updateCheckTimeoutMs: 200 }).catch((e: unknown) => e);
    // Astro said it did not act: its answer stands.
    expect(err).toMatchObject({ code: 'ASTRO_API_SERVER_ERROR', method: 'POST' });
    expect(astro.requestsFor('deployments.update')).toHaveLength(1);
  });

  it('Astro applies the update after the per-try timeout: the deployment is read until it shows the change, and the update is not sent twice', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] });
    // Applied 700 ms after it arrived: after the client's 400 ms timeout and after the first read
    // (at once), which still shows DAG deploys off. The next read, after the backoff, sees them on.
    astro.fail({ route: 'deployments.update', action: { kind: 'actLate', ms: 700 } });
    const result = await client.setDagDeploy('cldep1', true, { timeoutMs: 400, retry: { initialDelayMs: 1200, maxDelayMs: 1200 } });
    expect(result).toMatchObject({ changed: true, deployment: { isDagDeployEnabled: true } });
    expect(astro.requestsFor('deployments.update')).toHaveLength(1);
  });

  it("a gateway's 502 or 504 whose service applies the update later: read until it shows, never sent twice", async () => {
    for (const status of [502, 504]) {
      const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] }, { retry: { maxRetries: 3, initialDelayMs: 150, maxDelayMs: 300 } });
      astro.fail({ route: 'deployments.update', action: { kind: 'actLate', ms: 300, answer: status } });
      const result = await client.setDagDeploy('cldep1', true);
      expect(result, String(status)).toMatchObject({ changed: true, deployment: { isDagDeployEnabled: true } });
      expect(astro.requestsFor('deployments.update'), String(status)).toHaveLength(1);
      expect(astro.requestsFor('deployments.update')[0]!.status).toBe(status);
    }
  });

  it('a timeout whose change never shows within updateCheckTimeoutMs is ASTRO_DAG_DEPLOY_UNKNOWN, and the update is not sent again', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] });
    astro.fail({ route: 'deployments.update', action: { kind: 'stall' } });
    const err = await client
      .setDagDeploy('cldep1', true, { timeoutMs: 200, retry: { initialDelayMs: 20, maxDelayMs: 50 }, updateCheckTimeoutMs: 300 })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_DAG_DEPLOY_UNKNOWN' });
    expect((err as Error).message).toMatch(/not sent again/);
    expect(astro.requestsFor('deployments.get').length).toBeGreaterThan(2);
    expect(astro.requestsFor('deployments.update')).toHaveLength(1);
    expect(astro.deployment('cldep1').isDagDeployEnabled).toBe(false);
  });
});
