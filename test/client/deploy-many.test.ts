/**
 * deployDagsToMany against the fake Astro over real HTTP: one dags folder (or one bundle) to
 * several deployments, bundled once per `.airflowignore` syntax, at most `concurrency` at a time,
 * one outcome per deployment (a failure does not stop the others).
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createBundle } from '../../src/bundle/index.js';
import { isAstroError, type DeployDagsEvent } from '../../src/index.js';
import { startFake } from '../helpers/fake.js';

function dagsFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'many-dags-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'etl.py'), 'from airflow import DAG\n');
  writeFileSync(join(dir, 'notes.md'), '# notes\n');
  writeFileSync(join(dir, '.airflowignore'), '*.md\n');
  return dir;
}

const sha256 = (b: Buffer | undefined) => (b ? createHash('sha256').update(b).digest('hex') : undefined);

describe('deployDagsToMany', () => {
  it('bundles once per syntax, deploys each deployment with its own, and a refusal does not stop the others', async () => {
    const { astro, client } = await startFake({
      deployments: [
        { id: 'clmany1', runtimeVersion: '3.1-2' },
        { id: 'clmany2', runtimeVersion: '12.5.0' },
        { id: 'clmany3', runtimeVersion: '3.0-1' },
        { id: 'clmany4', runtimeVersion: '3.1-2', isDagDeployEnabled: false },
      ],
    });
    const events: Array<{ event: DeployDagsEvent; deploymentId: string | undefined }> = [];
    const outcomes = await client.deployDagsToMany({
      deploymentIds: ['clmany1', 'clmany2', 'clmany3', 'clmany4', 'clmissing'],
      dagsDir: dagsFolder(),
      onEvent: (event, deploymentId) => events.push({ event, deploymentId }),
    });
    expect(outcomes.map((o) => [o.deploymentId, o.ok])).toEqual([
      ['clmany1', true],
      ['clmany2', true],
      ['clmany3', true],
      ['clmany4', false],
      ['clmissing', false],
    ]);
    const failed = outcomes.filter((o) => !o.ok) as Array<{ error: Error }>;
    expect(isAstroError(failed[0]!.error, 'ASTRO_DAG_DEPLOY_DISABLED')).toBe(true);
    expect(isAstroError(failed[1]!.error, 'ASTRO_API_NOT_FOUND')).toBe(true);

    // Two syntaxes among the targets, two bundles, made once each, outside any deployment's flow.
    const completes = events.filter((e) => e.event.type === 'bundle:complete');
    expect(completes).toHaveLength(2);
    expect(completes.every((e) => e.deploymentId === undefined)).toBe(true);
    const shipped = new Map<string, string | undefined>();
    for (const o of outcomes) {
      if (!o.ok) continue;
      const r = o.result as { dagTarballVersion: string; bundle: { sha256: string; files: number; manifest: { syntax: string } } };
      expect(sha256(astro.blob.readVersion('dags', `${astro.organizationId}/${o.deploymentId}`, r.dagTarballVersion))).toBe(r.bundle.sha256);
      shipped.set(o.deploymentId, r.bundle.sha256);
      // Airflow 3 (glob) leaves notes.md out; Airflow 2 (regexp) cannot read "*.md" and ships it.
      expect(r.bundle.manifest.syntax).toBe(o.deploymentId === 'clmany2' ? 'regexp' : 'glob');
      expect(r.bundle.files).toBe(o.deploymentId === 'clmany2' ? 3 : 2);
    }
    expect(shipped.get('clmany1')).toBe(shipped.get('clmany3'));
    expect(shipped.get('clmany1')).not.toBe(shipped.get('clmany2'));
    // Every deployment's events name it; the temporary bundles are gone.
    expect(events.find((e) => e.event.type === 'deploy:created' && e.deploymentId === 'clmany2')?.event).toMatchObject({ deploymentId: 'clmany2' });
    const paths = completes.map((e) => (e.event as { path?: string }).path!);
    expect(paths.every((p) => !existsSync(p))).toBe(true);
    expect(astro.requestsFor('deploys.create')).toHaveLength(3);
  });

  it('deploys at most `concurrency` deployments at a time', async () => {
    const ids = ['clcon1', 'clcon2', 'clcon3', 'clcon4', 'clcon5'];
    const { astro, client } = await startFake({ deployments: ids.map((id) => ({ id, runtimeVersion: '3.1-2' })) });
    // Slow finalizes, so that the deploys overlap as much as they are allowed to.
    astro.fail({ route: 'deploys.finalize', times: Infinity, action: { kind: 'delay', ms: 150 } });
    let inFlight = 0;
    let most = 0;
    const outcomes = await client.deployDagsToMany({
      deploymentIds: ids,
      dagsDir: dagsFolder(),
      concurrency: 2,
      onEvent: (e) => {
        if (e.type === 'deploy:checked') most = Math.max(most, ++inFlight);
        if (e.type === 'deploy:finalized') inFlight -= 1;
      },
    });
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(most).toBe(2);
  });

  it('ships one bundle given to all; a deployment whose syntax differs gets ASTRO_BUNDLE_SYNTAX_MISMATCH, the others go', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'clbm1', runtimeVersion: '3.1-2' }, { id: 'clbm2', runtimeVersion: '12.5.0' }, { id: 'clbm3', runtimeVersion: '3.1-1' }] });
    const bundle = await createBundle(dagsFolder(), { syntax: 'glob' });
    onTestFinished(() => bundle.cleanup());
    const outcomes = await client.deployDagsToMany({ deploymentIds: ['clbm1', 'clbm2', 'clbm3'], bundle });
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
    expect(isAstroError((outcomes[1] as { error: Error }).error, 'ASTRO_BUNDLE_SYNTAX_MISMATCH')).toBe(true);
    for (const id of ['clbm1', 'clbm3']) {
      const v = astro.deploys(id)[0]!.dagTarballVersion!;
      expect(sha256(astro.blob.readVersion('dags', `${astro.organizationId}/${id}`, v))).toBe(bundle.sha256);
    }
    expect(existsSync(bundle.path!)).toBe(true);
  });

  it('reads git once for all (requireClean refuses them all before anything is created)', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'clgm1', runtimeVersion: '3.1-2' }, { id: 'clgm2', runtimeVersion: '3.1-2' }] });
    const root = mkdtempSync(join(tmpdir(), 'many-git-'));
    onTestFinished(() => rmSync(root, { recursive: true, force: true }));
    const git = (...args: string[]) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8' }).trim();
    git('init', '-q', '-b', 'main');
    git('config', 'user.name', 'Ada Lovelace');
    git('config', 'user.email', 'ada@example.com');
    git('config', 'commit.gpgsign', 'false');
    mkdirSync(join(root, 'dags'));
    writeFileSync(join(root, 'dags', 'etl.py'), 'from airflow import DAG\n');
    git('add', '.');
    git('commit', '-q', '-m', 'Ship the ETL');
    git('remote', 'add', 'origin', 'git@github.com:acme/dags.git');
    const sha = git('rev-parse', 'HEAD');

    const gitEvents: Array<string | undefined> = [];
    const outcomes = await client.deployDagsToMany({
      deploymentIds: ['clgm1', 'clgm2'],
      dagsDir: join(root, 'dags'),
      git: 'auto',
      requireClean: true,
      onEvent: (e, id) => e.type === 'deploy:git' && gitEvents.push(id),
    });
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(gitEvents).toEqual([undefined]);
    for (const r of astro.requestsFor('deploys.create')) expect((r.body as { git?: unknown }).git).toMatchObject({ provider: 'GITHUB', commitSha: sha, account: 'acme', repo: 'dags' });

    writeFileSync(join(root, 'dags', 'wip.py'), '# uncommitted\n');
    const before = astro.requests.length;
    const error = await client.deployDagsToMany({ deploymentIds: ['clgm1', 'clgm2'], dagsDir: join(root, 'dags'), requireClean: true }).catch((e: unknown) => e);
    expect(isAstroError(error, 'ASTRO_GIT_UNCOMMITTED_CHANGES')).toBe(true);
    expect(astro.requests.length).toBe(before);
  });

  it('refuses invalid targets before any request', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'clv1', runtimeVersion: '3.1-2' }] });
    const dagsDir = dagsFolder();
    const code = async (p: Promise<unknown>) => ((await p.catch((e: unknown) => e)) as { code?: string }).code;
    expect(await code(client.deployDagsToMany({ deploymentIds: [], dagsDir }))).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(await code(client.deployDagsToMany({ deploymentIds: ['clv1', 'clv1'], dagsDir }))).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(await code(client.deployDagsToMany({ deploymentIds: ['clv1'], dagsDir, concurrency: 0 }))).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(await code(client.deployDagsToMany({ deploymentIds: ['a/b'], dagsDir }))).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(await code(client.deployDagsToMany({ deploymentIds: ['clv1'] }))).toBe('ASTRO_CONFIG_INVALID_OPTION');
    expect(astro.requests).toEqual([]);
  });
});
