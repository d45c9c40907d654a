/**
 * The commands: each turns its flags into one SDK call and the SDK's result into an outcome.
 * Every behaviour (checks, retries, finalize, waits) is the SDK's; nothing here deploys.
 */
import { join, resolve } from 'node:path';
import { AstroClient } from '../client/client.js';
import type { FlowWait } from '../client/deploy-common.js';
import type { DeployDagsResult } from '../client/deploy-dags.js';
import type { DeployDryRun } from '../client/dry-run.js';
import type { DeploySkipped } from '../client/skip-unchanged.js';
import type { Deployment } from '../client/schemas.js';
import type { RolloutResult } from '../client/rollout.js';
import type { Logger, LogLevel } from '../core/logger.js';
import { readProjectConfig } from '../image/project.js';
import type { ProjectTestsMode, ProjectTestsResult } from '../image/project-tests.js';
import { SDK_VERSION } from '../version.js';
import { parseDuration, type CommandSpec } from './args.js';
import { ExitCode, exitCodeForCode, UsageError } from './exit-codes.js';
import { formatBytes, formatDuration, rolloutState, short, type SdkEvent } from './output/format.js';
import type { Outcome, Reporter } from './output/reporter.js';

type Values = Record<string, string | boolean | undefined>;

/** What a command runs with. */
export interface CommandContext {
  command: CommandSpec;
  subcommand?: string;
  values: Values;
  /** Folder relative paths are read from. */
  cwd: string;
  /** Fires on Ctrl-C: every SDK call gets it. */
  signal: AbortSignal;
  reporter: Reporter;
  /**
   * What is known so far (the deployment, once resolved): the facts a failure summary shows. The
   * command adds to it as it learns.
   */
  facts: Array<[string, string]>;
}

const str = (v: Values, name: string): string | undefined => (typeof v[name] === 'string' ? (v[name] as string) : undefined);
const flag = (v: Values, name: string): boolean => v[name] === true;

/**
 * The SDK's log lines, as notes of the CLI (stderr under --json). Its warnings repeat what the
 * events show (retries), so the CLI's level is `error` unless ASTRO_SDK_LOG says otherwise.
 */
function loggerFor(reporter: Reporter): Logger {
  const note = (level: string) => (message: string) => reporter.note(`${level}: ${message}`);
  return { error: note('error'), warn: note('warning'), info: note('info'), debug: note('debug') };
}

/** The client options that route the SDK's log lines to the reporter. */
export function clientLogging(reporter: Reporter): { logger: Logger; logLevel?: LogLevel } {
  return { logger: loggerFor(reporter), ...(process.env.ASTRO_SDK_LOG ? {} : { logLevel: 'error' as const }) };
}

/** A client from ASTRO_API_TOKEN and ASTRO_API_URL, as the SDK reads them. */
export function newClient(ctx: CommandContext): AstroClient {
  return new AstroClient({ userAgent: `astro-deploy-cli/${SDK_VERSION}`, ...clientLogging(ctx.reporter) });
}

/** The deployment a command acts on: its id, and its name when it was given by name. */
interface Target {
  id: string;
  name?: string;
  /** Where the id came from, for people. */
  from: 'flag' | 'name' | 'config';
}

function label(t: { id: string; name?: string }): string {
  return t.name ? `${t.name} (${t.id})` : t.id;
}

/**
 * `--deployment-id`, or `--deployment-name` (with `--workspace-id`) through
 * `client.deployments.find` (no prompt: none or several is an error listing the candidates), or
 * `project.deployment` of `<project-dir>/.astro/config.yaml`. `required: false` lets the SDK apply
 * its own default (deployProject reads config.yaml itself).
 */
async function resolveTarget(client: AstroClient, ctx: CommandContext, required: true): Promise<Target>;
async function resolveTarget(client: AstroClient, ctx: CommandContext, required: false): Promise<Target | undefined>;
async function resolveTarget(client: AstroClient, ctx: CommandContext, required: boolean): Promise<Target | undefined> {
  const v = ctx.values;
  const id = str(v, 'deployment-id');
  const name = str(v, 'deployment-name');
  const workspaceId = str(v, 'workspace-id');
  if (id && name) throw new UsageError('Give --deployment-id or --deployment-name, not both.', ctx.command.name);
  if (workspaceId && !name && ctx.command.name !== 'deployments') {
    throw new UsageError('--workspace-id narrows --deployment-name; with neither, it has nothing to narrow.', ctx.command.name);
  }
  let target: Target | undefined;
  if (id) {
    target = { id, from: 'flag' };
  } else if (name) {
    const found = await client.deployments.find({ name, ...(workspaceId ? { workspaceId } : {}) }, { signal: ctx.signal });
    target = { id: found.id, name: found.name, from: 'name' };
  } else if (required) {
    const projectDir = resolve(ctx.cwd, str(v, 'project-dir') ?? '.');
    const config = await readProjectConfig(projectDir);
    if (!config.deployment) {
      throw new UsageError(
        `No deployment: pass --deployment-id or --deployment-name, or set project.deployment in ${join(projectDir, '.astro', 'config.yaml')}.`,
        ctx.command.name,
      );
    }
    target = { id: config.deployment, from: 'config' };
  }
  if (target) ctx.facts.push(['Deployment', label(target)]);
  return target;
}

