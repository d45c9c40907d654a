/**
 * The resilience kernel under the client's flows (issue #9), over real HTTP against the fake Astro:
 * listeners that throw are ignored however the flow goes (retries included), and the client's
 * dispatcher, or the proxy of HTTP_PROXY, carries every request of a flow (API and blob).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type Dispatcher } from 'undici';
import { AstroClient, type ClientEvent, type DeployDagsEvent } from '../../src/index.js';
import { startFake } from '../helpers/fake.js';
import { startForwardProxy, withProxyEnv } from '../helpers/forward-proxy.js';

function makeDags(): string {
  const dir = mkdtempSync(join(tmpdir(), 'res-dags-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'dag.py'), 'from airflow import DAG\n');
  writeFileSync(join(dir, 'helpers.py'), 'X = 1\n');
  return dir;
}

/** Tiny backoff: the tests check behaviour, not waits. */
const fast = { initialDelayMs: 1, maxDelayMs: 5 };

/** Listeners that break in both ways a listener can: a throw, and a promise that rejects. */
const breakingListeners: Array<[string, (calls: string[]) => (e: { type: string }) => unknown]> = [
  [
    'throws',
    (calls) => (e) => {
      calls.push(e.type);
      throw new Error(`listener broke on ${e.type}`);
    },
  ],
  [
    'returns a rejected promise',
    (calls) => async (e) => {
      calls.push(e.type);
      throw new Error(`async listener broke on ${e.type}`);
    },
  ],
];

describe('a listener that throws is ignored and the flow completes', () => {
  it('deployDags: the api:retry event of a retried call reaches a throwing listener without ending the deploy (the reported bug)', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] }, { retry: { maxRetries: 2, ...fast } });
    astro.fail({ route: 'deployments.get', nth: 1, action: { kind: 'status', status: 503 } });
    const calls: string[] = [];
    const result = await client.deployDags({
      deploymentId: 'cldep1',
      dagsDir: makeDags(),
      upload: { journalDir: false },
      onEvent: (e) => {
        calls.push(e.type);
        throw new Error('listener broke');
      },
    });
    expect(calls[0]).toBe('api:retry');
    expect(calls).toContain('deploy:finalized');
    expect(astro.deploys('cldep1')[0]!.dagTarballVersion).toBe(result.dagTarballVersion);
  });

  for (const [how, make] of breakingListeners) {
    it(`deployDags, when the listener ${how}, through API, upload, finalize and poll retries`, async () => {
      const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 50 }, { retry: { maxRetries: 2, ...fast } });
      astro.fail({ route: 'deployments.get', nth: 1, action: { kind: 'status', status: 503 } });
      astro.fail({ route: 'blob.putBlob', action: { kind: 'status', status: 503, headers: { 'x-ms-error-code': 'ServerBusy' } } });
      astro.fail({ route: 'deploys.finalize', action: { kind: 'dropResponse' } });
      astro.fail({ route: 'deployments.get', nth: 3, times: 3, action: { kind: 'status', status: 503 } });
      const calls: string[] = [];
      const retried: number[] = [];
      const result = await client.deployDags({
        deploymentId: 'cldep1',
        dagsDir: makeDags(),
        upload: { journalDir: false, retry: fast },
        request: {
          retry: fast,
          onRetry: (i) => {
            retried.push(i.attempt);
            throw new Error('onRetry broke');
          },
        },
        wait: { pollIntervalMs: 10 },
        onEvent: make(calls) as (e: DeployDagsEvent) => void,
      });
      expect(astro.faults.pending()).toEqual([]);
      expect(astro.deploys('cldep1')[0]!.finalizeCount).toBe(1);
      expect(result.rollout?.deployment.dagTarballVersion).toBe(result.dagTarballVersion);
      // The listener saw every phase, including the retries, and its failures changed nothing.
      for (const type of ['api:retry', 'upload:retry', 'deploy:finalize-recovered', 'rollout:poll-error', 'rollout:complete']) {
        expect(calls).toContain(type);
      }
      // A throwing onRetry does not stop the api:retry event of the same retry, nor the next retries.
      expect(retried.length).toBe(calls.filter((t) => t === 'api:retry').length);
      expect(retried.length).toBe(3);
    });
  }

  it('setDagDeploy, with a listener that throws and an API retry', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', isDagDeployEnabled: false }] }, { retry: { maxRetries: 2, ...fast } });
    astro.fail({ route: 'deployments.get', nth: 1, action: { kind: 'status', status: 503 } });
    const calls: string[] = [];
    const result = await client.setDagDeploy('cldep1', true, {
      onEvent: (e: ClientEvent) => {
        calls.push(e.type);
        throw new Error('listener broke');
      },
    });
    expect(result.changed).toBe(true);
    expect(astro.deployment('cldep1').isDagDeployEnabled).toBe(true);
    expect(calls).toEqual(['api:retry', 'dag-deploy:warning', 'dag-deploy:updated']);
    // Unchanged: the one event of that path throws too.
    await expect(client.setDagDeploy('cldep1', true, { onEvent: () => { throw new Error('x'); } })).resolves.toMatchObject({ changed: false });
  });

  it('waitForRollout called directly, with a listener that throws, poll errors and API retries', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 50 }, { retry: { maxRetries: 1, ...fast } });
    const deploy = await client.deploys.create('cldep1', { type: 'IMAGE_ONLY' });
    await client.deploys.finalize('cldep1', deploy.id, { dagTarballVersion: '' });
    // One retried failure (api:retry), then one that outlasts the retries (rollout:poll-error).
    astro.fail({ route: 'deployments.get', nth: 1, times: 3, action: { kind: 'status', status: 503 } });
    const calls: string[] = [];
    const result = await client.waitForRollout({
      deploymentId: 'cldep1',
      deployId: deploy.id,
      pollIntervalMs: 10,
      onEvent: (e) => {
        calls.push(e.type);
        throw new Error('listener broke');
      },
    });
    expect(result.deployment.imageTag).toBe(deploy.imageTag);
    for (const type of ['api:retry', 'rollout:poll-error', 'rollout:poll', 'rollout:complete']) expect(calls).toContain(type);
  });
});

