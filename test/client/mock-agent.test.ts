/**
 * Unit-level edge cases of the transport with undici's MockAgent (injected as `dispatcher`):
 * shapes and headers that are awkward to produce with the fake server.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MockAgent } from 'undici';
import { AstroClient } from '../../src/index.js';
import { TestTokenMinter } from '../../src/testing/index.js';

const ORIGIN = 'https://api.example.test';
const token = new TestTokenMinter('clorg1').mint();
let agent: MockAgent;

function client(maxRetries = 2) {
  agent = new MockAgent();
  agent.disableNetConnect();
  return new AstroClient({ baseUrl: `${ORIGIN}/v1`, token, dispatcher: agent, retry: { maxRetries } });
}

afterEach(async () => {
  agent.assertNoPendingInterceptors();
  await agent.close();
});

const deployment = {
  id: 'cldep1',
  name: 'd',
  organizationId: 'clorg1',
  workspaceId: 'clws',
  type: 'STANDARD',
  status: 'HEALTHY',
  isDagDeployEnabled: true,
  isCicdEnforced: false,
};

describe('transport edge cases (MockAgent)', () => {
  it('reads null optional fields as undefined and keeps unknown fields', async () => {
    const c = client();
    agent
      .get(ORIGIN)
      .intercept({ path: '/v1/organizations/clorg1/deployments/cldep1', method: 'GET' })
      .reply(200, { ...deployment, dagTarballVersion: null, workerQueues: null, brandNewField: { x: 1 } });
    const d = await c.deployments.get('cldep1');
    expect(d.dagTarballVersion).toBeUndefined();
    expect(d.workerQueues).toBeUndefined();
    expect((d as Record<string, unknown>).brandNewField).toEqual({ x: 1 });
  });

  it('honours Retry-After given as an HTTP date', async () => {
    const c = client();
    const when = new Date(Date.now() + 2000).toUTCString();
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/v1/organizations/clorg1/deployments/cldep1', method: 'GET' }).reply(503, '', { headers: { 'retry-after': when } });
    pool.intercept({ path: '/v1/organizations/clorg1/deployments/cldep1', method: 'GET' }).reply(200, deployment);
    const delays: number[] = [];
    await c.deployments.get('cldep1', { onRetry: (i) => delays.push(i.delayMs) });
    expect(delays).toHaveLength(1);
    expect(delays[0]).toBeGreaterThan(500);
    expect(delays[0]).toBeLessThanOrEqual(2200);
  });

  it('prefers retry-after-ms and caps a huge Retry-After at 60 s (aborting the wait)', async () => {
    const c = client();
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/v1/organizations/clorg1/deployments/cldep1', method: 'GET' }).reply(429, '', { headers: { 'retry-after-ms': '30', 'retry-after': '100' } });
    pool.intercept({ path: '/v1/organizations/clorg1/deployments/cldep1', method: 'GET' }).reply(429, '', { headers: { 'retry-after': '86400' } });
    const delays: number[] = [];
    const controller = new AbortController();
    const err = await c.deployments
      .get('cldep1', {
        signal: controller.signal,
        onRetry: (i) => {
          delays.push(i.delayMs);
          if (delays.length === 2) setTimeout(() => controller.abort(), 10);
        },
      })
      .catch((e) => e);
    expect(delays[0]).toBeGreaterThanOrEqual(30);
    expect(delays[0]).toBeLessThan(200);
    expect(delays[1]).toBeGreaterThanOrEqual(60_000);
    expect(delays[1]).toBeLessThan(60_200);
    expect(err.code).toBe('ASTRO_ABORTED');
  });

  it('sends the path, query and JSON body exactly as the CLI does', async () => {
    const c = client();
    agent
      .get(ORIGIN)
      .intercept({
        path: '/v1/organizations/clorg1/deployments/cl%2Bodd/deploys',
        method: 'POST',
        body: JSON.stringify({ type: 'DAG_ONLY', description: '' }),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      })
      .reply(200, { id: 'd1', deploymentId: 'cl+odd', type: 'DAG_ONLY', imageRepository: 'r', imageTag: 't' });
    const d = await c.deploys.create('cl+odd', { type: 'DAG_ONLY' });
    expect(d.id).toBe('d1');
  });
});
