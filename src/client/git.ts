/**
 * Git metadata for deploys, read from the project's repository with the `git` binary (each command
 * under a time limit), as `astro deploy` collects it (astro-cli `cloud/deploy/bundle.go`,
 * `pkg/git/git.go`): the HEAD commit's sha and author, the branch, the folder's path in the
 * repository, and the `origin` remote: on github.com the `GITHUB` provider with account,
 * repository and commit URL, elsewhere `GENERIC` with the remote URL. Like the CLI, nothing is
 * sent when the tree has uncommitted changes (the sha would not describe what ships) or when git
 * cannot say (no repository, no commit, no remote): that is not an error.
 *
 * Differences from the CLI, on purpose:
 * - "uncommitted changes" are those in the folder that ships (the dags folder, the project),
 *   untracked files included, since those ship too; the CLI runs `git diff --quiet HEAD` over the
 *   whole repository and misses untracked files;
 * - credentials in an https remote URL (`https://user:token@host/...`, how CI systems check out)
 *   are removed before the URL is sent; the CLI sends it as it is;
 * - a detached HEAD (the usual CI checkout) sends no branch rather than the branch name `HEAD`;
 * - `requireClean` refuses a dirty tree with a typed error; the CLI prints a line and exits 0
 *   without deploying, so CI passes (astro-cli#1721).
 */
import { execFile } from 'node:child_process';
import { AstroConfigError, ErrorCodes, GitUncommittedChangesError, isAstroError } from '../core/errors.js';
import { throwIfAborted } from '../core/abort.js';
import type { DeployGitMetadata } from './resources.js';

/** Longest first line of the commit message used as the default description (the CLI's limit). */
export const MAX_COMMIT_MESSAGE_LINE = 72;
/** Default time limit of one git command, in milliseconds. */
export const DEFAULT_GIT_TIMEOUT_MS = 5000;
/** Uncommitted paths listed in {@link GitUncommittedChangesError}'s message (all are in `changes`). */
const LISTED_CHANGES = 10;

/** Options of {@link readGitMetadata} and {@link uncommittedChanges}. */
export interface GitOptions {
  /** The remote whose URL names the repository. @default 'origin' (as the CLI) */
  remote?: string;
  /** Time limit of each git command, in milliseconds. @default 5000 */
  timeoutMs?: number;
  /** Cancels the git commands. */
  signal?: AbortSignal;
}

/** Why no git metadata was collected. */
export type GitSkipReason =
  /** The folder is not inside a git work tree. */
  | 'no-repository'
  /** The folder has uncommitted changes (untracked files included): the commit does not describe what ships. */
  | 'uncommitted-changes'
  /** The repository has no commit yet. */
  | 'no-commit'
  /** The repository has no such remote (`origin` by default). */
  | 'no-remote'
  /** The remote URL could not be parsed (or a github.com URL names no `account/repository`). */
  | 'unparsable-remote'
  /** No `git` binary could be run. */
  | 'git-unavailable'
  /** A git command failed or ran past its time limit (`detail` says which and why). */
  | 'git-failed';

/** What {@link readGitMetadata} found. */
export interface GitMetadataResult {
  /** The metadata the CLI sends with a deploy; absent when `skipped`. */
  metadata?: DeployGitMetadata;
  /** First line of the HEAD commit's message, at most 72 characters (the CLI's default description). */
  commitMessage?: string;
  /** Why nothing was collected. */
  skipped?: GitSkipReason;
  /** Details of a `git-failed` or `unparsable-remote` skip, and the uncommitted paths count. */
  detail?: string;
}

/** A git command that could not run, or failed. */
class GitCommandError extends Error {
  constructor(
    message: string,
    readonly unavailable: boolean,
    readonly exitCode: number | undefined,
  ) {
    super(message);
  }
}

