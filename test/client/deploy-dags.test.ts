import { describe, expect, it, onTestFinished } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DeployDagsEvent, DeployDagsParams } from '../../src/index.js';
import type { FakeAstro, FaultRule } from '../../src/testing/index.js';
import { startFake } from '../helpers/fake.js';

/** A dags folder with two DAGs, a helper hidden from the parser and an ignored scratch folder. */
function makeDags(extraBytes = 0): string {
  const dir = mkdtempSync(join(tmpdir(), 'dags-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'etl_dag.py'), 'from airflow import DAG\nimport helpers\n');
  writeFileSync(join(dir, 'report_dag.py'), 'from airflow import DAG\n');
  writeFileSync(join(dir, 'helpers.py'), 'X = 1\n');
  mkdirSync(join(dir, 'scratch'));
  writeFileSync(join(dir, 'scratch', 'notes.txt'), 'ignore me');
  writeFileSync(join(dir, '.airflowignore'), 'scratch/\n');
  if (extraBytes) writeFileSync(join(dir, 'data.bin'), randomBytes(extraBytes));
  return dir;
}

const smallBlocks = { blockSizeBytes: 64 * 1024, minBlockSizeBytes: 16 * 1024, singleShotMaxBytes: 32 * 1024, journalDir: false as const };

function listTar(buf: Buffer): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'tar-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'b.tar.gz'), buf);
  return execFileSync('tar', ['-tzf', join(dir, 'b.tar.gz')], { encoding: 'utf8' }).trim().split('\n').sort();
}

async function setup(deployment: Record<string, unknown> = {}) {
  const { astro, client } = await startFake({ deployments: [{ id: 'cldep1', ...deployment }], rolloutDelayMs: 100 });
  const events: DeployDagsEvent[] = [];
  const deploy = (p: Partial<Omit<DeployDagsParams, 'dryRun' | 'skipUnchanged'>> = {}) =>
    client.deployDags({ deploymentId: 'cldep1', dagsDir: p.dagsDir ?? makeDags(), upload: smallBlocks, onEvent: (e) => events.push(e), ...p });
  return { astro, client, events, deploy };
}

/** Two deploys to cldep1 ran one after the other: create and finalize of one, then of the other. */
function expectRanInTurn(astro: FakeAstro): void {
  const routes = astro.requests.map((r) => r.route).filter((r) => r === 'deploys.create' || r === 'deploys.finalize');
  expect(routes).toEqual(['deploys.create', 'deploys.finalize', 'deploys.create', 'deploys.finalize']);
  expect(astro.deploys('cldep1').map((d) => d.finalizeCount)).toEqual([1, 1]);
}

function blobOf(astro: FakeAstro) {
  return astro.blob.read('dags', `${astro.organizationId}/cldep1`);
}

describe('deployDags end to end against the fake Astro', () => {
  it('bundles, uploads, finalizes and waits for this version', async () => {
    const { astro, events, deploy } = await setup();
    const result = await deploy({ description: 'nightly', wait: { pollIntervalMs: 50 } });
    expect(result.rollout?.deployment.dagTarballVersion).toBe(result.dagTarballVersion);
    expect(astro.deployment('cldep1').dagTarballVersion).toBe(result.dagTarballVersion);
    const [rec] = astro.deploys('cldep1');
    expect(rec).toMatchObject({ type: 'DAG_ONLY', finalizeCount: 1, dagTarballVersion: result.dagTarballVersion });
    // The description carries the bundle fingerprint marker that skipUnchanged reads back.
    expect(rec!.description).toBe(`nightly [astro-deploy-sdk dags:sha256:${result.bundle.fingerprint.slice(0, 32)}]`);
    const names = listTar(blobOf(astro)!);
    expect(names).toEqual(['dags/.airflowignore', 'dags/etl_dag.py', 'dags/helpers.py', 'dags/report_dag.py']);
    expect(result.bundle.excluded).toBeGreaterThanOrEqual(1);
    const types = events.map((e) => e.type);
    for (const t of ['deploy:checked', 'bundle:scan-complete', 'deploy:created', 'upload:committed', 'deploy:finalized', 'rollout:complete']) {
      expect(types).toContain(t);
    }
    expect(types.indexOf('deploy:created')).toBeGreaterThan(types.indexOf('bundle:scan-complete'));
  });

  it('refuses a deployment with DAG deploys disabled before creating a deploy', async () => {
    const { astro, deploy } = await setup({ isDagDeployEnabled: false });
    const err = await deploy().catch((e) => e);
    expect(err.code).toBe('ASTRO_DAG_DEPLOY_DISABLED');
    expect(err.message).toMatch(/setDagDeploy/);
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);
  });

  it('refuses an empty bundle before creating a deploy', async () => {
    const { astro, deploy } = await setup();
    const dir = mkdtempSync(join(tmpdir(), 'empty-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, '.airflowignore'), '');
    const err = await deploy({ dagsDir: dir }).catch((e) => e);
    expect(err.code).toBe('ASTRO_BUNDLE_EMPTY');
    expect(astro.requestsFor('deploys.create')).toHaveLength(0);
  });

  it('picks the .airflowignore syntax from the runtime version', async () => {
    const { events, deploy } = await setup({ runtimeVersion: '12.6.0' });
    const dir = makeDags();
    writeFileSync(join(dir, '.airflowignore'), '^scratch\n');
    await deploy({ dagsDir: dir });
    expect(events.find((e) => e.type === 'deploy:checked')).toMatchObject({ syntax: 'regexp' });
  });

  it('runs two deploys to one deployment one after the other', async () => {
    const { astro, client } = await setup();
    const run = () => client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(200_000), upload: smallBlocks });
    const [a, b] = await Promise.all([run(), run()]);
    expect(a.dagTarballVersion).not.toBe(b.dagTarballVersion);
    expectRanInTurn(astro);
  });

  it('a deploy queued behind another is aborted at once, and the deploys after it still wait their turn', async () => {
    const { astro, client } = await setup();
    // The first deploy holds the deployment for a while: its finalize is answered after 1.5 s.
    astro.fail({ route: 'deploys.finalize', action: { kind: 'delay', ms: 1500 } });
    const run = (signal?: AbortSignal) => client.deployDags({ deploymentId: 'cldep1', dagsDir: makeDags(), upload: smallBlocks, ...(signal ? { signal } : {}) });
    const settledAt = (p: Promise<unknown>) => p.catch(() => undefined).then(() => performance.now());
    const first = run();
    const controller = new AbortController();
    const queued = run(controller.signal);
    const third = run();
    setTimeout(() => controller.abort(), 100);
    const [err, queuedAt, firstAt] = await Promise.all([queued.catch((e) => e), settledAt(queued), settledAt(first), third]);
    expect(err.code).toBe('ASTRO_ABORTED');
    // Rejected while the first deploy still held the deployment, not after it.
    expect(queuedAt).toBeLessThan(firstAt - 500);
    // The aborted deploy created nothing, and the third waited for the first to finish.
    expectRanInTurn(astro);
  });

  it('an upload committed without a version (requireVersionId: false) is ASTRO_UPLOAD_NO_VERSION_ID, not a byte mismatch, and no finalize', async () => {
    const { astro, deploy } = await setup();
    // A storage account without blob versioning: the commit is answered without x-ms-version-id.
    astro.fail({ route: 'blob.putBlob', action: { kind: 'status', status: 201, headers: { etag: '"0x8D1"' } } });
    const err = await deploy({ upload: { requireVersionId: false, journalDir: false } }).catch((e) => e);
    expect(err.code).toBe('ASTRO_UPLOAD_NO_VERSION_ID');
    expect(err.message).toMatch(/versioning/);
    expect(err.message).not.toMatch(/bytes/);
    expect(err.deployId).toBe(astro.deploys('cldep1')[0]!.id);
    expect(astro.requestsFor('deploys.finalize')).toHaveLength(0);
  });

  it('aborts mid-upload with ASTRO_ABORTED and no finalize', async () => {
    const { astro, deploy } = await setup();
    astro.fail({ route: 'blob.putBlock', nth: 2, action: { kind: 'delay', ms: 2000 } });
    const controller = new AbortController();
    const p = deploy({ dagsDir: makeDags(300_000), signal: controller.signal });
    setTimeout(() => controller.abort(), 300);
    const err = await p.catch((e) => e);
    expect(err.code).toBe('ASTRO_ABORTED');
    expect(astro.requestsFor('deploys.finalize')).toHaveLength(0);
  });
});

