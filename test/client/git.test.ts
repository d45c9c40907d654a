/**
 * Git metadata (`git: 'auto'`) and `requireClean`, with real git repositories made in temp
 * folders. Remote URLs are only strings in `.git/config`: nothing ever contacts them.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { GitUncommittedChangesError, isAstroError, readGitMetadata, uncommittedChanges, type DeployDagsEvent, type DeployImageEvent } from '../../src/index.js';
import { RUNTIME_VERSION_LABEL } from '../../src/image/index.js';
import { parseRemoteUrl, stripCredentials } from '../../src/client/git.js';
import { makeImage, writeLegacyArchive } from '../image/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFake } from '../helpers/fake.js';

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: dir } }).trim();
}

/** A description that is `text`, possibly followed by the fingerprint marker skip-unchanged records. */
function described(text: string): RegExp {
  return new RegExp(`^${text}( \\[astro-deploy-sdk [^\\]]+\\])?$`);
}

function tempFolder(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A repository with `airflow/dags/dag.py` committed on `main` by "Ada Lovelace", and `origin` set
 * to `remote` (when given). Returns the repository and its dags folder.
 */
function repo(remote?: string, message = 'Add the ETL DAG\n\nLonger body that is not the description.'): { root: string; project: string; dags: string; sha: string } {
  const root = tempFolder('git-repo-');
  git(root, 'init', '-q', '-b', 'main');
  git(root, 'config', 'user.name', 'Ada Lovelace');
  git(root, 'config', 'user.email', 'ada@example.com');
  git(root, 'config', 'commit.gpgsign', 'false');
  const project = join(root, 'airflow');
  const dags = join(project, 'dags');
  mkdirSync(dags, { recursive: true });
  writeFileSync(join(dags, 'dag.py'), 'from airflow import DAG\n');
  writeFileSync(join(project, 'Dockerfile'), 'FROM scratch\n');
  git(root, 'add', '.');
  git(root, 'commit', '-q', '-m', message);
  if (remote) git(root, 'remote', 'add', 'origin', remote);
  return { root, project, dags, sha: git(root, 'rev-parse', 'HEAD') };
}

describe('readGitMetadata', () => {
  it('GitHub over SSH: provider GITHUB, account, repo, commit URL, branch, path, author; the first line of the message', async () => {
    const r = repo('git@github.com:acme/dags.git');
    const found = await readGitMetadata(r.project);
    expect(found.skipped).toBeUndefined();
    expect(found.metadata).toEqual({
      provider: 'GITHUB',
      commitSha: r.sha,
      account: 'acme',
      repo: 'dags',
      commitUrl: `https://github.com/acme/dags/commit/${r.sha}`,
      branch: 'main',
      path: 'airflow',
      authorName: 'Ada Lovelace',
    });
    expect(found.commitMessage).toBe('Add the ETL DAG');
    // From the dags folder, the path is that folder's.
    expect((await readGitMetadata(r.dags)).metadata?.path).toBe('airflow/dags');
  });

  it('GitLab over https with CI credentials: GENERIC with the remote URL, credentials removed, no account or repo', async () => {
    const r = repo('https://gitlab-ci-token:glcbt-SECRET123@gitlab.com/acme/dags.git');
    const { metadata } = await readGitMetadata(r.project);
    expect(metadata).toEqual({ provider: 'GENERIC', commitSha: r.sha, remoteUrl: 'https://gitlab.com/acme/dags.git', branch: 'main', path: 'airflow', authorName: 'Ada Lovelace' });
    expect(JSON.stringify(metadata)).not.toContain('SECRET');
  });

  it('GitHub over https and ssh:// URLs, another remote name, a message longer than 72 characters', async () => {
    const long = `Deploy ${'x'.repeat(100)}`;
    const r = repo('https://github.com/acme/dags', long);
    git(r.root, 'remote', 'add', 'upstream', 'ssh://git@github.com/other/pipelines.git');
    const viaHttps = await readGitMetadata(r.root);
    expect(viaHttps.metadata).toMatchObject({ provider: 'GITHUB', account: 'acme', repo: 'dags' });
    expect(viaHttps.metadata?.path).toBeUndefined();
    expect(viaHttps.commitMessage).toBe(long.slice(0, 72));
    expect((await readGitMetadata(r.root, { remote: 'upstream' })).metadata).toMatchObject({ provider: 'GITHUB', account: 'other', repo: 'pipelines' });
  });

  it('says why nothing was collected: no repository, no commit, no remote, uncommitted changes, git unavailable', async () => {
    expect(await readGitMetadata(tempFolder('no-repo-'))).toEqual({ skipped: 'no-repository' });
    const empty = tempFolder('empty-repo-');
    git(empty, 'init', '-q', '-b', 'main');
    expect((await readGitMetadata(empty)).skipped).toBe('no-commit');
    expect((await readGitMetadata(repo().project)).skipped).toBe('no-remote');

    const dirty = repo('git@github.com:acme/dags.git');
    writeFileSync(join(dirty.dags, 'new_dag.py'), '# not committed\n');
    expect((await readGitMetadata(dirty.project)).skipped).toBe('uncommitted-changes');
    // Changes outside the folder do not count: they do not ship.
    const outside = repo('git@github.com:acme/dags.git');
    writeFileSync(join(outside.root, 'README.md'), 'notes\n');
    expect((await readGitMetadata(outside.project)).metadata?.commitSha).toBe(outside.sha);

    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      expect((await readGitMetadata(outside.project)).skipped).toBe('git-unavailable');
    } finally {
      process.env.PATH = path;
    }
  });

  it('a detached HEAD (a CI checkout) sends no branch', async () => {
    const r = repo('git@github.com:acme/dags.git');
    git(r.root, 'checkout', '-q', '--detach', 'HEAD');
    const { metadata } = await readGitMetadata(r.project);
    expect(metadata?.commitSha).toBe(r.sha);
    expect(metadata && 'branch' in metadata).toBe(false);
  });

  it('uncommittedChanges lists modified, staged and untracked paths of the folder, not ignored ones', async () => {
    const r = repo();
    writeFileSync(join(r.root, '.gitignore'), '*.log\n');
    git(r.root, 'add', '.gitignore');
    git(r.root, 'commit', '-q', '-m', 'ignore logs');
    expect(await uncommittedChanges(r.project)).toEqual([]);
    writeFileSync(join(r.dags, 'dag.py'), 'changed\n');
    writeFileSync(join(r.dags, 'extra.py'), 'new\n');
    writeFileSync(join(r.dags, 'run.log'), 'ignored\n');
    writeFileSync(join(r.project, 'Dockerfile'), 'FROM busybox\n');
    git(r.root, 'add', 'airflow/Dockerfile');
    expect(await uncommittedChanges(r.project)).toEqual(['airflow/Dockerfile', 'airflow/dags/dag.py', 'airflow/dags/extra.py']);
    expect(await uncommittedChanges(r.dags)).toEqual(['airflow/dags/dag.py', 'airflow/dags/extra.py']);
    expect(await uncommittedChanges(tempFolder('no-repo-'))).toBeUndefined();
  });

  it('parses remote URLs the way the CLI does', () => {
    expect(parseRemoteUrl('git@github.com:acme/dags.git')).toEqual({ host: 'github.com', path: 'acme/dags' });
    expect(parseRemoteUrl('github.com:acme/dags')).toEqual({ host: 'github.com', path: 'acme/dags' });
    expect(parseRemoteUrl('https://GitHub.com/acme/dags.git')).toEqual({ host: 'github.com', path: 'acme/dags' });
    expect(parseRemoteUrl('ssh://git@gitlab.com:2222/group/sub/dags.git')).toEqual({ host: 'gitlab.com', path: 'group/sub/dags' });
    expect(parseRemoteUrl('a:b:c')).toBeUndefined();
    expect(stripCredentials('https://x-access-token:ghs_abc@github.com/acme/dags.git')).toBe('https://github.com/acme/dags.git');
    expect(stripCredentials('ssh://git:pw@host/r.git')).toBe('ssh://git@host/r.git');
    expect(stripCredentials('git@gitlab.com:acme/dags.git')).toBe('git@gitlab.com:acme/dags.git');
  });
});

