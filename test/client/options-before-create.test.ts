/**
 * Options a flow hands on to a later phase (the bundle upload, the image push, the rollout wait)
 * are refused before a deploy is created: a deploy created only to fail on them would stay behind,
 * INITIALIZED. Against the fake Astro over real HTTP; images are archives made in the test, and the
 * deployProject cases are refused before any Docker work.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeployDagsParams, DeployImageParams, DeployProjectParams } from '../../src/index.js';
import { RUNTIME_VERSION_LABEL } from '../../src/image/index.js';
import { makeImage, writeLegacyArchive } from '../image/fixtures.js';
import { startFake } from '../helpers/fake.js';
import { unusableDocker } from './fixtures/unusable-docker.js';

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function makeDags(): string {
  const dir = tempDir('opt-dags-');
  writeFileSync(join(dir, 'dag.py'), 'from airflow import DAG\n');
  return dir;
}

async function makeArchive(): Promise<string> {
  const path = join(tempDir('opt-img-'), 'good.tar');
  await writeLegacyArchive(path, makeImage({ architecture: 'amd64', labels: { [RUNTIME_VERSION_LABEL]: '3.1-3' }, layers: [{ 'app/x.txt': 'x' }] }), 'test/good:1');
  return path;
}

/** An Astro project (a Dockerfile and dags/) that must be refused before the build. */
function makeProject(): string {
  const dir = tempDir('opt-project-');
  writeFileSync(join(dir, 'Dockerfile'), 'FROM quay.io/astronomer/astro-runtime:3.1-3\n');
  mkdirSync(join(dir, 'dags'));
  writeFileSync(join(dir, 'dags', 'dag.py'), 'from airflow import DAG\n');
  return dir;
}

/** Options each flow takes from the caller and hands on to the upload, the push or the wait. */
const badUpload: Array<[string, DeployDagsParams['upload']]> = [
  ['upload.blockSizeBytes -5', { blockSizeBytes: -5 }],
  ['upload.concurrency 0', { concurrency: 0 }],
  ['upload.retry.maxRetries -1', { retry: { maxRetries: -1 } }],
];
const badWait: Array<[string, DeployDagsParams['wait']]> = [['wait.verifyDags.settleMs -1', { pollIntervalMs: 20, verifyDags: { settleMs: -1 } }]];
const badPush: Array<[string, DeployImageParams['push']]> = [
  ['push.retry.initialDelayMs -1', { retry: { initialDelayMs: -1 } }],
  ['push.concurrency 0', { concurrency: 0 }],
  ['push.chunkSizeBytes -1', { chunkSizeBytes: -1 }],
  ['push.gzipLevel 12', { gzipLevel: 12 }],
  ['push.requestTimeoutMs Infinity', { requestTimeoutMs: Number.POSITIVE_INFINITY }],
];

async function setup(deployment: Record<string, unknown> = {}) {
  // A registry on a closed loopback port: nothing is ever pushed anywhere.
  const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', runtimeVersion: '3.1-2', ...deployment }], imageRegistry: '127.0.0.1:1', rolloutDelayMs: 20 });
  return { astro, client };
}

describe('options refused before a deploy is created', () => {
  for (const [label, options] of [...badUpload.map(([l, upload]) => [l, { upload }] as const), ...badWait.map(([l, wait]) => [l, { wait }] as const)]) {
    it(`deployDags: ${label}`, async () => {
      const { astro, client } = await setup();
      const err = await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), ...options }).catch((e) => e);
      expect(err.code).toBe('ASTRO_CONFIG_INVALID_OPTION');
      expect(err.deployId).toBeUndefined();
      expect(astro.deploys('cldep1')).toEqual([]);
    });
  }

  for (const [label, options] of [
    ...badUpload.map(([l, upload]) => [l, { upload, dagsDir: makeDags }] as const),
    ...badWait.map(([l, wait]) => [l, { wait }] as const),
    ...badPush.map(([l, push]) => [l, { push }] as const),
    ['push.method daemon with an archive', { push: { method: 'daemon' } }] as const,
  ]) {
    it(`deployImage: ${label}`, async () => {
      const { astro, client } = await setup();
      const { dagsDir, ...rest } = options as Partial<DeployImageParams> & { dagsDir?: () => string };
      const params: DeployImageParams = { deploymentId: 'cldep1', image: await makeArchive(), ...rest, ...(dagsDir ? { dagsDir: dagsDir() } : {}) };
      const err = await client.deployImage(params).catch((e) => e);
      expect(err.code, err.message).toBe('ASTRO_CONFIG_INVALID_OPTION');
      expect(err.deployId).toBeUndefined();
      expect(astro.deploys('cldep1')).toEqual([]);
    });
  }

  for (const [label, options] of [
    ...badUpload.map(([l, upload]) => [l, { upload }] as const),
    ...badWait.map(([l, wait]) => [l, { wait }] as const),
    ...badPush.map(([l, push]) => [l, { push }] as const),
  ]) {
    it(`deployProject: ${label}, before any Docker work`, async () => {
      const { astro, client } = await setup();
      const touched: string[] = [];
      const params: DeployProjectParams = { deploymentId: 'cldep1', projectDir: makeProject(), docker: unusableDocker(touched), ...options };
      const err = await client.deployProject(params).catch((e) => e);
      expect(err.code, err.message).toBe('ASTRO_CONFIG_INVALID_OPTION');
      expect(touched).toEqual([]);
      expect(astro.deploys('cldep1')).toEqual([]);
    });
  }

  it("deployImage: the replaced parseCheck option (a JavaScript caller's) is refused, not ignored, so the parse is never silently skipped", async () => {
    const { astro, client } = await setup();
    const params = { deploymentId: 'cldep1', image: await makeArchive(), parseCheck: true } as DeployImageParams;
    const err = await client.deployImage(params).catch((e) => e);
    expect(err.code).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(err.message).toBe("Option parseCheck was replaced by tests: 'parse': pass that instead.");
    expect(astro.requests).toEqual([]);
  });

  it('deployDagsToMany and deployImageToMany reject at once, touching no deployment', async () => {
    const { astro, client } = await setup();
    const dags = await client.deployDagsToMany({ deploymentIds: ['cldep1'], dagsDir: makeDags(), upload: { concurrency: 0 } }).catch((e) => e);
    expect(dags.code).toBe('ASTRO_CONFIG_INVALID_OPTION');
    const image = await client.deployImageToMany({ deploymentIds: ['cldep1'], image: await makeArchive(), push: { method: 'daemon' } }).catch((e) => e);
    expect(image.code).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(astro.requests).toEqual([]);
  });

  it('valid options still deploy', async () => {
    const { astro, client } = await setup();
    const result = await client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload: { concurrency: 2, journalDir: false }, wait: { pollIntervalMs: 20, verifyDags: { settleMs: 0 } } });
    expect(astro.deploys('cldep1').map((d) => d.id)).toEqual([result.deployId]);
  });
});