function checkTimeout(timeoutMs: number | undefined): number {
  if (timeoutMs === undefined) return DEFAULT_GIT_TIMEOUT_MS;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new AstroConfigError(ErrorCodes.CONFIG_INVALID_OPTION, `The git time limit must be a positive number of milliseconds; got ${String(timeoutMs)}.`);
  }
  return timeoutMs;
}

/**
 * Run `git -C dir ...args`: stdout, or a {@link GitCommandError}. No prompt (a credential helper
 * never waits for input), no optional locks (a status never takes `index.lock` from a concurrent
 * git), C locale.
 */
function git(dir: string, args: string[], options: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['-C', dir, ...args],
      {
        timeout: options.timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
        windowsHide: true,
        ...(options.signal ? { signal: options.signal } : {}),
        env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0', LC_ALL: 'C', LANGUAGE: 'C' },
      },
      (error, stdout, stderr) => {
        if (!error) return resolve(stdout);
        const e = error as NodeJS.ErrnoException & { killed?: boolean; code?: string | number };
        if (e.code === 'ENOENT' || e.code === 'EACCES') return reject(new GitCommandError(`git could not be run: ${e.message}`, true, undefined));
        const what = `git ${args.join(' ')}`;
        if (e.killed) return reject(new GitCommandError(`${what} ran past ${options.timeoutMs} ms`, false, undefined));
        const exitCode = typeof e.code === 'number' ? e.code : undefined;
        reject(new GitCommandError(`${what} failed${exitCode !== undefined ? ` (exit ${exitCode})` : ''}: ${(stderr || e.message).trim().split('\n')[0]}`, false, exitCode));
      },
    );
  });
}

/**
 * The uncommitted changes of `dir` (paths relative to the repository root, untracked files
 * included, ignored files not), or undefined when `dir` is not inside a git work tree. Throws
 * `GitCommandError` when git cannot answer.
 */
async function statusOf(dir: string, options: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<string[] | undefined> {
  try {
    const inside = await git(dir, ['rev-parse', '--is-inside-work-tree'], options);
    if (inside.trim() !== 'true') return undefined;
  } catch (error) {
    // Not a repository (exit 128), or inside a `.git` folder: no work tree to compare.
    if (error instanceof GitCommandError && !error.unavailable && error.exitCode !== undefined) return undefined;
    throw error;
  }
  // `-z`: paths as they are, NUL-terminated; a rename's source follows its entry.
  const out = await git(dir, ['status', '--porcelain=v1', '-z', '--untracked-files=normal', '--', '.'], options);
  const fields = out.split('\0');
  const paths: string[] = [];
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.length < 4) continue;
    paths.push(f.slice(3));
    if (f[0] === 'R' || f[0] === 'C') i += 1;
  }
  return paths;
}

/**
 * Uncommitted changes (untracked files included) in `dir`, as paths relative to the repository
 * root, sorted; `undefined` when `dir` is in no git work tree (or git cannot be run).
 *
 * @throws AstroConfigError `ASTRO_CONFIG_INVALID_OPTION` for an invalid `timeoutMs`; `ASTRO_ABORTED` once `signal` fired.
 */
export async function uncommittedChanges(dir: string, options: GitOptions = {}): Promise<string[] | undefined> {
  const run = { timeoutMs: checkTimeout(options.timeoutMs), signal: options.signal };
  throwIfAborted(options.signal);
  try {
    return (await statusOf(dir, run))?.sort();
  } catch (error) {
    throwIfAborted(options.signal);
    if (error instanceof GitCommandError && error.unavailable) return undefined;
    throw error;
  }
}

/**
 * Refuse a folder with uncommitted changes: throws {@link GitUncommittedChangesError}
 * (`ASTRO_GIT_UNCOMMITTED_CHANGES`) listing them. A folder outside any git repository passes (as
 * the CLI, which checks nothing there). A git command that fails is an error too: a check that
 * cannot be made does not pass.
 */