/** `--wait`, `--wait-timeout` and `--verify-dags` as the flows take them; `command` names them in a usage error. */
function waitOption(v: Values, command: string): FlowWait | undefined {
  const timeout = str(v, 'wait-timeout');
  const verify = flag(v, 'verify-dags');
  if (timeout === undefined && !verify) return flag(v, 'wait') ? true : undefined;
  return {
    ...(timeout !== undefined ? { timeoutMs: parseDuration('wait-timeout', timeout, command) } : {}),
    // The CLI's check fails the run (exit 4) on an import error in a shipped file; the deploy stays live.
    ...(verify ? { verifyDags: { failOnImportErrors: true } } : {}),
  };
}

/** `--dry-run`, `--skip-unchanged`, `--git` as the flows take them. */
function planningOptions(v: Values): { dryRun?: true; skipUnchanged?: true; git?: 'auto' } {
  return {
    ...(flag(v, 'dry-run') ? { dryRun: true as const } : {}),
    ...(flag(v, 'skip-unchanged') ? { skipUnchanged: true as const } : {}),
    ...(str(v, 'git') === 'auto' ? { git: 'auto' as const } : {}),
  };
}

/** What every SDK call of a command takes: Ctrl-C's signal, and the reporter as the event listener. */
function callOptions(ctx: CommandContext): { signal: AbortSignal; onEvent: (event: SdkEvent) => void } {
  return { signal: ctx.signal, onEvent: (event) => ctx.reporter.event(event) };
}

/** What every deploying command takes: `--description` and the wait flags, with {@link callOptions}. */
function deployOptions(ctx: CommandContext): { description?: string; wait?: FlowWait; signal: AbortSignal; onEvent: (event: SdkEvent) => void } {
  // Flags first: a bad one is a usage error before any token is read or deployment resolved.
  const wait = waitOption(ctx.values, ctx.command.name);
  const description = str(ctx.values, 'description');
  return { ...(description !== undefined ? { description } : {}), ...(wait ? { wait } : {}), ...callOptions(ctx) };
}

/** `--tests` and `--force`, of the commands that deploy an image. */
function imageOptions(v: Values): { tests?: ProjectTestsMode; force?: true } {
  const tests = str(v, 'tests') as ProjectTestsMode | undefined;
  return { ...(tests ? { tests } : {}), ...(flag(v, 'force') ? { force: true as const } : {}) };
}

/** The rows every deploy outcome starts with. */
function deployFacts(where: string, d: { deployId: string; type: string; dagVersion?: string | undefined; imageTag?: string | undefined }): Array<[string, string]> {
  return [
    ['Deployment', where],
    ['Deploy ID', d.deployId],
    ['Type', d.type],
    ['DAG version', d.dagVersion || '-'],
    ['Image tag', d.imageTag || '-'],
  ];
}

function rolloutFacts(rollout: RolloutResult | undefined): Array<[string, string]> {
  if (!rollout) return [['Rollout', 'not waited for (--wait to wait)']];
  const facts: Array<[string, string]> = [['Rollout', `${rolloutState(rollout.snapshot)} (${rollout.snapshot.polls} polls, ${formatDuration(rollout.snapshot.elapsedMs)})`]];
  const v = rollout.verification;
  if (v) {
    facts.push([
      'DAG check',
      v.checked
        ? `${v.importErrors.length} import error${v.importErrors.length === 1 ? '' : 's'} in the shipped files${v.otherImportErrors.length ? `, ${v.otherImportErrors.length} in others` : ''}`
        : `not checked: ${v.error?.message ?? 'the Airflow API could not be asked'}`,
    ]);
  }
  return facts;
}