/** An undici Agent that counts what it dispatches, by origin. */
class Counting extends Agent {
  readonly origins: string[] = [];
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    this.origins.push(String(options.origin));
    return super.dispatch(options, handler);
  }
}

describe('options flow down from the client', () => {
  it("the client's dispatcher carries deployDags' API calls and its upload", async () => {
    const counting = new Counting();
    onTestFinished(() => counting.close());
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 50 }, { dispatcher: counting });
    // Blocks, not one Put Blob: several upload requests.
    await client.deployDags({
      deploymentId: 'cldep1',
      dagsDir: makeDags(),
      upload: { journalDir: false, singleShotMaxBytes: 0, blockSizeBytes: 64 * 1024 },
      wait: { pollIntervalMs: 10 },
    });
    const blob = astro.requests.filter((r) => r.route.startsWith('blob.'));
    expect(blob.length).toBeGreaterThan(0);
    // Every request the fake saw, API and blob, went through the client's dispatcher.
    expect(counting.origins.length).toBe(astro.requests.length);
    expect(new Set(counting.origins)).toEqual(new Set([astro.origin]));
  });

  it('a flow\'s upload.dispatcher wins over the client\'s', async () => {
    const forClient = new Counting();
    const forUpload = new Counting();
    onTestFinished(() => Promise.all([forClient.close(), forUpload.close()]).then(() => undefined));
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }] }, { dispatcher: forClient });
    await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload: { journalDir: false, dispatcher: forUpload } });
    const blob = astro.requests.filter((r) => r.route.startsWith('blob.')).length;
    expect(forUpload.origins.length).toBe(blob);
    expect(forClient.origins.length).toBe(astro.requests.length - blob);
  });

  it('rollout polls inside deployDags use the flow\'s request options (retry, onRetry)', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 50 }, { retry: { maxRetries: 0 } });
    // The first poll (the deployment's second read) fails twice: the flow's retry of 2 covers it,
    // the client's 0 would have made it a poll error.
    astro.fail({ route: 'deployments.get', nth: 2, times: 2, action: { kind: 'status', status: 503 } });
    const retries: string[] = [];
    const events: DeployDagsEvent[] = [];
    await client.deployDags({
      deploymentId: 'cldep1',
      dagsDir: makeDags(),
      upload: { journalDir: false },
      wait: { pollIntervalMs: 10 },
      request: { retry: { maxRetries: 2, ...fast }, onRetry: (i) => retries.push(i.path) },
      onEvent: (e) => events.push(e),
    });
    expect(retries).toHaveLength(2);
    expect(retries.every((p) => p.endsWith('/deployments/cldep1'))).toBe(true);
    expect(events.filter((e) => e.type === 'rollout:poll-error')).toHaveLength(0);
    expect(events.filter((e) => e.type === 'api:retry')).toHaveLength(2);
  });

  it('with HTTP_PROXY set and no dispatcher, every API and blob request of deployDags goes through the proxy', async () => {
    const proxy = await startForwardProxy();
    onTestFinished(() => proxy.close());
    const { astro } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 50 });
    const result = await withProxyEnv({ HTTP_PROXY: proxy.url }, async () => {
      const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token });
      return client.deployDags({
        deploymentId: 'cldep1',
        dagsDir: makeDags(),
        upload: { journalDir: false, singleShotMaxBytes: 0, blockSizeBytes: 64 * 1024 },
        wait: { pollIntervalMs: 10 },
      });
    });
    expect(result.rollout?.snapshot.deploymentStatus).toBe('HEALTHY');
    const host = new URL(astro.origin).host;
    expect(proxy.used).toBeGreaterThan(0);
    expect(proxy.stats.refused).toBe(0);
    expect(new Set(proxy.stats.targets)).toEqual(new Set([host]));
    expect(astro.requests.some((r) => r.route.startsWith('blob.'))).toBe(true);
    expect(astro.requests.some((r) => r.route === 'deploys.finalize')).toBe(true);
    // Each connection the fake saw was one the proxy opened (a tunnel, or a forwarded request):
    // a request sent directly would have come on a connection of its own.
    const connections = new Set(astro.requests.map((r) => r.remotePort));
    expect(connections.size).toBeLessThanOrEqual(proxy.used);
    // The bundle's bytes went up through the proxy.
    expect(proxy.stats.bytesUp).toBeGreaterThan(result.bundle.bytes);
  });
});