export async function assertCommitted(dir: string, options: GitOptions = {}): Promise<void> {
  let changes: string[] | undefined;
  try {
    changes = await uncommittedChanges(dir, options);
  } catch (error) {
    if (isAstroError(error)) throw error;
    throw new GitUncommittedChangesError(
      `requireClean: could not tell whether '${dir}' has uncommitted changes (${(error as Error).message}); nothing was deployed.`,
      { path: dir, changes: [] },
      { cause: error },
    );
  }
  if (!changes?.length) return;
  const listed = changes.slice(0, LISTED_CHANGES).join(', ');
  throw new GitUncommittedChangesError(
    `'${dir}' has ${changes.length} uncommitted change(s) (${listed}${changes.length > LISTED_CHANGES ? ', ...' : ''}); nothing was deployed. Commit (or stash) them, or deploy without requireClean. (The Astro CLI exits 0 here without deploying, astro-cli#1721.)`,
    { path: dir, changes },
  );
}

/** A remote URL split the CLI's way: host (lower case, no port) and path without leading `/` and `.git`. */
export function parseRemoteUrl(url: string): { host: string; path: string } | undefined {
  const raw = url.trim();
  if (raw.includes('://')) {
    let parsed: URL;
    try {
      parsed = new URL(raw);
    } catch {
      return undefined;
    }
    if (!parsed.hostname) return undefined;
    return { host: parsed.hostname.toLowerCase(), path: decodeURIComponent(parsed.pathname).replace(/^\/+/, '').replace(/\.git$/, '') };
  }
  // SCP-like: [user@]host:path
  const parts = raw.split(':');
  if (parts.length !== 2) return undefined;
  const userHost = parts[0]!.split('@');
  if (userHost.length > 2 || !userHost[userHost.length - 1]) return undefined;
  return { host: userHost[userHost.length - 1]!.toLowerCase(), path: parts[1]!.replace(/^\/+/, '').replace(/\.git$/, '') };
}

/** The remote URL without credentials: an http(s) URL loses its user and password, any other URL its password. */
export function stripCredentials(url: string): string {
  const raw = url.trim();
  if (!raw.includes('://')) return raw;
  try {
    const parsed = new URL(raw);
    if (!parsed.username && !parsed.password) return raw;
    if (parsed.protocol === 'http:' || parsed.protocol === 'https:') parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return raw.replace(/\/\/[^/@]*@/, '//');
  }
}

/**
 * The git metadata `astro deploy` attaches to a deploy, read from the repository holding `dir`.
 * Never throws for a missing repository, commit or remote, an unavailable git, or a failing
 * command: `skipped` says why nothing was collected.
 *
 * @throws AstroConfigError `ASTRO_CONFIG_INVALID_OPTION` for an invalid `timeoutMs`; `ASTRO_ABORTED` once `signal` fired.
 *
 * @example
 * ```ts
 * const { metadata, commitMessage } = await readGitMetadata('./my-project');
 * // metadata: { provider: 'GITHUB', commitSha, account: 'acme', repo: 'dags', branch: 'main', path: 'airflow',
 * //   commitUrl: 'https://github.com/acme/dags/commit/<sha>', authorName }
 * ```
 */