function testsText(tests: ProjectTestsResult | undefined): string | undefined {
  if (!tests) return undefined;
  const suites = (['parse', 'pytest'] as const).flatMap((name) => {
    const suite = tests[name];
    return suite ? [`${name} ${suite.status}${suite.reason ? ` (${suite.reason})` : ''}`] : [];
  });
  return suites.length ? suites.join(', ') : tests.mode;
}

function elapsed(started: number): [string, string] {
  return ['Duration', formatDuration(performance.now() - started)];
}

const isDryRun = (r: object): r is DeployDryRun => (r as DeployDryRun).dryRun === true;
const isSkipped = (r: object): r is DeploySkipped => (r as DeploySkipped).skipped === 'unchanged';

/**
 * A dry run's outcome: what the deploy would do. A plan the real run would refuse exits with the
 * code that run would end with (1, or 2 for configuration), so `--dry-run` can gate a pipeline.
 */
function planOutcome(command: string, where: string, r: DeployDryRun, started: number): Outcome {
  const p = r.plan;
  const facts: Array<[string, string]> = [['Deployment', where], ['Would create', p.wouldDeploy ? `a ${p.deployType} deploy` : 'nothing']];
  if (p.bundle) {
    facts.push(['Bundle', `${p.bundle.files} files, ${formatBytes(p.bundle.bytes)}, fingerprint ${short(p.bundle.fingerprint)}, ${p.bundle.excluded.length} excluded`]);
  }
  if (p.image) facts.push(['Image', `${p.image.reference} (${p.image.platform}${p.image.runtimeVersion ? `, runtime ${p.image.runtimeVersion}` : ''}), checks ${p.image.valid ? 'passed' : 'failed'}`]);
  if (p.tests) facts.push(['Tests', p.tests.skipped ? `skipped (${p.tests.skipped})` : p.tests.suites.join(', ') || 'none']);
  facts.push(['Unchanged', p.unchanged.unchanged ? 'yes: the deployment runs this code' : 'no']);
  facts.push(['Impact', p.impact.summary]);
  for (const refusal of p.refusals) facts.push(['Refused', `${refusal.code}: ${refusal.message}`]);
  facts.push(elapsed(started));
  const headline = p.refusals.length
    ? `dry run: the deploy to ${where} would be refused (${p.refusals.map((x) => x.code).join(', ')})`
    : p.wouldSkip
      ? `dry run: ${where} already runs this code; the deploy would be skipped`
      : `dry run: would deploy to ${where} (${p.deployType}); nothing was sent`;
  return { command, exitCode: p.refusals.length ? exitCodeForCode(p.refusals[0]!.code) : ExitCode.OK, result: r, headline, facts };
}

/** `--skip-unchanged` found the deployment running this code: exit 0, nothing created. */
function skippedOutcome(command: string, where: string, r: DeploySkipped, started: number): Outcome {
  return {
    command,
    exitCode: ExitCode.OK,
    result: r,
    headline: `skipped: ${where} already runs this code${r.runningDeployId ? ` (deploy ${r.runningDeployId})` : ''}`,
    facts: [
      ...deployFacts(where, {
        deployId: r.runningDeployId ? `${r.runningDeployId} (running; nothing new created)` : '-',
        type: 'skipped (unchanged)',
        dagVersion: r.dagTarballVersion,
        imageTag: r.imageTag,
      }),
      ...(r.fingerprint ? ([['Bundle', `fingerprint ${short(r.fingerprint)}`]] as Array<[string, string]>) : []),
      ...(r.imageId ? ([['Image', short(r.imageId)]] as Array<[string, string]>) : []),
      elapsed(started),
    ],
  };
}

async function dags(ctx: CommandContext): Promise<Outcome> {
  const started = performance.now();
  const v = ctx.values;
  const options = deployOptions(ctx);
  const client = newClient(ctx);
  const target = await resolveTarget(client, ctx, true);
  const dagsDir = resolve(ctx.cwd, str(v, 'dags-dir') ?? join(str(v, 'project-dir') ?? '.', 'dags'));
  const r = await client.deployDags({
    deploymentId: target.id,
    dagsDir,
    ...planningOptions(v),
    ...(flag(v, 'enable-dag-deploy') ? { enableDagDeploy: true } : {}),
    ...options,
  });
  if (isDryRun(r)) return planOutcome('dags', label(target), r, started);
  if (isSkipped(r)) return skippedOutcome('dags', label(target), r, started);
  return dagsOutcome('dags', target, r, started);
}

