/** client.deployments.find against the fake Astro over real HTTP. */
import { describe, expect, it } from 'vitest';
import { DeploymentLookupError, isAstroError } from '../../src/index.js';
import { startFake } from '../helpers/fake.js';

describe('deployments.find', () => {
  it('returns the one deployment with the name, asking the list narrowed by name', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldepa', name: 'etl-prod' }, { id: 'cldepb', name: 'etl-staging' }] });
    const found = await client.deployments.find({ name: 'etl-prod' });
    expect(found.id).toBe('cldepa');
    const [req] = astro.requestsFor('deployments.list');
    expect(req!.query.names).toBe('etl-prod');
  });

  it('compares the name exactly: another case is not a match (ASTRO_DEPLOYMENT_NOT_FOUND)', async () => {
    const { client } = await startFake({ deployments: [{ id: 'cldepa', name: 'etl-prod' }] });
    const err = await client.deployments.find({ name: 'ETL-prod' }).catch((e) => e);
    expect(err).toBeInstanceOf(DeploymentLookupError);
    expect(err.code).toBe('ASTRO_DEPLOYMENT_NOT_FOUND');
    expect(err.matches).toEqual([]);
    expect(err.deploymentName).toBe('ETL-prod');
  });

  it('several with the name is ASTRO_DEPLOYMENT_AMBIGUOUS, with every id and workspace in the error', async () => {
    const { client } = await startFake({
      deployments: [
        { id: 'cldepa', name: 'etl', workspaceId: 'clwsone' },
        { id: 'cldepb', name: 'etl', workspaceId: 'clwstwo' },
        { id: 'cldepc', name: 'other', workspaceId: 'clwsone' },
      ],
    });
    const err = await client.deployments.find({ name: 'etl' }).catch((e) => e);
    expect(isAstroError(err, 'ASTRO_DEPLOYMENT_AMBIGUOUS')).toBe(true);
    expect(err.matches).toEqual([
      { id: 'cldepa', name: 'etl', workspaceId: 'clwsone' },
      { id: 'cldepb', name: 'etl', workspaceId: 'clwstwo' },
    ]);
    expect(err.message).toContain('cldepa');
    expect(err.message).toContain('clwstwo');
    expect(err.message).toMatch(/workspaceId/);
  });

  it('workspaceId narrows the search to one workspace', async () => {
    const { astro, client } = await startFake({
      deployments: [
        { id: 'cldepa', name: 'etl', workspaceId: 'clwsone' },
        { id: 'cldepb', name: 'etl', workspaceId: 'clwstwo' },
      ],
    });
    expect((await client.deployments.find({ name: 'etl', workspaceId: 'clwstwo' })).id).toBe('cldepb');
    expect(astro.requestsFor('deployments.list')[0]!.query.workspaceIds).toBe('clwstwo');
    const err = await client.deployments.find({ name: 'other', workspaceId: 'clwsone' }).catch((e) => e);
    expect(err.code).toBe('ASTRO_DEPLOYMENT_NOT_FOUND');
    expect(err.workspaceId).toBe('clwsone');
  });

  it('follows the pages of the list: every match is found, whatever page it is on', async () => {
    const deployments = Array.from({ length: 3 }, (_, i) => ({ id: `cldep${i}`, name: 'etl', workspaceId: `clws${i}` }));
    const { astro, client } = await startFake({ deployments, maxPageSize: 1 });
    const err = await client.deployments.find({ name: 'etl' }).catch((e) => e);
    expect(err.matches.map((m: { id: string }) => m.id)).toEqual(['cldep0', 'cldep1', 'cldep2']);
    expect(astro.requestsFor('deployments.list')).toHaveLength(3);
  });

  it('refuses an empty name before any request', async () => {
    const { astro, client } = await startFake();
    const err = await client.deployments.find({ name: ' ' }).catch((e) => e);
    expect(err.code).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(astro.requests).toHaveLength(0);
  });
});
