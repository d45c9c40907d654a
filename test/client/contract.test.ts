/**
 * Issue #15 ("Trust"), the wire contract (docs astro-v1-contract.md): fields the spec marks
 * optional may be missing, the update body follows the CLI where the API is strict, and paging
 * follows what the server returns.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AstroClient, isAstroError } from '../../src/index.js';
import type { FakeDeploymentInit } from '../../src/testing/index.js';
import { createFakeAstro, type FakeAstroOptions } from '../../src/testing/index.js';

/** A fake Astro for one test and a client with the default options. */
async function startFake(options: FakeAstroOptions = {}) {
  const astro = await createFakeAstro(options);
  onTestFinished(() => astro.close());
  return { astro, client: new AstroClient({ baseUrl: astro.baseUrl, token: astro.token }) };
}

function makeDags(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dags-contract-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'dag.py'), 'from airflow import DAG\n');
  return dir;
}

type Body = Record<string, unknown>;

describe('Deployment.type is optional', () => {
  it('get, listAll and deployDags work on a deployment without type, or with an unknown one', async () => {
    const { client } = await startFake({
      deployments: [
        { id: 'cldep1', omitFromView: ['type'] },
        { id: 'cldep2', spec: { type: 'SERVERLESS_FUTURE' } },
        { id: 'cldep3', type: 'HYBRID' },
      ],
      rolloutDelayMs: 20,
    });
    const d1 = await client.deployments.get('cldep1');
    expect(d1.type).toBeUndefined();
    expect((await client.deployments.get('cldep2')).type).toBe('SERVERLESS_FUTURE');
    const all = await client.deployments.listAll();
    expect(all.map((d) => d.id).sort()).toEqual(['cldep1', 'cldep2', 'cldep3']);
    const res = await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), wait: { pollIntervalMs: 20 } });
    expect(res.dagTarballVersion).not.toBe('');
  });

  it('setDagDeploy refuses, naming the field, before sending an update', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', omitFromView: ['type'] }, { id: 'cldep2', spec: { type: 'SERVERLESS_FUTURE' } }] });
    for (const id of ['cldep1', 'cldep2']) {
      const err = await client.setDagDeploy(id, false).catch((e: unknown) => e);
      expect(isAstroError(err, 'ASTRO_API_SCHEMA'), id).toBe(true);
      expect((err as { fields: string[] }).fields).toEqual(['type']);
      expect((err as Error).message).toMatch(/type/);
    }
    expect(astro.requestsFor('deployments.update')).toEqual([]);
  });
});

describe('Deploy.imageTag may be absent', () => {
  it('reads a created deploy without imageTag as an empty tag, and deployDags completes', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', imageTag: '' }], rolloutDelayMs: 20 });
    const res = await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), wait: { pollIntervalMs: 20 } });
    expect(astro.deploys('cldep1')[0]!.finalizeCount).toBe(1);
    expect(res.deploy.imageTag).toBe('');
    const listed = await client.deploys.list('cldep1');
    expect(listed.deploys[0]!.imageTag).toBe('');
    // The wire really lacked the field.
    const raw = await fetch(`${astro.baseUrl}/organizations/${astro.organizationId}/deployments/cldep1/deploys/${res.deployId}`, {
      headers: { authorization: `Bearer ${astro.token}` },
    }).then((r) => r.json() as Promise<Body>);
    expect('imageTag' in raw).toBe(false);
  });
});