/** The outcome of a DAG deploy (the `dags` command and the demo). */
export function dagsOutcome(command: string, target: { id: string; name?: string }, r: DeployDagsResult, started: number): Outcome {
  return {
    command,
    exitCode: ExitCode.OK,
    result: r,
    headline: `deployed ${r.bundle.files} DAG file${r.bundle.files === 1 ? '' : 's'} to ${label(target)}`,
    facts: [
      ...deployFacts(label(target), { deployId: r.deployId, type: 'DAG_ONLY', dagVersion: r.dagTarballVersion, imageTag: r.deploy.imageTag }),
      ['Bundle', `${r.bundle.files} files, ${formatBytes(r.bundle.bytes)}, fingerprint ${short(r.bundle.fingerprint)}`],
      ...rolloutFacts(r.rollout),
      elapsed(started),
    ],
  };
}

async function image(ctx: CommandContext): Promise<Outcome> {
  const started = performance.now();
  const v = ctx.values;
  const source = str(v, 'image');
  if (!source) throw new UsageError('image needs --image <name|archive>: a local image name or ID, or a docker save / OCI archive.', 'image');
  const options = deployOptions(ctx);
  const client = newClient(ctx);
  const target = await resolveTarget(client, ctx, true);
  const dagsDir = str(v, 'dags-dir');
  const projectDir = str(v, 'project-dir');
  const r = await client.deployImage({
    deploymentId: target.id,
    // A path that exists is an archive, anything else an image name: the SDK decides (classifyImageSource).
    image: source,
    ...(dagsDir !== undefined ? { dagsDir: resolve(ctx.cwd, dagsDir) } : {}),
    ...(projectDir !== undefined ? { projectDir: resolve(ctx.cwd, projectDir) } : {}),
    ...imageOptions(v),
    ...planningOptions(v),
    ...options,
  });
  if (isDryRun(r)) return planOutcome('image', label(target), r, started);
  if (isSkipped(r)) return skippedOutcome('image', label(target), r, started);
  const testLine = testsText(r.tests);
  return {
    command: 'image',
    exitCode: ExitCode.OK,
    result: r,
    headline: `deployed image ${r.image.reference} to ${label(target)}`,
    facts: [
      ...deployFacts(label(target), { deployId: r.deployId, type: r.deployType, dagVersion: r.dagTarballVersion, imageTag: r.deploy.imageTag }),
      ['Pushed', `${r.reference} (${short(r.push.digest)})`],
      ...(testLine ? ([['Tests', testLine]] as Array<[string, string]>) : []),
      ...rolloutFacts(r.rollout),
      elapsed(started),
    ],
  };
}

async function project(ctx: CommandContext): Promise<Outcome> {
  const started = performance.now();
  const v = ctx.values;
  const options = deployOptions(ctx);
  const client = newClient(ctx);
  const target = await resolveTarget(client, ctx, false);
  const projectDir = resolve(ctx.cwd, str(v, 'project-dir') ?? '.');
  const r = await client.deployProject({
    projectDir,
    ...(target ? { deploymentId: target.id } : {}),
    ...(str(v, 'push-method') ? { push: { method: str(v, 'push-method') as 'auto' | 'native' | 'daemon' } } : {}),
    ...imageOptions(v),
    ...planningOptions(v),
    ...options,
  });
  if (isDryRun(r)) return planOutcome('project', target ? label(target) : r.plan.deploymentId, r, started);
  if (isSkipped(r)) return skippedOutcome('project', target ? label(target) : r.deploymentId, r, started);
  const where = target ? label(target) : r.deploy.deploymentId;
  return {
    command: 'project',
    exitCode: ExitCode.OK,
    result: r,
    headline: `deployed project ${projectDir} to ${where}`,
    facts: [
      ...deployFacts(where, { deployId: r.deployId, type: r.deployType, dagVersion: r.dagTarballVersion, imageTag: r.imageTag }),
      ['Pushed', `${r.reference} (${short(r.digest)})`],
      ['Build', `${r.build.steps} steps, ${r.build.cachedSteps} cached`],
      ['Tests', testsText(r.tests) ?? '-'],
      ...rolloutFacts(r.rollout),
      elapsed(started),
    ],
  };
}

async function dagDeploy(ctx: CommandContext): Promise<Outcome> {
  const enabled = ctx.subcommand === 'enable';
  const client = newClient(ctx);
  const target = await resolveTarget(client, ctx, true);
  const r = await client.setDagDeploy(target.id, enabled, {
    ...(flag(ctx.values, 'force') ? { force: true } : {}),
    ...callOptions(ctx),
  });
  const state = enabled ? 'enabled' : 'disabled';
  return {
    command: `dag-deploy ${ctx.subcommand}`,
    exitCode: ExitCode.OK,
    result: r,
    headline: r.changed ? `DAG deploys ${state} on ${label(target)}` : `DAG deploys were already ${state} on ${label(target)}; nothing was sent`,
    facts: [
      ['Deployment', label(target)],
      ['DAG deploys', r.deployment.isDagDeployEnabled ? 'enabled' : 'disabled'],
      ['Changed', r.changed ? 'yes' : 'no'],
      ['Status', r.deployment.status],
    ],
  };
}

