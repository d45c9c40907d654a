import { describe, expect, it } from 'vitest';
import { SDK_VERSION } from '../../src/index.js';
import { putBlob, startFake } from '../helpers/fake.js';
import pkg from '../../package.json' with { type: 'json' };

describe('AstroClient API methods against the fake Astro', () => {
  it('reads a deployment with the CLI headers and our own identifier', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep0000000000000000001', name: 'prod' }] });
    const d = await client.deployments.get('cldep0000000000000000001');
    expect(d).toMatchObject({ id: 'cldep0000000000000000001', name: 'prod', type: 'STANDARD', status: 'HEALTHY', isDagDeployEnabled: true });
    const [req] = astro.requestsFor('deployments.get');
    expect(req!.headers['x-astro-client-identifier']).toBe('astro-deploy-sdk');
    expect(req!.headers['x-astro-client-version']).toBe(SDK_VERSION);
    expect(req!.headers['user-agent']).toMatch(/^astro-deploy-sdk\/\d+\.\d+\.\d+ node\/v\d+/);
    expect(req!.headers['x-client-os-identifier']).toMatch(/^linux-(amd64|arm64)$/);
    expect(req!.path).toBe(`/v1/organizations/${astro.organizationId}/deployments/cldep0000000000000000001`);
  });

  it('keeps SDK_VERSION equal to package.json', () => {
    expect(SDK_VERSION).toBe(pkg.version);
  });

  it('lists deployments with repeated workspaceIds and pages with listAll', async () => {
    const { astro, client } = await startFake();
    for (let i = 0; i < 3; i++) astro.addDeployment({ workspaceId: 'clws1' });
    astro.addDeployment({ workspaceId: 'clws2' });
    const page = await client.deployments.list({ workspaceIds: ['clws1', 'clws2'], limit: 2 });
    expect(page.deployments).toHaveLength(2);
    expect(page.totalCount).toBe(4);
    const req = astro.requestsFor('deployments.list')[0]!;
    expect(req.query.workspaceIds).toEqual(['clws1', 'clws2']);
    const all = await client.deployments.listAll({ workspaceIds: ['clws1'] });
    expect(all.map((d) => d.workspaceId)).toEqual(['clws1', 'clws1', 'clws1']);
  });

  it('gets deployment options', async () => {
    const { client } = await startFake({ runtimeReleases: ['3.1-2', '12.6.0'] });
    const opts = await client.deploymentOptions.get();
    expect(opts.runtimeReleases.map((r) => r.version)).toEqual(['3.1-2', '12.6.0']);
  });

  it('creates, lists, gets and finalizes a DAG deploy', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const deploy = await client.deploys.create('cldep1', { type: 'DAG_ONLY', description: 'from test' });
    expect(deploy).toMatchObject({ deploymentId: 'cldep1', type: 'DAG_ONLY', status: 'INITIALIZED', description: 'from test' });
    expect(deploy.dagsUploadUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/blob\/.*[?&]sig=/);
    expect(astro.requestsFor('deploys.create')[0]!.body).toEqual({ type: 'DAG_ONLY', description: 'from test' });

    const version = await putBlob(deploy.dagsUploadUrl!, Buffer.from('not really a tarball'));
    const finalized = await client.deploys.finalize('cldep1', deploy.id, { dagTarballVersion: version });
    expect(finalized.dagTarballVersion).toBe(version);
    expect(astro.requestsFor('deploys.finalize')[0]!.body).toEqual({ dagTarballVersion: version });

    const fetched = await client.deploys.get('cldep1', deploy.id);
    expect(fetched.id).toBe(deploy.id);
    const list = await client.deploys.list('cldep1');
    expect(list.deploys.map((d) => d.id)).toEqual([deploy.id]);
    expect(astro.deploys('cldep1')[0]!.finalizeCount).toBe(1);
  });

  it('always sends a description (empty by default) and the git metadata when given', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    await client.deploys.create('cldep1', { type: 'IMAGE_ONLY' });
    await client.deploys.create('cldep1', {
      type: 'IMAGE_AND_DAG',
      git: { provider: 'GITHUB', commitSha: 'abc123', account: 'acme', repo: 'dags' },
    });
    const bodies = astro.requestsFor('deploys.create').map((r) => r.body);
    expect(bodies[0]).toEqual({ type: 'IMAGE_ONLY', description: '' });
    expect(bodies[1]).toMatchObject({ git: { provider: 'GITHUB', commitSha: 'abc123' } });
  });

  it('updates a deployment with a full body (raw resource method)', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: true }] });
    const current = await client.deployments.get('cldep1');
    const { buildUpdateBody } = await import('../../src/index.js');
    const updated = await client.deployments.update('cldep1', buildUpdateBody(current, { isDagDeployEnabled: false }));
    expect(updated.isDagDeployEnabled).toBe(false);
    expect(astro.deployment('cldep1').isDagDeployEnabled).toBe(false);
  });

  it('withOptions derives a client without changing the original', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    const other = client.withOptions({ userAgent: 'my-ci/1.0' });
    await other.deployments.get('cldep1');
    await client.deployments.get('cldep1');
    const [a, b] = astro.requestsFor('deployments.get');
    expect(a!.headers['user-agent']).toMatch(/ my-ci\/1\.0$/);
    expect(b!.headers['user-agent']).not.toMatch(/my-ci/);
  });
});
