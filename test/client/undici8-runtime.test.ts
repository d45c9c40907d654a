/**
 * Dispatchers of undici 7 (the SDK's own) and undici 8 (installed beside it as `undici8`) both
 * carry the SDK's requests. Undici 8 refuses undici 7's top-level `request(url, { dispatcher })`
 * ("opts.dispatcher is not supported by instance methods", which surfaced as ASTRO_CONNECTION and
 * was retried), so every request goes through the dispatcher's own `request` method.
 *
 * Undici 8 needs Node 22.19 or later, so vitest.config.ts includes this file only there (CI runs
 * it on Node 22 and 24); the type checks stay in undici-majors.test.ts, which runs everywhere.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import * as undici7 from 'undici';
import { AstroClient } from '../../src/index.js';
import { uploadBlockBlob } from '../../src/upload/index.js';
import { httpRequest } from '../../src/core/dispatcher.js';
import { createFakeAstro, startFakeBlobServer, TestTokenMinter } from '../../src/testing/index.js';

async function tempFile(bytes: Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'undici-majors-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'payload.bin');
  await writeFile(file, bytes);
  return file;
}

describe('undici 8 dispatchers (Node >= 22.19)', () => {
  it('carries API calls, a DAG bundle upload and finalize (an undici 8 Agent as the client dispatcher)', async () => {
    const u8 = await import('undici8');
    const astro = await createFakeAstro({ deployments: [{ id: 'cldep1', type: 'STANDARD' }] });
    onTestFinished(() => astro.close());
    const agent = new u8.Agent();
    onTestFinished(() => agent.close());
    const dispatched: string[] = [];
    const counting = agent.compose((dispatch) => (options, handler) => {
      dispatched.push(`${options.method} ${new URL(options.path, options.origin as string).pathname}`);
      return dispatch(options, handler);
    });
    const dir = await mkdtemp(join(tmpdir(), 'undici8-dags-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'dag.py'), 'from airflow import DAG\n');
    const client = new AstroClient({ baseUrl: astro.baseUrl, token: astro.token, dispatcher: counting, retry: { maxRetries: 0 } });
    const result = await client.deployDags({ deploymentId: 'cldep1', dagsDir: dir });
    expect(result.dagTarballVersion).toBeTruthy();
    expect(astro.deploys('cldep1').find((d) => d.id === result.deployId)?.dagTarballVersion).toBe(result.dagTarballVersion);
    expect(dispatched.some((d) => d.startsWith('GET /v1/organizations/'))).toBe(true);
    expect(dispatched.some((d) => d.startsWith('PUT '))).toBe(true); // the blob upload
    expect(dispatched.some((d) => d.startsWith('POST ') && d.endsWith('/finalize'))).toBe(true);
  });

  it('answers API calls from an undici 8 MockAgent', async () => {
    const u8 = await import('undici8');
    const mock = new u8.MockAgent();
    mock.disableNetConnect();
    onTestFinished(() => mock.close());
    mock
      .get('https://api.example.test')
      .intercept({ path: '/v1/organizations/clorg1/deployments/cldep1', method: 'GET' })
      .reply(200, { id: 'cldep1', name: 'd', organizationId: 'clorg1', workspaceId: 'clws', type: 'STANDARD', status: 'HEALTHY', isDagDeployEnabled: true, isCicdEnforced: false });
    const client = new AstroClient({ baseUrl: 'https://api.example.test/v1', token: new TestTokenMinter('clorg1').mint(), dispatcher: mock, retry: { maxRetries: 0 } });
    const deployment = await client.deployments.get('cldep1');
    expect(deployment.id).toBe('cldep1');
    mock.assertNoPendingInterceptors();
  });

  it('uploads through an undici 8 Agent given to uploadBlockBlob', async () => {
    const u8 = await import('undici8');
    const server = await startFakeBlobServer();
    onTestFinished(() => server.close());
    const agent = new u8.Agent();
    onTestFinished(() => agent.close());
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 7, 7);
    const file = await tempFile(bytes);
    const url = server.service.sasUrl(server.url, 'dags', 'b.tar.gz');
    const r = await uploadBlockBlob(url, file, { dispatcher: agent, journalDir: false, blockSizeBytes: 1024 * 1024, maxBlockSizeBytes: 1024 * 1024 });
    expect(r.bytes).toBe(bytes.length);
    expect(Buffer.compare(server.service.read('dags', 'b.tar.gz') ?? Buffer.alloc(0), bytes)).toBe(0);
  });

  it("follows undici 8's setGlobalDispatcher when no dispatcher is given", async () => {
    const u8 = await import('undici8');
    const before = undici7.getGlobalDispatcher();
    const mock = new u8.MockAgent();
    mock.disableNetConnect();
    u8.setGlobalDispatcher(mock);
    onTestFinished(async () => {
      undici7.setGlobalDispatcher(before);
      await mock.close();
    });
    mock.get('https://global.example.test').intercept({ path: '/x', method: 'GET' }).reply(200, 'from undici 8');
    const res = await httpRequest('https://global.example.test/x', { method: 'GET' }, undefined);
    expect(await res.body.text()).toBe('from undici 8');
  });
});
