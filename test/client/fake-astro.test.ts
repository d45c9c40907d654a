import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { createFakeAstro } from '../../src/testing/index.js';
import { onTestFinished } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function call(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const res = await request(url, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

describe('fake Astro strictness', () => {
  it('answers unknown paths, wrong methods and missing auth with the real error shape', async () => {
    const astro = await createFakeAstro({ deployments: [{ id: 'cldep1' }] });
    onTestFinished(() => astro.close());
    const auth = { authorization: `Bearer ${astro.token}` };
    const unknown = await call(`${astro.baseUrl}/organizations/${astro.organizationId}/nope`, { headers: auth });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toEqual({ message: expect.any(String), requestId: expect.any(String), statusCode: 404 });
    const wrongMethod = await call(`${astro.baseUrl}/organizations/${astro.organizationId}/deployments/cldep1/deploys`, { method: 'PUT', headers: auth });
    expect(wrongMethod.status).toBe(405);
    const noAuth = await call(`${astro.baseUrl}/organizations/${astro.organizationId}/deployments/cldep1`);
    expect(noAuth.status).toBe(401);
    expect(noAuth.json.statusCode).toBe(401);
    const badJson = await call(`${astro.baseUrl}/organizations/${astro.organizationId}/deployments/cldep1/deploys`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(badJson.status).toBe(400);
  });

  it('answers create and finalize with 200, refuses a second finalize and an unknown version', async () => {
    const astro = await createFakeAstro({ deployments: [{ id: 'cldep1' }] });
    onTestFinished(() => astro.close());
    const headers = { authorization: `Bearer ${astro.token}`, 'content-type': 'application/json' };
    const base = `${astro.baseUrl}/organizations/${astro.organizationId}/deployments/cldep1/deploys`;
    const created = await call(base, { method: 'POST', headers, body: JSON.stringify({ type: 'DAG_ONLY', description: '' }) });
    expect(created.status).toBe(200);
    const unknownVersion = await call(`${base}/${created.json.id}/finalize`, { method: 'POST', headers, body: JSON.stringify({ dagTarballVersion: 'bogus' }) });
    expect(unknownVersion.status).toBe(400);
    const missing = await call(`${base}/${created.json.id}/finalize`, { method: 'POST', headers, body: '{}' });
    expect(missing.status).toBe(400);
    expect(missing.json.fieldErrors[0].field).toBe('dagTarballVersion');
    const empty = await call(`${base}/${created.json.id}/finalize`, { method: 'POST', headers, body: JSON.stringify({ dagTarballVersion: '' }) });
    expect(empty.status).toBe(200);
    const again = await call(`${base}/${created.json.id}/finalize`, { method: 'POST', headers, body: JSON.stringify({ dagTarballVersion: '' }) });
    expect(again.status).toBe(400);
  });

  it('returns dagsUploadUrl only when DAG deploys are enabled', async () => {
    const astro = await createFakeAstro({ deployments: [{ id: 'clon' }, { id: 'cloff', isDagDeployEnabled: false }] });
    onTestFinished(() => astro.close());
    const headers = { authorization: `Bearer ${astro.token}`, 'content-type': 'application/json' };
    const mk = (dep: string) =>
      call(`${astro.baseUrl}/organizations/${astro.organizationId}/deployments/${dep}/deploys`, { method: 'POST', headers, body: JSON.stringify({ type: 'IMAGE_AND_DAG' }) });
    expect((await mk('clon')).json.dagsUploadUrl).toEqual(expect.any(String));
    expect((await mk('cloff')).json.dagsUploadUrl).toBeUndefined();
  });

  it('answers a BUNDLE deploy with bundleUploadUrl only when DAG deploys are enabled, and needs bundleTarballVersion at finalize only then', async () => {
    const astro = await createFakeAstro({ deployments: [{ id: 'clon' }, { id: 'cloff', isDagDeployEnabled: false }] });
    onTestFinished(() => astro.close());
    const headers = { authorization: `Bearer ${astro.token}`, 'content-type': 'application/json' };
    const deploys = (dep: string) => `${astro.baseUrl}/organizations/${astro.organizationId}/deployments/${dep}/deploys`;
    const bundle = JSON.stringify({ type: 'BUNDLE', bundleMountPath: '/usr/local/airflow/dbt/jaffle', bundleType: 'dbt' });
    const finalize = (dep: string, id: string, body: object) => call(`${deploys(dep)}/${id}/finalize`, { method: 'POST', headers, body: JSON.stringify(body) });

    const on = await call(deploys('clon'), { method: 'POST', headers, body: bundle });
    expect(on.status).toBe(200);
    expect(on.json.bundleUploadUrl).toEqual(expect.any(String));
    expect(on.json.dagsUploadUrl).toBeUndefined();
    expect((await finalize('clon', on.json.id, {})).json.fieldErrors[0].field).toBe('bundleTarballVersion');
    expect((await finalize('clon', on.json.id, { bundleTarballVersion: '' })).status).toBe(200);

    const off = await call(deploys('cloff'), { method: 'POST', headers, body: bundle });
    expect(off.status).toBe(200);
    expect(off.json.bundleUploadUrl).toBeUndefined();
    expect((await finalize('cloff', off.json.id, { bundleTarballVersion: 'v1' })).status).toBe(400);
    expect((await finalize('cloff', off.json.id, {})).status).toBe(200);
  });

  it('never records the Authorization header', async () => {
    const astro = await createFakeAstro({ deployments: [{ id: 'cldep1' }] });
    onTestFinished(() => astro.close());
    await call(`${astro.baseUrl}/organizations/${astro.organizationId}/deployments/cldep1`, { headers: { authorization: `Bearer ${astro.token}` } });
    expect(JSON.stringify(astro.requests)).not.toContain(astro.token);
  });

  it('close() cancels the faults still waiting: actLate never acts after it, and no fault timer keeps the process alive', async () => {
    // In a child process, so what keeps the event loop alive shows as a late exit.
    const dir = mkdtempSync(join(tmpdir(), 'fake-close-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const script = join(dir, 'close.mts');
    writeFileSync(
      script,
      `import { createFakeAstro } from ${JSON.stringify(pathToFileURL(join(ROOT, 'src/testing/index.ts')).href)};
const astro = await createFakeAstro({ deployments: [{ id: 'cldep1' }] });
astro.fail({ route: 'deploys.create', action: { kind: 'actLate', ms: 3000 } });
astro.fail({ route: 'deployments.get', action: { kind: 'delay', ms: 3000 } });
const headers = { authorization: 'Bearer ' + astro.token, 'content-type': 'application/json' };
const base = astro.baseUrl + '/organizations/' + astro.organizationId + '/deployments/cldep1';
await Promise.allSettled([
  fetch(base + '/deploys', { method: 'POST', headers, body: JSON.stringify({ type: 'DAG_ONLY' }), signal: AbortSignal.timeout(200) }),
  fetch(base, { headers, signal: AbortSignal.timeout(200) }),
]);
await astro.close();
const closedAt = performance.now();
process.on('exit', () => console.log(JSON.stringify({ exitMs: Math.round(performance.now() - closedAt), deploys: astro.deploys('cldep1').length, gets: astro.requestsFor('deployments.get').map((r) => r.status) })));
`,
    );
    const tsx = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', tsx, script], { cwd: ROOT, timeout: 20_000 });
    const after = JSON.parse(stdout.trim().split('\n').pop()!) as { exitMs: number; deploys: number; gets: number[] };
    expect(after.deploys).toBe(0);
    expect(after.gets).toEqual([0]);
    expect(after.exitMs).toBeLessThan(1500);
  }, 30_000);

  it('holds Workspace and Deployment tokens to their scope: 403 with the error body beyond it, lists show only what they reach', async () => {
    const astro = await createFakeAstro({
      deployments: [
        { id: 'cldepa', workspaceId: 'clwsa' },
        { id: 'cldepa2', workspaceId: 'clwsa' },
        { id: 'cldepb', workspaceId: 'clwsb' },
      ],
    });
    onTestFinished(() => astro.close());
    const org = `${astro.baseUrl}/organizations/${astro.organizationId}`;
    const as = (token: string, path: string, init: { method?: string; body?: string } = {}) =>
      call(`${org}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
    const scopes: Array<[string, string, string[]]> = [
      ['deployment token', astro.mintToken({ deploymentId: 'cldepa' }), ['cldepa']],
      ['workspace token', astro.mintToken({ workspaceId: 'clwsa' }), ['cldepa', 'cldepa2']],
      ['organization token', astro.token, ['cldepa', 'cldepa2', 'cldepb']],
    ];
    for (const [kind, token, reach] of scopes) {
      const listed = await as(token, '/deployments');
      expect(listed.status, kind).toBe(200);
      expect(listed.json.deployments.map((d: { id: string }) => d.id).sort(), kind).toEqual(reach);
      expect(listed.json.totalCount, kind).toBe(reach.length);
      expect((await as(token, '/deployment-options')).status, kind).toBe(200);
      for (const id of ['cldepa', 'cldepa2', 'cldepb']) {
        const calls = [
          await as(token, `/deployments/${id}`),
          await as(token, `/deployments/${id}/deploys`),
          await as(token, `/deployments/${id}/deploys`, { method: 'POST', body: JSON.stringify({ type: 'DAG_ONLY' }) }),
        ];
        for (const answer of calls) {
          if (reach.includes(id)) {
            expect(answer.status, `${kind} ${id}`).toBe(200);
          } else {
            expect(answer.status, `${kind} ${id}`).toBe(403);
            expect(answer.json, `${kind} ${id}`).toEqual({ message: expect.stringContaining(id), requestId: expect.any(String), statusCode: 403 });
          }
        }
      }
    }
    // Only the organization token created a deploy on cldepb; the narrow tokens created theirs only.
    expect(astro.deploys('cldepb')).toHaveLength(1);
    expect(astro.deploys('cldepa')).toHaveLength(3);
    expect(astro.deploys('cldepa2')).toHaveLength(2);
    // The deployment's own Airflow API too.
    const namespace = astro.deployment('cldepb').namespace;
    const airflow = await call(`${astro.origin}/airflow/${namespace}/api/v2/importErrors`, { headers: { authorization: `Bearer ${astro.mintToken({ deploymentId: 'cldepa' })}` } });
    expect(airflow.status).toBe(403);
  });
});