describe('a proxy that refuses to open the tunnel to the Astro API', () => {
  it('407: fails at once, not retryable, saying to give the proxy credentials, and nothing is created', async () => {
    const proxy = await startForwardProxy();
    onTestFinished(() => proxy.close());
    const { astro } = await startFake({ deployments: [{ id: 'cldep1' }] });
    proxy.refuseTunnels(407, 100);
    const error = await withProxyEnv({ HTTP_PROXY: proxy.url }, async () => {
      const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token, retry: { maxRetries: 3, ...fast } });
      return client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload: { journalDir: false } }).catch((e: unknown) => e);
    });
    expect(error).toMatchObject({ code: 'ASTRO_CONNECTION', retryable: false });
    expect((error as Error).message).toMatch(/407 Proxy Authentication Required\): put them in the proxy URL \(HTTPS_PROXY, HTTP_PROXY\)/);
    expect((error as Error).message).not.toMatch(/raise timeoutMs/);
    // One refused tunnel: a 407 is not retried, and no request reached the fake.
    expect(proxy.stats.refused).toBe(1);
    expect(astro.requests).toHaveLength(0);
  });

  it('503: retried as a connection that was never made, and the deploy completes', async () => {
    const proxy = await startForwardProxy();
    onTestFinished(() => proxy.close());
    const { astro } = await startFake({ deployments: [{ id: 'cldep1' }] });
    proxy.refuseTunnels(503, 1);
    const result = await withProxyEnv({ HTTP_PROXY: proxy.url }, async () => {
      const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token, retry: { maxRetries: 3, ...fast } });
      return client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload: { journalDir: false }, wait: false });
    });
    expect(proxy.stats.refused).toBe(1);
    expect(astro.deploys('cldep1')[0]!.dagTarballVersion).toBe(result.dagTarballVersion);
  });
});