export async function readGitMetadata(dir: string, options: GitOptions = {}): Promise<GitMetadataResult> {
  const run = { timeoutMs: checkTimeout(options.timeoutMs), signal: options.signal };
  const remote = options.remote ?? 'origin';
  throwIfAborted(options.signal);
  try {
    const changes = await statusOf(dir, run);
    if (changes === undefined) return { skipped: 'no-repository' };
    if (changes.length) return { skipped: 'uncommitted-changes', detail: `${changes.length} uncommitted change(s)` };
    const [head, branch, prefix, remoteUrl] = await Promise.all([
      git(dir, ['log', '-1', '--format=%H%x00%an%x00%B', 'HEAD'], run).catch((e: unknown) => e as GitCommandError),
      // Exit 1 on a detached HEAD: no branch.
      git(dir, ['symbolic-ref', '--quiet', '--short', 'HEAD'], run).catch(() => ''),
      git(dir, ['rev-parse', '--show-prefix'], run),
      git(dir, ['remote', 'get-url', remote], run).catch((e: unknown) => e as GitCommandError),
    ]);
    if (head instanceof Error) return { skipped: 'no-commit', detail: head.message };
    if (remoteUrl instanceof Error) return { skipped: 'no-remote', detail: remoteUrl.message };
    const [sha = '', authorName = '', ...message] = head.split('\0');
    const commitMessage = message.join('\0').trim().split('\n')[0]!.trim().slice(0, MAX_COMMIT_MESSAGE_LINE);
    const url = remoteUrl.trim();
    const where = parseRemoteUrl(url);
    if (!where) return { skipped: 'unparsable-remote', detail: `remote ${remote} has an URL git metadata cannot be read from` };
    const metadata: DeployGitMetadata = { provider: 'GENERIC', commitSha: sha.trim() };
    if (where.host === 'github.com') {
      const slash = where.path.indexOf('/');
      if (slash <= 0 || slash === where.path.length - 1) return { skipped: 'unparsable-remote', detail: `github.com remote path '${where.path}' names no account/repository` };
      metadata.provider = 'GITHUB';
      metadata.account = where.path.slice(0, slash);
      metadata.repo = where.path.slice(slash + 1);
      metadata.commitUrl = `https://github.com/${metadata.account}/${metadata.repo}/commit/${metadata.commitSha}`;
    } else {
      metadata.remoteUrl = stripCredentials(url);
    }
    if (branch.trim()) metadata.branch = branch.trim();
    const path = prefix.trim().replace(/\/$/, '');
    if (path) metadata.path = path;
    if (authorName.trim()) metadata.authorName = authorName.trim();
    return { metadata, ...(commitMessage ? { commitMessage } : {}) };
  } catch (error) {
    throwIfAborted(options.signal);
    if (error instanceof GitCommandError) return { skipped: error.unavailable ? 'git-unavailable' : 'git-failed', detail: error.message };
    throw error;
  }
}

/** The `deploy:git` event: the git metadata sent with the deploy, or why there is none. */
export interface DeployGitEvent {
  type: 'deploy:git';
  /** The folder whose repository was read. */
  dir: string;
  /** What is sent with the deploy. */
  metadata?: DeployGitMetadata;
  skipped?: GitSkipReason;
  detail?: string;
}

/** The flows' `git` and `requireClean` options, and the description. */
export interface DeployGitParams {
  git?: DeployGitMetadata | 'auto' | undefined;
  requireClean?: boolean | undefined;
  description?: string | undefined;
}

/**
 * The `description` and `git` fields of a flow's create-deploy body: `requireClean` checked first
 * (throws {@link GitUncommittedChangesError}), then with `git: 'auto'` the repository of `dir` read
 * (a `deploy:git` event says what was found) and, without a `description`, the commit message's
 * first line used as the description, as the CLI does. A metadata object is sent as given.
 * @internal
 */
export async function deployGitFields(
  params: DeployGitParams,
  dir: string | undefined,
  signal: AbortSignal | undefined,
  emit: (e: DeployGitEvent) => void,
): Promise<{ description: string; git?: DeployGitMetadata }> {
  const options = signal ? { signal } : {};
  const where = dir ?? process.cwd();
  if (params.requireClean) await assertCommitted(where, options);
  if (params.git !== 'auto') return { description: params.description ?? '', ...(params.git ? { git: params.git } : {}) };
  const found = await readGitMetadata(where, options);
  emit({
    type: 'deploy:git',
    dir: where,
    ...(found.metadata ? { metadata: found.metadata } : {}),
    ...(found.skipped ? { skipped: found.skipped } : {}),
    ...(found.detail ? { detail: found.detail } : {}),
  });
  return { description: params.description ?? found.commitMessage ?? '', ...(found.metadata ? { git: found.metadata } : {}) };
}
