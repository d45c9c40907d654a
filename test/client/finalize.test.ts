/**
 * Finalize exactly once, and a finalized deploy never reported as failed (issue #15), against the
 * fake Astro over real HTTP with its fault injection: lost answers, read-backs that fail, a server
 * that acts after the client gave up, and a read-back that never succeeds.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AstroFinalizeUnknownError, isAstroError, type DeployDagsEvent, type DeployDagsParams } from '../../src/index.js';
import { startFake } from '../helpers/fake.js';

function makeDags(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fin-dags-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'dag.py'), 'from airflow import DAG\n');
  return dir;
}

/** Tiny backoff: the tests check decisions, not waits. */
const fast = { initialDelayMs: 1, maxDelayMs: 5 };

async function setup() {
  const { astro, client } = await startFake({ deployments: [{ id: 'cldep1' }], rolloutDelayMs: 50 });
  const events: DeployDagsEvent[] = [];
  const deploy = (p: Partial<Omit<DeployDagsParams, 'dryRun' | 'skipUnchanged'>> = {}) =>
    client.deployDags({
      deploymentId: 'cldep1',
      dagsDir: makeDags(),
      upload: { journalDir: false },
      request: { retry: fast },
      onEvent: (e) => events.push(e),
      ...p,
    });
  /** API routes in the order the fake saw them, finalize and read-backs only. */
  const finalizeTrail = () => astro.requests.map((r) => r.route).filter((r) => r === 'deploys.finalize' || r === 'deploys.get');
  return { astro, client, events, deploy, finalizeTrail };
}