describe('setDagDeploy update body', () => {
  const hibernation = { hibernationSpec: { schedules: [] as unknown[] } };

  it('sends no scalingSpec for a deployment that is not in development mode (astro-cli#1578)', async () => {
    const { astro, client } = await startFake({
      deployments: [
        { id: 'cldep1', spec: { isDevelopmentMode: false, scalingSpec: hibernation } },
        { id: 'cldep2', spec: { isDevelopmentMode: undefined, scalingSpec: { hibernationSpec: { schedules: [{ hibernateAtCron: '0 20 * * *', wakeAtCron: '0 8 * * *', isEnabled: true }] } } } },
      ],
    });
    for (const id of ['cldep1', 'cldep2']) {
      await expect(client.setDagDeploy(id, false), id).resolves.toMatchObject({ changed: true });
    }
    for (const r of astro.requestsFor('deployments.update')) expect((r.body as Body).scalingSpec).toBeUndefined();
  });

  it('keeps the hibernation schedules of a development-mode deployment', async () => {
    const schedules = [{ hibernateAtCron: '0 20 * * *', wakeAtCron: '0 8 * * *', isEnabled: true, description: 'nights' }];
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', spec: { isDevelopmentMode: true, scalingSpec: { hibernationSpec: { schedules } } } }] });
    await client.setDagDeploy('cldep1', false);
    const body = astro.requestsFor('deployments.update')[0]!.body as Body;
    expect(body.scalingSpec).toEqual({ hibernationSpec: { schedules } });
    expect(astro.deployment('cldep1').spec.scalingSpec).toEqual({ hibernationSpec: { schedules } });
  });

  it('the fake refuses a hibernation spec on a non-development deployment', async () => {
    const { client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const view = await client.deployments.get('cldep1');
    const err = await client.deployments
      .update('cldep1', {
        type: view.type, name: view.name, workspaceId: view.workspaceId, executor: view.executor, isCicdEnforced: false, isDagDeployEnabled: true,
        environmentVariables: [], schedulerSize: 'SMALL', isHighAvailability: false, defaultTaskPodCpu: '0.25', defaultTaskPodMemory: '0.5Gi',
        resourceQuotaCpu: '10', resourceQuotaMemory: '20Gi', scalingSpec: hibernation,
      })
      .catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_API_BAD_REQUEST')).toBe(true);
    expect((err as { fieldErrors: Array<{ field: string }> }).fieldErrors.map((f) => f.field)).toEqual(['scalingSpec']);
  });

  it('keeps podEphemeralStorage of hosted worker queues', async () => {
    const queue = { name: 'default', isDefault: true, maxWorkerCount: 10, minWorkerCount: 1, workerConcurrency: 5, astroMachine: 'A10', podCpu: '2', podMemory: '4Gi', podEphemeralStorage: '25Gi' };
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', executor: 'ASTRO', spec: { workerQueues: [{ id: 'clq1', ...queue }] } }] });
    await client.setDagDeploy('cldep1', false);
    const body = astro.requestsFor('deployments.update')[0]!.body as Body;
    expect((body.workerQueues as Body[])[0]).toMatchObject({ id: 'clq1', astroMachine: 'A10', podEphemeralStorage: '25Gi' });
    expect((astro.deployment('cldep1').spec.workerQueues as Body[])[0]).toMatchObject({ podEphemeralStorage: '25Gi' });
  });

  const missing: Array<[string, FakeDeploymentInit, string]> = [
    ['executor', { omitFromView: ['executor'] }, 'executor'],
    ['schedulerSize', { spec: { schedulerSize: undefined } }, 'schedulerSize'],
    ['isHighAvailability', { spec: { isHighAvailability: undefined } }, 'isHighAvailability'],
    ['defaultTaskPodCpu (Remote Execution off)', { spec: { defaultTaskPodCpu: undefined } }, 'defaultTaskPodCpu'],
    ['defaultTaskPodMemory (Remote Execution off)', { spec: { defaultTaskPodMemory: undefined } }, 'defaultTaskPodMemory'],
    ['Hybrid schedulerAu', { type: 'HYBRID', spec: { schedulerAu: undefined } }, 'schedulerAu'],
  ];
  for (const [label, init, field] of missing) {
    it(`refuses, before any update, when the GET lacks ${label}`, async () => {
      const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', ...init }] });
      const err = await client.setDagDeploy('cldep1', false).catch((e: unknown) => e);
      expect(isAstroError(err, 'ASTRO_API_SCHEMA')).toBe(true);
      expect((err as { fields: string[] }).fields).toEqual([field]);
      expect((err as Error).message).toContain(field);
      expect(astro.requestsFor('deployments.update')).toEqual([]);
    });
  }

  it('does not need the pod defaults when Remote Execution is on', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', remoteExecution: true, spec: { defaultTaskPodCpu: undefined, defaultTaskPodMemory: undefined } }] });
    // The fake's view says { enabled: true } with no other remote fields; the update still goes.
    await expect(client.setDagDeploy('cldep1', false)).resolves.toMatchObject({ changed: true });
    expect(astro.requestsFor('deployments.update')).toHaveLength(1);
  });
});

describe('listAll paging', () => {
  it('advances by the items returned when the server caps the page size, and stops at totalCount', async () => {
    const ids = ['cldep1', 'cldep2', 'cldep3', 'cldep4', 'cldep5'];
    const { astro, client } = await startFake({ deployments: ids.map((id) => ({ id })), maxPageSize: 2 });
    const all = await client.deployments.listAll();
    expect(all.map((d) => d.id)).toEqual(ids);
    expect(astro.requestsFor('deployments.list').map((r) => r.query.offset)).toEqual(['0', '2', '4']);
  });

  it('stops on an empty page even when totalCount says more', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    astro.fail({ route: 'deployments.list', nth: 2, action: { kind: 'status', status: 200, body: { deployments: [], totalCount: 50, limit: 1000, offset: 1 } } });
    astro.fail({ route: 'deployments.list', nth: 1, action: { kind: 'status', status: 200, body: { deployments: [(await client.deployments.get('cldep1'))], totalCount: 50, limit: 1000, offset: 0 } } });
    const all = await client.deployments.listAll();
    expect(all.map((d) => d.id)).toEqual(['cldep1']);
    expect(astro.requestsFor('deployments.list').map((r) => r.query.offset)).toEqual(['0', '1']);
  });
});
