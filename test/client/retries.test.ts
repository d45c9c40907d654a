import { describe, expect, it } from 'vitest';
import { AstroClient, isAstroError, type ClientEvent } from '../../src/index.js';
import { TestTokenMinter } from '../../src/testing/index.js';
import { startFake } from '../helpers/fake.js';

/** Tiny backoff, so these tests measure decisions, not real waits (Retry-After still applies). */
const fast = { initialDelayMs: 1, maxDelayMs: 5 };

describe('retries', () => {
  it('retries an idempotent GET on 503 and succeeds', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] }, { retry: { maxRetries: 2, ...fast } });
    astro.fail({ route: 'deployments.get', times: 2, action: { kind: 'status', status: 503, body: { message: 'busy' } } });
    const d = await client.deployments.get('cldep1');
    expect(d.id).toBe('cldep1');
    expect(astro.requestsFor('deployments.get').map((r) => r.status)).toEqual([503, 503, 200]);
  });

  it('retries 408, 429 and a reset connection on GETs', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] }, { retry: { maxRetries: 3, ...fast } });
    astro.fail({ route: 'deployments.get', nth: 1, action: { kind: 'status', status: 408 } });
    astro.fail({ route: 'deployments.get', nth: 2, action: { kind: 'reset' } });
    astro.fail({ route: 'deployments.get', nth: 3, action: { kind: 'status', status: 429, headers: { 'retry-after': '0' } } });
    await client.deployments.get('cldep1');
    expect(astro.requestsFor('deployments.get')).toHaveLength(4);
    expect(astro.faults.pending()).toEqual([]);
  });

  it('honours Retry-After (seconds) before retrying', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    astro.fail({ route: 'deployments.get', action: { kind: 'status', status: 429, headers: { 'retry-after': '1' } } });
    const delays: number[] = [];
    await client.setDagDeploy('cldep1', true, { onEvent: (e: ClientEvent) => e.type === 'api:retry' && delays.push(e.delayMs) });
    expect(delays).toHaveLength(1);
    expect(delays[0]).toBeGreaterThanOrEqual(1000);
    expect(delays[0]).toBeLessThan(1200);
  });

  it('does not retry 4xx other than 408/429', async () => {
    const { astro, client } = await startFake();
    await expect(client.deployments.get('clnope')).rejects.toMatchObject({ code: 'ASTRO_API_NOT_FOUND' });
    expect(astro.requestsFor('deployments.get')).toHaveLength(1);
  });

  for (const [label, action] of [
    ['500', { kind: 'status', status: 500 }],
    ['408', { kind: 'status', status: 408 }],
    ['reset before the answer', { kind: 'reset', afterBodyBytes: 1 }],
    ['a lost response', { kind: 'dropResponse' }],
  ] as const) {
    it(`never retries create-deploy after ${label}`, async () => {
      const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] }, { retry: { maxRetries: 5, ...fast } });
      astro.fail({ route: 'deploys.create', times: Infinity, action });
      const err = await client.deploys.create('cldep1', { type: 'DAG_ONLY' }).catch((e) => e);
      expect(isAstroError(err)).toBe(true);
      expect(astro.requestsFor('deploys.create')).toHaveLength(1);
      // A lost response means the deploy exists server-side: exactly one, never two.
      expect(astro.deploys('cldep1').length).toBe(label === 'a lost response' ? 1 : 0);
    });
  }

  it('retries create-deploy when the connection was refused (the request never left)', async () => {
    const token = new TestTokenMinter('clorg1').mint();
    const client = new AstroClient({ baseUrl: 'http://127.0.0.1:1/v1', token, retry: { maxRetries: 2, ...fast } });
    const retries: number[] = [];
    const err = await client.deploys
      .create('cldep1', { type: 'DAG_ONLY' }, { onRetry: (i) => retries.push(i.attempt) })
      .catch((e) => e);
    expect(err.code).toBe('ASTRO_CONNECTION');
    expect(retries).toEqual([1, 2]);
  });

  it('retries create-deploy on 429 (rejected before it was processed)', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] }, { retry: { maxRetries: 2, ...fast } });
    astro.fail({ route: 'deploys.create', action: { kind: 'status', status: 429, headers: { 'retry-after': '0' } } });
    await client.deploys.create('cldep1', { type: 'DAG_ONLY' });
    expect(astro.deploys('cldep1')).toHaveLength(1);
  });

  it('an abort cuts a long backoff short', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] });
    astro.fail({ route: 'deployments.get', action: { kind: 'status', status: 503, headers: { 'retry-after': '30' } } });
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    const err = await client.deployments.get('cldep1', { signal: controller.signal }).catch((e) => e);
    expect(err.code).toBe('ASTRO_ABORTED');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(astro.requestsFor('deployments.get')).toHaveLength(1);
  });
});