describe('finalize: a finalized deploy is never reported as failed', () => {
  it('a lost finalize answer, then three read-backs answered 503: success, finalized once, never re-sent', async () => {
    const { astro, events, deploy, finalizeTrail } = await setup();
    astro.fail({ route: 'deploys.finalize', action: { kind: 'dropResponse' } });
    astro.fail({ route: 'deploys.get', times: 3, action: { kind: 'status', status: 503 } });
    const result = await deploy();
    const [record] = astro.deploys('cldep1');
    expect(record!.finalizeCount).toBe(1);
    expect(record!.dagTarballVersion).toBe(result.dagTarballVersion);
    expect(result.deploy.dagTarballVersion).toBe(result.dagTarballVersion);
    // One finalize; read-backs until one was answered.
    expect(finalizeTrail()).toEqual(['deploys.finalize', 'deploys.get', 'deploys.get', 'deploys.get', 'deploys.get']);
    expect(events.some((e) => e.type === 'deploy:finalize-recovered')).toBe(true);
    expect(astro.faults.pending()).toEqual([]);
  });

  it('Astro acts on finalize after the per-try timeout: the re-sent finalize is refused, the read-back finds it finalized, success', async () => {
    const { astro, deploy, finalizeTrail } = await setup();
    // The first finalize is acted on 700 ms after it arrived: after the client's 400 ms timeout
    // and after the read-back (sent at once) that saw it not finalized. The re-sent finalize goes
    // after the backoff (600-1200 ms) and reaches the handler 250 ms later, when the first has
    // acted, so Astro refuses it as a second finalize.
    astro.fail({ route: 'deploys.finalize', action: { kind: 'actLate', ms: 700 } });
    astro.fail({ route: 'deploys.finalize', nth: 2, action: { kind: 'delay', ms: 250 } });
    const result = await deploy({ request: { timeoutMs: 400, retry: { initialDelayMs: 1200, maxDelayMs: 1200 } } });
    const [record] = astro.deploys('cldep1');
    expect(record!.finalizeCount).toBe(1);
    expect(record!.dagTarballVersion).toBe(result.dagTarballVersion);
    const finalizes = astro.requestsFor('deploys.finalize');
    expect(finalizes).toHaveLength(2);
    expect(finalizes[1]!.status).toBe(400);
    // Re-sent only after a read showed it not finalized; the refusal was followed by a read-back.
    expect(finalizeTrail()).toEqual(['deploys.finalize', 'deploys.get', 'deploys.finalize', 'deploys.get']);
  });

  it('re-sends finalize only after the deploy was read as not finalized (a 503 the server did not act on)', async () => {
    const { astro, deploy, finalizeTrail } = await setup();
    astro.fail({ route: 'deploys.finalize', action: { kind: 'status', status: 503 } });
    await deploy();
    expect(finalizeTrail()).toEqual(['deploys.finalize', 'deploys.get', 'deploys.finalize']);
    expect(astro.deploys('cldep1')[0]!.finalizeCount).toBe(1);
  });

  it('a refusal of the first finalize is final: no read-back, no re-send', async () => {
    const { astro, deploy, finalizeTrail } = await setup();
    astro.fail({ route: 'deploys.finalize', action: { kind: 'status', status: 400, body: { message: 'nope', requestId: 'r', statusCode: 400 } } });
    const err = await deploy().catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_API_BAD_REQUEST')).toBe(true);
    expect(finalizeTrail()).toEqual(['deploys.finalize']);
  });

  it('when the deploy cannot be read back within the bound: ASTRO_FINALIZE_UNKNOWN with deployId and version, no second finalize', async () => {
    const { astro, deploy } = await setup();
    astro.fail({ route: 'deploys.finalize', action: { kind: 'dropResponse' } });
    astro.fail({ route: 'deploys.get', times: Infinity, action: { kind: 'status', status: 503 } });
    const started = Date.now();
    const err = await deploy({ finalizeCheckTimeoutMs: 300 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(err).toBeInstanceOf(AstroFinalizeUnknownError);
    const [record] = astro.deploys('cldep1');
    const unknown = err as AstroFinalizeUnknownError;
    expect(unknown.code).toBe('ASTRO_FINALIZE_UNKNOWN');
    expect(unknown.deployId).toBe(record!.id);
    expect(unknown.deploymentId).toBe('cldep1');
    // The version finalize was sent with (the fake acted on it: the caller checks, not redeploys).
    expect(unknown.dagTarballVersion).toBe(record!.dagTarballVersion);
    expect(unknown.dagTarballVersion).toMatch(/Z$/);
    expect(unknown.message).toContain(record!.id);
    expect(isAstroError(unknown.cause, 'ASTRO_API_SERVER_ERROR')).toBe(true);
    expect(astro.requestsFor('deploys.finalize')).toHaveLength(1);
    expect(JSON.parse(JSON.stringify(unknown))).toMatchObject({ code: 'ASTRO_FINALIZE_UNKNOWN', deployId: record!.id });
    // Whether it was finalized is what is not known.
    expect(unknown.deployFinalized).toBeUndefined();
  });

  it('rejects a finalizeCheckTimeoutMs that is not a non-negative number before any request', async () => {
    const { astro, deploy } = await setup();
    const err = await deploy({ finalizeCheckTimeoutMs: -1 }).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_CONFIG_INVALID_OPTION')).toBe(true);
    expect(astro.requests).toHaveLength(0);
  });
});

describe('left behind: every error raised after create names the deploy', () => {
  const afterCreate: Array<[string, Parameters<Awaited<ReturnType<typeof setup>>['astro']['fail']>[0], string, boolean]> = [
    ['a rejected upload', { route: 'blob.putBlob', times: Infinity, action: { kind: 'status', status: 403, headers: { 'x-ms-error-code': 'AuthenticationFailed' } } }, 'ASTRO_UPLOAD_REJECTED', false],
    ['a refused finalize', { route: 'deploys.finalize', action: { kind: 'status', status: 400, body: { message: 'nope', requestId: 'r', statusCode: 400 } } }, 'ASTRO_API_BAD_REQUEST', false],
    ['a poll refused during the wait', { route: 'deployments.get', nth: 2, times: Infinity, action: { kind: 'status', status: 404 } }, 'ASTRO_API_NOT_FOUND', true],
  ];
  for (const [label, rule, code, finalized] of afterCreate) {
    it(`${label}: ${code} carries deployId, and deployFinalized ${finalized}`, async () => {
      const { astro, deploy } = await setup();
      astro.fail(rule);
      const err = await deploy({ wait: { pollIntervalMs: 10 } }).catch((e: unknown) => e);
      expect(isAstroError(err, code as never)).toBe(true);
      const [record] = astro.deploys('cldep1');
      expect((err as { deployId?: string }).deployId).toBe(record!.id);
      expect((err as { deployFinalized?: boolean }).deployFinalized).toBe(finalized);
      expect(JSON.parse(JSON.stringify(err))).toMatchObject({ deployId: record!.id, deployFinalized: finalized });
    });
  }

  it('an abort after create carries deployId; an error before create does not', async () => {
    const { astro, deploy } = await setup();
    astro.fail({ route: 'blob.putBlob', action: { kind: 'delay', ms: 2000 } });
    const controller = new AbortController();
    const p = deploy({ signal: controller.signal });
    const timer = setInterval(() => {
      if (astro.requestsFor('blob.putBlob').length > 0) controller.abort();
    }, 5);
    const err = await p.catch((e: unknown) => e);
    clearInterval(timer);
    expect(isAstroError(err, 'ASTRO_ABORTED')).toBe(true);
    expect((err as { deployId?: string }).deployId).toBe(astro.deploys('cldep1')[0]!.id);

    const before = await deploy({ deploymentId: 'clmissing' }).catch((e: unknown) => e);
    expect(isAstroError(before, 'ASTRO_API_NOT_FOUND')).toBe(true);
    expect((before as { deployId?: string }).deployId).toBeUndefined();
  });
});