describe('deployDags retry reporting', () => {
  it("calls the caller's request.onRetry and emits api:retry events for the same retry", async () => {
    const { astro, events, deploy } = await setup();
    astro.fail({ route: 'deployments.get', nth: 1, action: { kind: 'status', status: 503 } });
    const own: Array<{ path: string; attempt: number }> = [];
    await deploy({ request: { onRetry: (i) => own.push({ path: i.path, attempt: i.attempt }) } });
    expect(own).toEqual([{ path: expect.stringContaining('/deployments/cldep1'), attempt: 1 }]);
    const retries = events.filter((e) => e.type === 'api:retry');
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatchObject({ path: own[0]!.path, attempt: 1 });
  });
});

describe('deployDags with a fault at every phase', () => {
  const recoverable: Array<[string, FaultRule]> = [
    ['a 408 on the first block', { route: 'blob.putBlock', action: { kind: 'status', status: 408 } }],
    ['a 408 after part of a block', { route: 'blob.putBlock', nth: 2, action: { kind: 'status', status: 408, afterBodyBytes: 8000 } }],
    ['a reset mid-block', { route: 'blob.putBlock', nth: 3, action: { kind: 'reset', afterBodyBytes: 10_000 } }],
    ['a 503 on a block', { route: 'blob.putBlock', nth: 4, action: { kind: 'status', status: 503, headers: { 'x-ms-error-code': 'ServerBusy' } } }],
    ['a lost commit response', { route: 'blob.putBlockList', action: { kind: 'dropResponse' } }],
    ['a 500 on finalize', { route: 'deploys.finalize', action: { kind: 'status', status: 500 } }],
    ['a lost finalize response', { route: 'deploys.finalize', action: { kind: 'dropResponse' } }],
    ['a reset on finalize', { route: 'deploys.finalize', action: { kind: 'reset' } }],
    ['503s while polling', { route: 'deployments.get', nth: 2, times: 3, action: { kind: 'status', status: 503 } }],
    ['a 503 reading the deployment', { route: 'deployments.get', nth: 1, action: { kind: 'status', status: 503 } }],
  ];
  for (const [label, rule] of recoverable) {
    it(`completes and finalizes exactly once despite ${label}`, async () => {
      const { astro, deploy } = await setup();
      astro.fail(rule);
      const result = await deploy({ dagsDir: makeDags(300_000), wait: { pollIntervalMs: 50 } });
      expect(astro.faults.pending()).toEqual([]);
      const records = astro.deploys('cldep1');
      expect(records).toHaveLength(1);
      expect(records[0]!.finalizeCount).toBe(1);
      expect(records[0]!.dagTarballVersion).toBe(result.dagTarballVersion);
      expect(astro.deployment('cldep1').dagTarballVersion).toBe(result.dagTarballVersion);
      expect(blobOf(astro)!.length).toBe(result.bundle.bytes);
    });
  }

  const fatal: Array<[string, FaultRule, string]> = [
    ['a 500 on create', { route: 'deploys.create', action: { kind: 'status', status: 500 } }, 'ASTRO_API_SERVER_ERROR'],
    ['a lost create response', { route: 'deploys.create', action: { kind: 'dropResponse' } }, 'ASTRO_CONNECTION'],
    ['a 403 on every block (expired SAS)', { route: 'blob.putBlock', times: Infinity, action: { kind: 'status', status: 403, headers: { 'x-ms-error-code': 'AuthenticationFailed' } } }, 'ASTRO_UPLOAD_REJECTED'],
    ['a 400 on finalize', { route: 'deploys.finalize', action: { kind: 'status', status: 400, body: { message: 'nope', requestId: 'r', statusCode: 400 } } }, 'ASTRO_API_BAD_REQUEST'],
  ];
  for (const [label, rule, code] of fatal) {
    it(`fails with a typed error and no finalize after ${label}`, async () => {
      const { astro, deploy } = await setup();
      astro.fail(rule);
      const err = await deploy({ dagsDir: makeDags(300_000) }).catch((e) => e);
      expect(err.code).toBe(code);
      expect(err.message).not.toMatch(/sig=(?!\[REDACTED\])/);
      expect(astro.deploys('cldep1').every((d) => d.finalizeCount === 0)).toBe(true);
    });
  }
});