describe('deploy flows with git: auto and requireClean', () => {
  it("deployDags({ git: 'auto' }) sends the CLI's git object and the commit message as the description", async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'clgit1', runtimeVersion: '3.1-2' }] });
    const r = repo('git@github.com:acme/dags.git');
    const events: DeployDagsEvent[] = [];
    const result = await client.deployDags({ deploymentId: 'clgit1', dagsDir: r.dags, git: 'auto', onEvent: (e) => events.push(e) });
    const body = astro.requestsFor('deploys.create')[0]!.body as Record<string, unknown>;
    const expected = { provider: 'GITHUB', commitSha: r.sha, account: 'acme', repo: 'dags', commitUrl: `https://github.com/acme/dags/commit/${r.sha}`, branch: 'main', path: 'airflow/dags', authorName: 'Ada Lovelace' };
    expect(body.git).toEqual(expected);
    expect(body.description).toMatch(described('Add the ETL DAG'));
    expect((result as { deploy: { git?: unknown } }).deploy.git).toEqual(expected);
    expect(events.find((e) => e.type === 'deploy:git')).toMatchObject({ type: 'deploy:git', dir: r.dags, metadata: expected });
    // A description given wins over the commit message.
    await client.deployDags({ deploymentId: 'clgit1', dagsDir: r.dags, git: 'auto', description: 'release 7' });
    expect((astro.requestsFor('deploys.create')[1]!.body as Record<string, unknown>).description).toMatch(described('release 7'));
  });

  it('deployDags with uncommitted changes: git auto deploys without git fields; requireClean refuses before anything', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'clgit2', runtimeVersion: '3.1-2' }] });
    const r = repo('https://gitlab.com/acme/dags.git');
    writeFileSync(join(r.dags, 'wip.py'), '# work in progress\n');
    const events: DeployDagsEvent[] = [];
    await client.deployDags({ deploymentId: 'clgit2', dagsDir: r.dags, git: 'auto', onEvent: (e) => events.push(e) });
    expect((astro.requestsFor('deploys.create')[0]!.body as Record<string, unknown>).git).toBeUndefined();
    expect(events.find((e) => e.type === 'deploy:git')).toMatchObject({ skipped: 'uncommitted-changes' });

    const before = astro.requests.length;
    const bundleEvents: string[] = [];
    const error = await client
      .deployDags({ deploymentId: 'clgit2', dagsDir: r.dags, requireClean: true, onEvent: (e) => bundleEvents.push(e.type) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GitUncommittedChangesError);
    expect(isAstroError(error, 'ASTRO_GIT_UNCOMMITTED_CHANGES')).toBe(true);
    expect((error as GitUncommittedChangesError).changes).toEqual(['airflow/dags/wip.py']);
    expect((error as Error).message).toContain('airflow/dags/wip.py');
    // Nothing was read, bundled or created.
    expect(astro.requests.length).toBe(before);
    expect(bundleEvents.filter((t) => t.startsWith('bundle:'))).toEqual([]);

    // Committed, it goes.
    git(r.root, 'add', '.');
    git(r.root, 'commit', '-q', '-m', 'WIP done');
    await client.deployDags({ deploymentId: 'clgit2', dagsDir: r.dags, requireClean: true, git: 'auto' });
    const last = astro.requestsFor('deploys.create').at(-1)!.body as Record<string, unknown>;
    expect(last.git).toMatchObject({ provider: 'GENERIC', remoteUrl: 'https://gitlab.com/acme/dags.git' });
    expect(last.description).toMatch(described('WIP done'));
  });

  it('outside a repository: git auto sends nothing and requireClean passes (as the CLI)', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'clgit3', runtimeVersion: '3.1-2' }] });
    const dags = tempFolder('plain-dags-');
    writeFileSync(join(dags, 'dag.py'), 'from airflow import DAG\n');
    const events: DeployDagsEvent[] = [];
    await client.deployDags({ deploymentId: 'clgit3', dagsDir: dags, git: 'auto', requireClean: true, onEvent: (e) => events.push(e) });
    const body = astro.requestsFor('deploys.create')[0]!.body as Record<string, unknown>;
    expect(body.git).toBeUndefined();
    expect(events.find((e) => e.type === 'deploy:git')).toMatchObject({ skipped: 'no-repository' });
  });

  it('deployProject with requireClean refuses a dirty project before any build or request', async () => {
    const { astro, client } = await startFake({ deployments: [{ id: 'clgit5', runtimeVersion: '3.1-2' }] });
    const r = repo('git@github.com:acme/dags.git');
    writeFileSync(join(r.dags, 'dag.py'), 'from airflow import DAG  # edited\n');
    const events: string[] = [];
    const error = await client
      .deployProject({ projectDir: r.project, deploymentId: 'clgit5', requireClean: true, onEvent: (e) => events.push(e.type) })
      .catch((e: unknown) => e);
    expect(isAstroError(error, 'ASTRO_GIT_UNCOMMITTED_CHANGES')).toBe(true);
    expect((error as GitUncommittedChangesError).changes).toEqual(['airflow/dags/dag.py']);
    expect(astro.requests).toEqual([]);
    expect(events.filter((t) => t.startsWith('build:'))).toEqual([]);
  });

  describe('deployImage', () => {
    let registry: TestRegistry;
    let archive: string;
    let dir: string | undefined;
    beforeAll(async () => {
      registry = await startRegistry('none');
      dir = mkdtempSync(join(tmpdir(), 'git-image-'));
      archive = join(dir, 'image.tar');
      await writeLegacyArchive(archive, makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-3' }, layers: [{ 'app/x.txt': 'x' }] }), 'test/git:1');
    }, 60_000);
    afterAll(async () => {
      await registry?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("git: 'auto' reads the project's repository; requireClean refuses a dirty project before any request", async () => {
      const { astro, client } = await startFake({ deployments: [{ id: 'clgit4', runtimeVersion: '3.1-2' }], imageRegistry: registry.host });
      const r = repo('git@github.com:acme/dags.git');
      const events: DeployImageEvent[] = [];
      await client.deployImage({ deploymentId: 'clgit4', image: archive, projectDir: r.project, git: 'auto', onEvent: (e) => events.push(e) });
      const body = astro.requestsFor('deploys.create')[0]!.body as Record<string, unknown>;
      expect(body.git).toMatchObject({ provider: 'GITHUB', commitSha: r.sha, path: 'airflow' });
      expect(body.description).toMatch(described('Add the ETL DAG'));

      writeFileSync(join(r.project, 'Dockerfile'), 'FROM busybox\n');
      const before = astro.requests.length;
      const error = await client.deployImage({ deploymentId: 'clgit4', image: archive, dagsDir: r.dags, requireClean: true }).catch((e: unknown) => e);
      expect(isAstroError(error, 'ASTRO_GIT_UNCOMMITTED_CHANGES')).toBe(true);
      expect((error as GitUncommittedChangesError).changes).toEqual(['airflow/Dockerfile']);
      expect(astro.requests.length).toBe(before);
    });
  });
});