async function waitCommand(ctx: CommandContext): Promise<Outcome> {
  const started = performance.now();
  const v = ctx.values;
  const deployId = str(v, 'deploy-id');
  const timeout = str(v, 'wait-timeout');
  const timeoutMs = timeout !== undefined ? parseDuration('wait-timeout', timeout, ctx.command.name) : undefined;
  const client = newClient(ctx);
  const target = await resolveTarget(client, ctx, true);
  if (deployId) ctx.facts.push(['Deploy ID', deployId]);
  const r = await client.waitForRollout({
    deploymentId: target.id,
    ...(deployId ? { deployId } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(flag(v, 'verify-dags') ? { verifyDags: { failOnImportErrors: true } } : {}),
    ...callOptions(ctx),
  });
  return {
    command: 'wait',
    exitCode: ExitCode.OK,
    result: r,
    headline: `${label(target)} is ${r.snapshot.deploymentStatus}${deployId ? ` and runs deploy ${deployId}` : ''}`,
    facts: [
      ['Deployment', label(target)],
      ...(deployId ? ([['Deploy ID', deployId]] as Array<[string, string]>) : []),
      ['DAG version', r.snapshot.dagTarballVersion ?? '-'],
      ['Image tag', r.snapshot.imageTag ?? '-'],
      ...rolloutFacts(r),
      elapsed(started),
    ],
  };
}

async function deploymentsList(ctx: CommandContext): Promise<Outcome> {
  const client = newClient(ctx);
  const workspaceId = str(ctx.values, 'workspace-id');
  const list: Deployment[] = await client.deployments.listAll(workspaceId ? { workspaceIds: [workspaceId] } : {}, { signal: ctx.signal });
  return {
    command: 'deployments list',
    exitCode: ExitCode.OK,
    result: list,
    headline: `${list.length} deployment${list.length === 1 ? '' : 's'}${workspaceId ? ` in workspace ${workspaceId}` : ''}`,
    facts: [],
    table: {
      columns: ['ID', 'NAME', 'WORKSPACE', 'STATUS', 'RUNTIME', 'DAG DEPLOYS'],
      rows: list.map((d) => [
        d.id,
        d.name,
        d.workspaceId,
        d.status,
        d.astroRuntimeVersion ?? d.runtimeVersion ?? '-',
        d.isDagDeployEnabled ? 'enabled' : 'disabled',
      ]),
    },
  };
}

async function rollback(ctx: CommandContext): Promise<Outcome> {
  const started = performance.now();
  const v = ctx.values;
  const options = deployOptions(ctx);
  const client = newClient(ctx);
  const target = await resolveTarget(client, ctx, true);
  const r = await client.rollback({
    deploymentId: target.id,
    to: str(v, 'to') ?? 'previous',
    ...options,
  });
  return {
    command: 'rollback',
    exitCode: ExitCode.OK,
    result: r,
    headline: `rolled ${label(target)} back to deploy ${r.target.id}`,
    facts: [
      ...deployFacts(label(target), {
        deployId: `${r.deployId}${r.recovered ? ' (its answer was lost; found in the deploy list)' : ''}`,
        type: `rollback to ${r.target.id}${r.previous ? ` (from ${r.previous.id})` : ''}`,
        dagVersion: r.target.dagTarballVersion,
        imageTag: r.target.imageTag,
      }),
      ...rolloutFacts(r.rollout),
      elapsed(started),
    ],
  };
}

/** Run the command; resolves with its outcome, rejects with the SDK's (or a usage) error. */
export async function runCommand(ctx: CommandContext): Promise<Outcome> {
  switch (ctx.command.name) {
    case 'dags':
      return dags(ctx);
    case 'image':
      return image(ctx);
    case 'project':
      return project(ctx);
    case 'dag-deploy':
      return dagDeploy(ctx);
    case 'wait':
      return waitCommand(ctx);
    case 'deployments':
      return deploymentsList(ctx);
    case 'rollback':
      return rollback(ctx);
    case 'demo': {
      const { demo } = await import('./demo.js');
      return demo(ctx);
    }
    default:
      throw new UsageError(`Unknown command '${ctx.command.name}'.`);
  }
}
